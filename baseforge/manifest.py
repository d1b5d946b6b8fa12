"""What is installed in a rootfs tar: a dpkg-style package list, an SPDX 2.3 SBOM, and which files are
privileged (setuid, setgid, file capabilities).

The package database is read straight from the tar, so this works for any architecture and needs no
chroot: dpkg's ``var/lib/dpkg/status`` (or distroless's ``status.d/``) and apk's ``lib/apk/db/installed``. rpm's database is a SQLite or
Berkeley DB file: not read yet (an empty list).
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from . import __version__
from .epoch import rfc3339
from .errors import BaseforgeError
from .run import atomic_output

DPKG_STATUS = "var/lib/dpkg/status"
#: one deb822 file per package, for images without dpkg (distroless's convention; busybox writes one)
DPKG_STATUS_D = "var/lib/dpkg/status.d/"
APK_INSTALLED = "lib/apk/db/installed"
SPDX_NAMESPACE_BASE = "https://baseforge.invalid/spdx"


@dataclass(frozen=True)
class Package:
    """One installed package. ``source`` is the source package name (dpkg ``Source:``, apk ``o:``)."""

    name: str
    version: str
    arch: str
    source: str | None = None
    license: str | None = None


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """deb822 paragraphs as dicts (field names lower-cased, continuation lines joined with newlines)."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, None
        elif line[0] in " \t":
            if key is not None:
                fields[key] += "\n" + line[1:]
        else:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
    if fields:
        yield fields


def parse_dpkg_status(text: str) -> list[Package]:
    """Packages whose Status is "... ok installed" (half-installed, config-files, removed ones are skipped)."""
    pkgs = []
    for f in _stanzas(text):
        # "<want> <error> <state>": "install ok installed", or "hold ok installed" for a held package.
        if f.get("status", "").split()[1:] != ["ok", "installed"]:
            continue
        source = f.get("source")
        if source:
            source = source.split(" (")[0].strip()  # "Source: glibc (2.36-9)" -> glibc
        pkgs.append(Package(f["package"], f.get("version", ""), f.get("architecture", ""), source or None))
    return sorted(pkgs, key=_key)


def parse_apk_installed(text: str) -> list[Package]:
    """apk's installed database: paragraphs of ``X:value`` lines (P name, V version, A arch, o origin, L license)."""
    pkgs = []
    for para in text.split("\n\n"):
        f: dict[str, str] = {}
        for line in para.splitlines():
            if len(line) > 2 and line[1] == ":" and line[0] not in f:
                f[line[0]] = line[2:]
        if "P" in f:
            pkgs.append(Package(f["P"], f.get("V", ""), f.get("A", ""), f.get("o"), f.get("L")))
    return sorted(pkgs, key=_key)


def _key(p: Package) -> tuple[str, str, str]:
    return (p.name, p.arch, p.version)


def _read_member(tar: tarfile.TarFile, name: str) -> str | None:
    for candidate in (name, "./" + name, "/" + name):
        try:
            member = tar.getmember(candidate)
        except KeyError:
            continue
        f = tar.extractfile(member)  # follows hard links; None for directories
        return f.read().decode("utf-8", errors="replace") if f is not None else None
    return None


def _status_d(tar: tarfile.TarFile) -> str:
    """distroless's dpkg database: one status paragraph per file in ``var/lib/dpkg/status.d/`` (not the
    ``.md5sums`` beside them), as Google's distroless images and baseforge's distroless variants have."""
    paragraphs = []
    for m in tar.getmembers():
        name = m.name.lstrip("/").removeprefix("./")
        if name.startswith(DPKG_STATUS_D) and m.isfile() and not name.endswith(".md5sums"):
            paragraphs.append(tar.extractfile(m).read().decode("utf-8", errors="replace").strip("\n"))
    return "\n\n".join(paragraphs) + "\n" if paragraphs else ""


def packages(rootfs_tar: Path) -> list[Package]:
    """The installed packages of the rootfs in ``rootfs_tar`` (dpkg, apk or dpkg's status.d; [] if none is there)."""
    try:
        with tarfile.open(rootfs_tar) as tar:
            status = _read_member(tar, DPKG_STATUS)
            if status is not None:
                return parse_dpkg_status(status)
            records = _status_d(tar)
            if records:
                return parse_dpkg_status(records)
            installed = _read_member(tar, APK_INSTALLED)
            if installed is not None:
                return parse_apk_installed(installed)
    except tarfile.ReadError as e:
        raise BaseforgeError(f"can't read {rootfs_tar} as a tar ({e})", hint="is it the pack step's output?") from None
    return []


def privileged(members: Iterable[tarfile.TarInfo]) -> dict[str, list[str]]:
    """Files that run with more than their caller's rights: setuid, setgid, and file capabilities
    (``security.capability``), by path; listed in rootfs.json so a reviewer sees them at a glance."""
    out: dict[str, list[str]] = {"setuid": [], "setgid": [], "capabilities": []}
    for m in members:
        name = m.name.removeprefix("./")
        if m.isfile() and m.mode & 0o4000:
            out["setuid"].append(name)
        if m.isfile() and m.mode & 0o2000:
            out["setgid"].append(name)
        if "SCHILY.xattr.security.capability" in m.pax_headers:
            out["capabilities"].append(name)
    return {k: sorted(v) for k, v in out.items()}


def manifest_text(pkgs: Iterable[Package]) -> str:
    """Like ``dpkg-query -W -f='${Package}\\t${Version}\\t${Architecture}\\n'``, sorted."""
    return "".join(f"{p.name}\t{p.version}\t{p.arch}\n" for p in sorted(pkgs, key=_key))


def write_manifest(pkgs: Iterable[Package], out: Path) -> None:
    with atomic_output(Path(out)) as f:
        f.write(manifest_text(pkgs).encode())


def _spdx_id(p: Package, taken: set[str]) -> str:
    """SPDXRef-Package-<name>-<version>-<arch>, with anything outside [A-Za-z0-9.-] replaced by '-'."""
    base = "SPDXRef-Package-" + re.sub(r"[^A-Za-z0-9.-]", "-", f"{p.name}-{p.version}-{p.arch}")
    spdx_id, n = base, 1
    while spdx_id in taken:  # sanitizing can merge distinct names (a+b vs a-b)
        n += 1
        spdx_id = f"{base}-{n}"
    taken.add(spdx_id)
    return spdx_id


def _purl(p: Package, namespace: str) -> str:
    ptype = "apk" if namespace == "alpine" else "deb"
    # Percent-encode like packageurl-python: "+" -> %2B, but ":" (dpkg epochs) stays as it is.
    q = lambda s: quote(s, safe=":")  # noqa: E731
    purl = f"pkg:{ptype}/{namespace}/{q(p.name)}@{q(p.version)}"
    qualifiers = []
    if p.arch:
        qualifiers.append(f"arch={q(p.arch)}")
    if p.source and p.source != p.name:
        qualifiers.append(f"upstream={q(p.source)}")
    return purl + ("?" + "&".join(qualifiers) if qualifiers else "")


def sbom(pkgs: Iterable[Package], *, name: str, created: int, namespace_seed: str, purl_namespace: str = "debian") -> dict:
    """The SPDX 2.3 document as a dict; the same arguments give the same document."""
    taken: set[str] = set()
    entries = []
    for p in sorted(pkgs, key=_key):
        entry = {
            "SPDXID": _spdx_id(p, taken),
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": p.license or "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "supplier": "NOASSERTION",
            "externalRefs": [
                {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": _purl(p, purl_namespace)}
            ],
        }
        if p.source and p.source != p.name:
            entry["sourceInfo"] = f"built from source package {p.source}"
        entries.append(entry)
    digest = hashlib.sha256(namespace_seed.encode()).hexdigest()
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"{SPDX_NAMESPACE_BASE}/{quote(name, safe='')}-{digest}",
        "creationInfo": {
            "created": rfc3339(created),
            "creators": [f"Tool: baseforge-{__version__}"],
        },
        "packages": entries,
        "relationships": [
            {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": e["SPDXID"]}
            for e in entries
        ],
    }


def write_sbom(pkgs: Iterable[Package], out: Path, *, name: str, created: int, namespace_seed: str) -> None:
    """Write the SPDX 2.3 JSON SBOM (no uuid, no clock: ``created`` is the epoch)."""
    doc = sbom(pkgs, name=name, created=created, namespace_seed=namespace_seed)
    with atomic_output(Path(out)) as f:
        f.write((json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())
