"""Locks for the RPM family (the dnf bootstrapper), in the same lock format as apt's.

Resolving: the cell's own dnf bootstrap runs; ``rpm -qa`` in its root gives the installed NEVRAs, and
each is looked up in the repository metadata dnf downloaded (``primary``: sha256 and location). A
``suite`` record is one repository (its id, the repomd.xml ``revision`` as date, the sha256 of
repomd.xml); a ``package`` record's version is ``[epoch:]version-release``.

Building: every locked .rpm is gathered, verified by sha256 (the rpm cache ``<package_cache dir>/rpms``,
then the mirror), ``createrepo_c`` indexes exactly those files, and dnf installs the exact NEVRAs from that
local repository with ``gpgcheck=1``: every package's signature is checked against the image's keys, as in
an unlocked build. (The repository metadata is our own, so its signature is not; the lock's sha256 pins each
package instead.) There is no snapshot archive for RPM repositories.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import lzma
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

from . import aptrepo, lockbuild
from .errors import BaseforgeError
from .lockfile import Lock, Package, Suite
from .run import output, run
from .spec import Source

NS = {"c": "http://linux.duke.edu/metadata/common", "r": "http://linux.duke.edu/metadata/repo"}


def rpm_cache(package_cache: str | None) -> Path | None:
    """Where verified .rpm files are kept: ``rpms`` beside the package cache (never in it: the package
    cache is copied into Debian bootstraps)."""
    return Path(package_cache).resolve().parent / "rpms" if package_cache else None


def baseurl(cell, src: Source) -> str:
    return src.url.replace("$basearch", cell.platform.uname).replace("$releasever", cell.release).rstrip("/")


def _read(path: Path) -> bytes:
    if path.name.endswith(".zst"):  # Fedora's metadata; Python has no zstd module before 3.14
        return run(["zstd", "-dc", path], capture=True).stdout
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".bz2"):
        return bz2.decompress(data)
    return lzma.decompress(data) if path.name.endswith(".xz") else data


def _repo(cell, src: Source, cache: Path) -> tuple[Suite, dict]:
    """The repository ``src`` as dnf cached it: its suite record and (name, evr, arch) -> package fields."""
    found = sorted(cache.glob(f"{src.suite}-*/repodata/repomd.xml"))
    if len(found) != 1:
        raise BaseforgeError(f"cell {cell.id}: dnf kept {len(found)} copies of the metadata of repository {src.suite}")
    repomd = ET.parse(found[0]).getroot()
    revision = (repomd.findtext("r:revision", "", NS) or "0").strip()
    stamp = int(revision) if revision.isdigit() else 0
    date = datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    suite = Suite(src.suite, date, aptrepo.sha256_file(found[0]))
    href = repomd.find("r:data[@type='primary']/r:location", NS).get("href")
    primary = ET.fromstring(_read(found[0].parent / Path(href).name))
    table = {}
    for pkg in primary.findall("c:package", NS):
        v = pkg.find("c:version", NS).attrib
        evr = (f"{v['epoch']}:" if v.get("epoch", "0") != "0" else "") + f"{v['ver']}-{v['rel']}"
        checksum = pkg.find("c:checksum", NS)
        if checksum.get("type") != "sha256":
            continue
        table[(pkg.findtext("c:name", "", NS), evr, pkg.findtext("c:arch", "", NS))] = (
            checksum.text.strip(), int(pkg.find("c:size", NS).get("package")), pkg.find("c:location", NS).get("href"))
    return suite, table


def resolve(img, workdir: Path) -> Lock:
    """Bootstrap the cell of ``img`` with dnf and return its lock."""
    from .bootstrap import isolated
    from .bootstrap.dnf import Dnf, rpmdb_path  # (bootstrap.dnf imports this module)

    cell = img.cell
    scratch = Path(workdir) / ".baseforge"
    scratch.mkdir(parents=True, exist_ok=True)
    with isolated(scratch, ".lock-") as tmp:  # (as a bootstrap: a killed lock leaves nothing for long)
        Dnf().bootstrap(cell, Path(tmp) / "rootfs.tar", Path(tmp))
        root = Path(tmp) / "rootfs"
        qf = "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\n"
        rows = output(["rpm", f"--root={root}", f"--dbpath={rpmdb_path(cell)}", "-qa", "--qf", qf]).splitlines()
        suites, table = [], {}
        for src in cell.sources:
            suite, found = _repo(cell, src, root / "var/cache/dnf")
            suites.append(suite)
            for key, value in found.items():
                table.setdefault(key, (src.suite, *value))
    packages = []
    for name, evr, arch in sorted(tuple(r.split("\t")) for r in rows if not r.startswith("gpg-pubkey\t")):
        evr = re.sub(r"^0:", "", evr)
        if (name, evr, arch) not in table:
            raise BaseforgeError(f"cell {cell.id}: installed package {name} {evr} ({arch}) is in none of the "
                                 "repositories",
                                 hint="every package of a locked cell must come from its configured sources")
        suite, sha, size, href = table[(name, evr, arch)]
        packages.append(Package(name, evr, arch, suite, sha, size, href))
    return Lock(cell.id, cell.epoch, tuple(suites), (), tuple(packages))


def bootstrap(plugin, cell, out_tar: Path, workdir: Path) -> None:
    """Build locked ``cell`` with ``plugin`` (dnf) from exactly its locked, signed packages."""
    lock = lockbuild.load(cell)
    by_suite = {s.suite: baseurl(cell, s) for s in cell.sources}
    cache, local = rpm_cache(cell.package_cache), workdir.resolve() / "locked"
    files = [lockbuild.Wanted(f"{p.name} {p.version} ({p.arch})", True, local / "Packages" / Path(p.filename).name,
                              p.sha256, cache / Path(p.filename).name if cache else None,
                              (f"{by_suite[p.suite]}/{p.filename}",)) for p in lock.packages]
    lockbuild.fetch_all(cell, files, snapshots=False)
    run(["createrepo_c", "--quiet", local])
    exact = tuple(f"{p.name}-{p.version}.{p.arch}" for p in sorted(lock.packages))
    pinned = dataclasses.replace(cell, lock=None, sources=(Source(local.as_uri(), "locked", ()),), packages=exact,
                                 options={**cell.options, "repo_gpgcheck": False})
    plugin.bootstrap(pinned, out_tar, workdir)
    lockbuild.keep(files)

