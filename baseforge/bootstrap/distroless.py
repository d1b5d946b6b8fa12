"""distroless: only what named Debian packages need at run time: no shell, no apt, no dpkg (Google's distroless).

A variant ``{name: static, distroless: [base-files, netbase, tzdata, ca-certificates]}`` becomes a cell with
this bootstrapper and those packages. It

1. runs ``apt-get update`` in a scratch apt root (the cell's sources; the host's trusted keys and the cell's
   keyrings): apt verifies the suites' signatures and the indices' hashes;
2. resolves the packages (and base-files when the sources have it, for /etc/os-release) with their ``Pre-Depends``/``Depends``
   closure from those indices (:func:`resolve`): never ``Recommends``; the highest version that meets the
   constraints; alternatives and virtual packages prefer what is already chosen; dependencies that only
   maintainer scripts need (:data:`INSTALL_TIME`, ``Essential: yes`` packages) are not followed;
3. ``apt-get download``s exactly that set (apt checks each file against the signed index; so do we);
4. writes the tree from the packages' own data (``dpkg-deb --fsys-tarfile``), without running a maintainer
   script, minus docs, man pages and translations (:data:`DROP`), plus what distroless adds
   (:func:`generated`): /etc/passwd and /etc/group with root, nobody and nonroot (65532), /home/nonroot,
   /tmp (1777), the CA bundle that update-ca-certificates would write, and one dpkg status record per
   package in ``var/lib/dpkg/status.d/`` (with its ``.md5sums``) so SBOMs and scanners see the packages.
"""

from __future__ import annotations

import copy
import io
import logging
import posixpath
import re
import tarfile
from fnmatch import fnmatchcase
from pathlib import Path

from debian import deb822
from debian.debian_support import version_compare

from .. import lockbuild, pkgcache
from ..download import sha256_file
from ..errors import BaseforgeError
from ..run import output, run
from ..spec import CellSpec
from . import Bootstrapper

log = logging.getLogger("baseforge")

#: always in the set when the sources have it: /etc/os-release, /etc/debian_version and the license texts
ALWAYS = ("base-files",)
#: dependencies that only maintainer scripts use: not followed (a group with one of them is dropped whole)
INSTALL_TIME: dict[tuple[str, str], str] = {
    ("*", "debconf"): "asks configuration questions while maintainer scripts run; none run here",
    ("*", "debconf-2.0"): "the virtual package of debconf and its alternatives, same reason",
    ("*", "cdebconf"): "an alternative debconf, same reason",
    ("*", "init-system-helpers"): "deb-systemd-helper and update-rc.d for maintainer scripts; no init here",
    ("*", "adduser"): "maintainer scripts create system users with it; /etc/passwd is written here",
    ("base-files", "awk"): "base-files' postinst edits files with awk (Pre-Depends); no postinst runs here",
    ("base-files", "mawk"): "the awk base-files' postinst uses, same reason",
    ("ca-certificates", "openssl"): "update-ca-certificates' 'openssl rehash'; the bundle is written natively here",
}
#: files distroless leaves out (the copyright files stay, for license compliance): docs, man pages and
#: translations (as Debian's -slim); the certificates that the bundle in etc/ssl/certs holds, and the
#: shell script that would make it (there is no shell)
DROP = ("usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "usr/share/lintian/*", "usr/share/locale/*",
        "usr/share/bug/*", "usr/share/doc-base/*", "usr/share/gdb/*", "usr/share/ca-certificates/*",
        "usr/sbin/update-ca-certificates")
KEEP = ("usr/share/doc/*/copyright",)
PASSWD = ("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
          "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
GROUP = "root:x:0:\ntty:x:5:\nstaff:x:50:\nnobody:x:65534:\nnonroot:x:65532:\n"
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"
STATUS_D = "var/lib/dpkg/status.d"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
CA_DIR = "usr/share/ca-certificates/"
#: (path, mode, uid) of the directories every distroless tree has
DIRS = (("etc", 0o755, 0), ("etc/ssl", 0o755, 0), ("etc/ssl/certs", 0o755, 0), ("home", 0o755, 0),
        ("home/nonroot", 0o700, 65532), ("root", 0o700, 0), ("tmp", 0o1777, 0), ("var", 0o755, 0),
        ("var/lib", 0o755, 0), ("var/lib/dpkg", 0o755, 0), (STATUS_D, 0o755, 0))


# --- resolving ---------------------------------------------------------------------------------------


#: the fields the index scans each paragraph for; python-debian parses a paragraph only when the resolver
#: reaches it (parsing all of Debian's main index takes it ~20 s)
_FIELDS = re.compile(r"^(Package|Architecture|Provides):[ \t]*(.*(?:\n[ \t].*)*)", re.MULTILINE)


class Index:
    """The packages of the cell's architecture (and ``all``) in a set of Packages files, and who provides what."""

    def __init__(self, texts: list[str], arch: str) -> None:
        self.arch = arch
        self.real: dict[str, list[int]] = {}  # name -> its paragraphs (numbers)
        self._provided: dict[str, list[int]] = {}  # name -> the paragraphs that may provide it
        self._paragraphs: list[str] = []
        self._parsed: dict[int, deb822.Packages] = {}
        for text in texts:
            for para in re.split(r"\n[ \t]*\n", text):
                fields = {m.group(1): m.group(2) for m in _FIELDS.finditer(para)}
                if fields.get("Architecture") not in (arch, "all") or "Package" not in fields:
                    continue
                self.real.setdefault(fields["Package"], []).append(len(self._paragraphs))
                for item in fields.get("Provides", "").split(","):
                    name = re.match(r"\s*([^\s(:\[]*)", item).group(1)
                    if name:
                        self._provided.setdefault(name, []).append(len(self._paragraphs))
                self._paragraphs.append(para)

    def _get(self, i: int) -> deb822.Packages:
        """Paragraph ``i``, parsed once (the resolver compares packages by identity)."""
        if i not in self._parsed:
            self._parsed[i] = deb822.Packages(self._paragraphs[i])
        return self._parsed[i]

    def provides(self, name: str) -> list[tuple[deb822.Packages, str | None]]:
        """(package, provided version or None) of every package that provides ``name``, in index order."""
        out = []
        for i in dict.fromkeys(self._provided.get(name, [])):
            p = self._get(i)
            out += [(p, rel["version"][1] if rel["version"] else None)
                    for group in p.relations["provides"] for rel in group if rel["name"] == name]
        return out

    def candidates(self, rel: dict) -> list[deb822.Packages]:
        """Packages satisfying one relation (``name (op version)``): real ones, newest first, then providers."""
        def meets(version: str | None) -> bool:
            if not rel["version"]:
                return True
            if version is None:
                return False
            op, want = rel["version"]
            c = version_compare(version, want)
            return {"<<": c < 0, "<=": c <= 0, "=": c == 0, ">=": c >= 0, ">>": c > 0}[op]

        real = sorted((p for p in map(self._get, self.real.get(rel["name"], [])) if meets(p["Version"])),
                      key=_VersionKey, reverse=True)
        providers = sorted((p for p, v in self.provides(rel["name"]) if meets(v)), key=lambda p: p["Package"])
        return real + providers


class _VersionKey:
    def __init__(self, p: deb822.Packages) -> None:
        self.v = p["Version"]

    def __lt__(self, other: _VersionKey) -> bool:
        return version_compare(self.v, other.v) < 0


def _applies(rel: dict, arch: str) -> bool:
    """A relation's ``[arch …]`` restriction: positive lists must name ``arch``, negated ones must not."""
    restr = rel.get("arch")
    if not restr:
        return True
    if all(r.enabled for r in restr):
        return any(r.arch == arch for r in restr)
    return not any(r.arch == arch for r in restr if not r.enabled)


def _install_time(owner: str, name: str) -> bool:
    return (owner, name) in INSTALL_TIME or ("*", name) in INSTALL_TIME


def resolve(index: Index, names: list[str]) -> dict[str, deb822.Packages]:
    """The named packages and what they need at run time, by name (see the module docstring)."""
    chosen: dict[str, deb822.Packages] = {}
    todo = list(dict.fromkeys([*(a for a in ALWAYS if a in index.real), *names]))
    explicit = set(todo)
    for name in todo:
        if name not in index.real:
            raise BaseforgeError(f"distroless package {name!r} is not in the {index.arch} indices of the cell's sources",
                                 hint="check the name (apt-cache policy on a machine with these sources), components and architecture")
        chosen[name] = index.candidates({"name": name, "version": None})[0]
    queue = list(chosen.values())
    while queue:
        pkg = queue.pop(0)
        for field in ("pre-depends", "depends"):
            for group in pkg.relations[field]:
                group = [r for r in group if _applies(r, index.arch)]
                if not group or any(_install_time(pkg["Package"], r["name"]) for r in group):
                    continue
                picked = _pick(index, group, chosen, explicit, pkg["Package"])
                if picked is not None and picked["Package"] not in chosen:
                    chosen[picked["Package"]] = picked
                    queue.append(picked)
    return dict(sorted(chosen.items()))


def _pick(index: Index, group: list[dict], chosen: dict, explicit: set[str], owner: str) -> deb822.Packages | None:
    """The package that satisfies an alternatives group: one already chosen, else the first alternative's best
    candidate; None when an ``Essential: yes`` package would do (the set a shell and dpkg need, not ours)."""
    options = [(rel, index.candidates(rel)) for rel in group]
    for _, cands in options:
        for c in cands:
            if chosen.get(c["Package"]) is c:
                return c
    for rel, cands in options:
        if cands:
            c = cands[0]
            if c.get("Essential") == "yes" and c["Package"] not in explicit:
                return None
            return c
    wanted = " | ".join(r["name"] + (f" ({' '.join(r['version'])})" if r["version"] else "") for r in group)
    raise BaseforgeError(f"distroless: {owner} needs {wanted}, which no package of the cell's sources provides",
                         hint="add the component or source that has it, or name an alternative in distroless:")


# --- fetching ----------------------------------------------------------------------------------------


def apt_config(root: Path, cell: CellSpec) -> Path:
    """A scratch apt root for the cell: its sources, architecture, and trusted keys (the host's + the cell's)."""
    trusted = root / "etc/apt/trusted.gpg.d"
    for d in (trusted, root / "var/lib/dpkg", root / "var/lib/apt/lists/partial", root / "var/cache/apt/archives/partial"):
        d.mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").touch()
    for d in ("apt.conf.d", "preferences.d"):  # apt warns when they are missing
        (root / "etc/apt" / d).mkdir()
    keys = sorted(Path("/etc/apt/trusted.gpg.d").glob("*")) if Path("/etc/apt/trusted.gpg.d").is_dir() else []
    for i, key in enumerate([*keys, *map(Path, cell.keyrings)]):
        suffix = ".asc" if key.suffix == ".asc" else ".gpg"
        (trusted / f"{i:03d}-{key.stem}{suffix}").symlink_to(key.resolve())
    (root / "etc/apt/sources.list").write_text("".join(s.deb_line() + "\n" for s in cell.sources))
    conf = root / "apt.conf"
    conf.write_text(
        f'Dir "{root}/";\nDir::State::status "{root}/var/lib/dpkg/status";\n'
        f'APT::Architecture "{cell.arch}";\nAPT::Architectures {{ "{cell.arch}"; }};\n'
        # as root apt would fetch as _apt, which cannot enter the job's private (0700) scratch directory
        'Acquire::Languages "none";\nAcquire::GzipIndexes "false";\nAPT::Sandbox::User "root";\n'
        'APT::Install-Recommends "false";\n')
    return conf


def update(cell: CellSpec, workdir: Path) -> Path:
    """``apt-get update`` of the cell's sources in a scratch apt root in ``workdir`` (apt verifies the
    suites' signatures and the indices' hashes); returns apt's lists folder (kept uncompressed)."""
    # absolute: apt-get download runs in the download folder, and a relative APT_CONFIG it cannot read makes
    # it fall back to the build host's own configuration (its architecture, sources and lists)
    root = workdir.resolve() / "apt"
    env = {"APT_CONFIG": str(apt_config(root, cell))}
    try:  # apt-get update fails on a bad or missing signature (and on a source it cannot reach)
        run(["apt-get", "update", "-o", "APT::Update::Error-Mode=any"], env=env)
    except BaseforgeError as err:
        raise BaseforgeError(f"{cell.bootstrapper} {cell.id}: apt-get update of the cell's sources failed ({err.message})",
                             hint="apt's lines above say why: NO_PUBKEY or 'is not signed' wants the repository's key "
                                  "in the image's keyrings:, a failed fetch a reachable mirror") from None
    return root / "var/lib/apt/lists"


def fetch(cell: CellSpec, workdir: Path) -> tuple[dict[str, deb822.Packages], dict[str, Path]]:
    """Update the scratch apt root, resolve the cell's set, and download it: (packages, .deb by name)."""
    lists = update(cell, workdir)
    env = {"APT_CONFIG": str(lists.parents[3] / "apt.conf")}
    texts = [output(["/usr/lib/apt/apt-helper", "cat-file", str(f)], env=env) for f in sorted(lists.glob("*_Packages*"))]
    chosen = resolve(Index(texts, cell.arch), list(cell.packages))
    log.info("distroless set of %s: %s", cell.id, " ".join(f"{n}={p['Version']}" for n, p in chosen.items()))
    debs = workdir / "debs"
    debs.mkdir()
    cache = Path(cell.package_cache).resolve() if cell.package_cache else None
    # named as apt names them in its archives (and so in the package cache): an epoch's ":" is "%3a"
    files = {name: debs / f"{name}_{p['Version'].replace(':', '%3a')}_{p['Architecture']}.deb" for name, p in chosen.items()}
    missing = []
    for name, p in chosen.items():
        cached = cache / files[name].name if cache else None
        if cached and cached.is_file() and sha256_file(cached) == p["SHA256"]:
            files[name].write_bytes(cached.read_bytes())
        else:
            missing.append(f"{name}={p['Version']}")
    if missing:
        run(["apt-get", "download", "--", *missing], env=env, cwd=debs)
    for name, p in chosen.items():
        if not files[name].is_file() or sha256_file(files[name]) != p["SHA256"]:
            raise BaseforgeError(f"distroless: {files[name].name} does not match the SHA256 of the signed index",
                                 hint="a broken mirror or proxy; run again, or use another mirror")
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
        pkgcache.merge(debs, cache)
    return chosen, files


# --- the tree ----------------------------------------------------------------------------------------


def _normalize(name: str) -> str:
    return posixpath.normpath(name).lstrip("/")


def dropped(name: str) -> bool:
    return any(fnmatchcase(name, g) for g in DROP) and not any(fnmatchcase(name, g) for g in KEEP)


def status_record(control: str) -> str:
    """A dpkg status paragraph from a package's control file: its fields with ``Status`` after ``Package``."""
    para = deb822.Deb822(control)
    out = deb822.Deb822()
    for key, value in para.items():
        out[key] = value
        if key == "Package":
            out["Status"] = "install ok installed"
    return out.dump()


def ca_bundle(certs: dict[str, bytes]) -> bytes:
    """What update-ca-certificates writes with every certificate enabled (ca-certificates' default): each
    ``usr/share/ca-certificates/**.crt`` in path order, each ending in a newline."""
    return b"".join(data if data.endswith(b"\n") else data + b"\n" for _, data in sorted(certs.items()))


def generated(chosen: dict[str, deb822.Packages], controls: dict[str, tuple[str, bytes | None]],
              certs: dict[str, bytes]) -> dict[str, bytes]:
    """The files distroless adds to the packages' data, by path."""
    files = {"etc/passwd": PASSWD.encode(), "etc/group": GROUP.encode()}
    if "libc6" in chosen:
        files["etc/nsswitch.conf"] = NSSWITCH.encode()
    if "ca-certificates" in chosen:
        files[CA_BUNDLE] = ca_bundle(certs)
    for name, (control, md5sums) in controls.items():
        files[f"{STATUS_D}/{name}"] = status_record(control).encode()
        if md5sums:
            files[f"{STATUS_D}/{name}.md5sums"] = md5sums
    return files


def _control(deb: Path, workdir: Path) -> tuple[str, bytes | None]:
    """The control file and md5sums of a .deb."""
    ctrl = workdir / (deb.name + ".control.tar")
    ctrl.write_bytes(run(["dpkg-deb", "--ctrl-tarfile", deb], capture=True).stdout)
    with tarfile.open(ctrl) as tf:
        members = {m.name.lstrip("./"): m for m in tf.getmembers() if m.isfile()}
        control = tf.extractfile(members["control"]).read().decode()
        md5sums = tf.extractfile(members["md5sums"]).read() if "md5sums" in members else None
    return control, md5sums


def write_tree(chosen: dict[str, deb822.Packages], files: dict[str, Path], out_tar: Path, workdir: Path, epoch: int) -> None:
    """The raw rootfs: DIRS, every package's data (minus DROP), then the generated files."""
    datas: dict[str, tarfile.TarFile] = {}
    entries: dict[str, tuple[tarfile.TarFile, tarfile.TarInfo]] = {}
    controls, certs = {}, {}
    try:
        for name in chosen:
            fsys = workdir / (files[name].name + ".data.tar")
            fsys.write_bytes(run(["dpkg-deb", "--fsys-tarfile", files[name]], capture=True).stdout)
            datas[name] = tf = tarfile.open(fsys)
            controls[name] = _control(files[name], workdir)
            for m in tf.getmembers():
                path = _normalize(m.name)
                if m.isfile() and path.startswith(CA_DIR) and path.endswith(".crt") and name == "ca-certificates":
                    certs[path] = tf.extractfile(m).read()
                if path == "." or dropped(path):
                    continue
                entries[path] = (tf, m)
        extra = generated(chosen, controls, certs)
        _write(out_tar, entries, extra, epoch)
    finally:
        for tf in datas.values():
            tf.close()


def _write(out_tar: Path, entries: dict, extra: dict[str, bytes], epoch: int) -> None:
    with tarfile.open(out_tar, "w", format=tarfile.PAX_FORMAT) as out:
        for path, mode, uid in DIRS:
            ti = tarfile.TarInfo(path)
            ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = tarfile.DIRTYPE, mode, uid, uid, epoch
            if path not in entries:
                out.addfile(ti)
        for path, (tf, m) in entries.items():
            if path in extra:
                continue
            ti = copy.copy(m)
            ti.name = path
            if m.islnk():
                ti.linkname = _normalize(m.linkname)
            out.addfile(ti, tf.extractfile(m) if m.isfile() else None)
        for path, data in sorted(extra.items()):
            ti = tarfile.TarInfo(path)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, epoch
            out.addfile(ti, io.BytesIO(data))


class Distroless(Bootstrapper, name="distroless"):
    binaries = ("apt-get", "dpkg-deb", "gpgv")

    locks = True
    locks_from_index = True

    def choose(self, cell: CellSpec, texts: list[str]) -> dict[str, deb822.Packages]:
        return resolve(Index(texts, cell.arch), list(cell.packages))

    def bootstrap(self, cell: CellSpec, out_tar: Path, workdir: Path) -> None:
        if cell.lock:  # exactly the locked set, each .deb by its locked sha256 (cache, mirror, snapshot archive)
            files = lockbuild.debs(cell, workdir / "debs")
            write_tree(dict.fromkeys(files), files, out_tar, workdir, cell.epoch)
        else:
            write_tree(*fetch(cell, workdir), out_tar, workdir, cell.epoch)

    def version(self) -> str:
        return "apt " + output(["apt-get", "--version"]).split()[1]
