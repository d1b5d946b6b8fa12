"""Turn a raw rootfs tar into a normalized, reproducible one.

One pass over the raw tar does what debuerreotype spreads over ``-fixup``, ``-minimizing-config``,
``-slimify`` and ``-tar``:

1. drop or empty what leaks from the build host or the build moment (``data/leaks.tsv``);
2. rewrite the account files (``scrub.py``): no password hash, the "last password change" = the epoch;
3. for ``slim``, drop docs, man pages and translations (``data/slim.tsv``) and add the dpkg config that
   keeps them out later;
4. add Debian's container minimizing config (``data/minimize/``);
5. write entries sorted by path, owners numeric, mtimes clamped to the epoch, no atime/ctime, xattrs
   kept, PAX format: the same input gives the same bytes.

The raw tar must be uncompressed: members are read by random access, one at a time, so memory holds
the tree's metadata, never its contents.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import lzma
import posixpath
import shutil
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import BinaryIO

from . import scrub
from .errors import BaseforgeError
from .run import atomic_output, write_json

log = logging.getLogger("baseforge")

DATA = Path(__file__).parent / "data"
LEAKS_TSV = DATA / "leaks.tsv"
SLIM_TSV = DATA / "slim.tsv"
MINIMIZE_DIR = DATA / "minimize"

LEAK_ACTIONS = ("drop", "drop-children", "empty", "keep")
FAMILIES = ("debian", "rpm", "alpine", "none")  # "none": only the lines for any family
SLIM_DPKG_CFG = "etc/dpkg/dpkg.cfg.d/docker"
_COPY_BUFSIZE = 1 << 20


@dataclass(frozen=True)
class PackResult:
    """What pack() wrote: the tar's SHA-256 and size in bytes, and how many entries it holds."""

    sha256: str
    size: int
    entries: int

    def to_dict(self) -> dict:
        return {"sha256": self.sha256, "size": self.size, "entries": self.entries}


# --- the data files -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One line of leaks.tsv or slim.tsv."""

    action: str
    glob: str
    family: str
    reason: str


def _read_tsv(path: Path, fields: int) -> Iterator[tuple[int, list[str]]]:
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != fields or not all(c.strip() for c in cols):
            raise BaseforgeError(
                f"{path}:{lineno}: expected {fields} non-empty TAB-separated fields, got {line!r}",
                hint="see the comment at the top of the file for the format",
            )
        yield lineno, cols


def load_leak_rules(family: str, path: Path = LEAKS_TSV) -> list[Rule]:
    """The leaks.tsv lines that apply to ``family``, in file order (the first match wins)."""
    rules = []
    for lineno, (action, glob, fam, reason) in _read_tsv(path, 4):
        if action not in LEAK_ACTIONS or fam not in (*FAMILIES, "any"):
            raise BaseforgeError(
                f"{path}:{lineno}: unknown action {action!r} or family {fam!r}",
                hint=f"actions: {', '.join(LEAK_ACTIONS)}; families: {', '.join(FAMILIES)}, any",
            )
        if fam in (family, "any"):
            rules.append(Rule(action, glob.strip("/"), fam, reason))
    return rules


def load_slim_rules(path: Path = SLIM_TSV) -> list[Rule]:
    """The slim.tsv lines (family is always debian: dpkg path-exclude is a dpkg feature)."""
    rules = []
    for lineno, (action, glob, reason) in _read_tsv(path, 3):
        glob = glob.strip("/")
        if action not in ("exclude", "include") or (action == "exclude" and not glob.endswith("/*")):
            raise BaseforgeError(
                f"{path}:{lineno}: bad rule {action!r} {glob!r}",
                hint='actions are "exclude" (glob ending in "/*") and "include"',
            )
        rules.append(Rule(action, glob, "debian", reason))
    return rules


def leak_action(name: str, rules: list[Rule]) -> str | None:
    """The action of the first rule whose glob matches ``name``, or None."""
    for rule in rules:
        if fnmatchcase(name, rule.glob):
            return rule.action
    return None


def minimize_files() -> dict[str, bytes]:
    """Debian's container config (debuerreotype-minimizing-config), by path inside the rootfs."""
    return {p.relative_to(MINIMIZE_DIR).as_posix(): p.read_bytes() for p in sorted(MINIMIZE_DIR.rglob("*")) if p.is_file()}


def slim_dpkg_cfg(rules: list[Rule]) -> bytes:
    """etc/dpkg/dpkg.cfg.d/docker: the same excludes/includes for dpkg, so later installs stay slim."""
    lines = [
        '# This is the "slim" variant of the base image (baseforge, after debuerreotype-slimify).',
        "# Many files which are normally unnecessary in containers are excluded,",
        "# and this configuration file keeps them that way.",
        "# Remove this file (and reinstall packages) to get docs, man pages and translations back.",
    ]
    for action in ("exclude", "include"):
        lines.append("")
        for rule in rules:
            if rule.action == action:
                lines += [f"# {rule.reason}", f"path-{action} /{rule.glob}"]
    return ("\n".join(lines) + "\n").encode()


# --- planning: what goes into the output tar ---------------------------------------------------------


@dataclass
class _Item:
    """One output entry: metadata (and contents) from a raw member, or new contents."""

    src: tarfile.TarInfo | None  # the raw member; None for files pack() adds
    data: bytes | None = None  # replacement contents (emptied, rewritten, added files)
    mode: int = 0o644  # for added files
    hardlink: str | None = None  # written as a hard link to this (earlier) entry
    fixed: bool = False  # emptied: mode 0644, root:root, mtime = epoch, no xattrs (nothing of the build host)


def _normalize(name: str) -> str:
    """'./usr/bin/' -> 'usr/bin'; '.' and './' -> ''; refuses '..' components."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BaseforgeError(f"raw tar entry {name!r} points outside the rootfs", hint="the bootstrapper's output is broken")
    return "/".join(parts)


def _sort_key(name: str) -> list[str]:
    return name.split("/")


def _ancestors(name: str) -> Iterator[str]:
    while "/" in name:
        name = name.rpartition("/")[0]
        yield name


def _under(name: str, parent: str) -> bool:
    return name.startswith(parent + "/")


def _apply_leaks(items: dict[str, _Item], rules: list[Rule]) -> None:
    drop_below: set[str] = set()
    dropped = emptied = 0
    for name in sorted(items, key=_sort_key):
        if any(a in drop_below for a in _ancestors(name)):
            del items[name]
            dropped += 1
            continue
        action = leak_action(name, rules)
        if action == "drop":
            drop_below.add(name)
            del items[name]
            dropped += 1
        elif action == "drop-children":
            drop_below.add(name)
        elif action == "empty":
            src = items[name].src
            if src is not None and (src.isreg() or src.islnk()):
                items[name].data = b""
                items[name].fixed = True
                emptied += 1
    log.info("leaks: dropped %d entries, emptied %d files", dropped, emptied)



def _resolves(name: str, items: dict[str, _Item], depth: int = 0) -> str | None:
    """Where ``name`` leads inside the tree after following symlinks, or None if it dangles or loops."""
    if depth > 40:
        return None
    cur = ""
    parts = name.split("/")
    for i, part in enumerate(parts):
        if part in ("", "."):
            continue
        if part == "..":
            cur = cur.rpartition("/")[0]
            continue
        nxt = f"{cur}/{part}" if cur else part
        item = items.get(nxt)
        if item is None:
            return None
        src = item.src
        if src is not None and src.issym():
            base = "" if src.linkname.startswith("/") else cur
            target = _resolves(posixpath.join(base, src.linkname).lstrip("/"), items, depth + 1)
            if target is None:
                return None
            nxt = target
            item = items.get(nxt) if nxt else None
        last = i == len(parts) - 1
        if not last and nxt and not (item is not None and item.src is not None and item.src.isdir()):
            return None  # a path component that is not a directory
        cur = nxt
    return cur


def _apply_slim(items: dict[str, _Item], rules: list[Rule]) -> None:
    """debuerreotype-slimify: drop non-directory, non-symlink entries under each exclude unless included,
    then drop empty directories and dangling symlinks under the exclude's directory until none are left."""
    includes = [r.glob for r in rules if r.action == "include"]
    before = len(items)
    for rule in (r for r in rules if r.action == "exclude"):
        top = posixpath.dirname(rule.glob)
        for name in [n for n in items if _under(n, top) and fnmatchcase(n, rule.glob)]:
            src = items[name].src
            if src is not None and (src.isdir() or src.issym()):
                continue
            if not any(fnmatchcase(name, inc) for inc in includes):
                del items[name]
        while True:
            under = sorted((n for n in items if _under(n, top)), key=_sort_key)
            parents = {n.rpartition("/")[0] for n in under}
            gone = [
                n
                for n in under
                if (items[n].src is not None and items[n].src.isdir() and n not in parents)
                or (items[n].src is not None and items[n].src.issym() and _resolves(n, items) is None)
            ]
            if not gone:
                break
            for n in gone:
                del items[n]
    log.info("slim: dropped %d entries", before - len(items))


def _put(items: dict[str, _Item], name: str, data: bytes) -> bool:
    """Add a root-owned file, replacing whatever is at ``name``; only where the parent directory exists."""
    parent = posixpath.dirname(name)
    if parent and not (parent in items and items[parent].src is not None and items[parent].src.isdir()):
        log.warning("not adding %s: %s/ is not a directory in this rootfs", name, parent)
        return False
    for n in [n for n in items if n == name or _under(n, name)]:
        del items[n]
    items[name] = _Item(src=None, data=data, mode=0o755 if data.startswith(b"#!") else 0o644)
    return True


def _link_hardlinks(items: dict[str, _Item], members: dict[str, tarfile.TarInfo]) -> None:
    """Regroup hard links among the kept entries so every link points at an entry written before it.

    The first kept member of a group (in output order) carries the contents; the others link to it.
    A group whose data-holding member was dropped is not lost: the contents move to the next member.
    """
    groups: dict[str, list[str]] = {}
    for name, item in items.items():
        src = item.src
        if src is None or not (src.islnk() or src.isreg()):
            continue
        root = name
        seen = set()
        while members[root].islnk():
            seen.add(root)
            root = _normalize(members[root].linkname)
            if root not in members or root in seen:
                raise BaseforgeError(
                    f"hard link {name} points at {members[name].linkname!r}, which is not in the raw tar",
                    hint="the raw tar is truncated or was not written by a bootstrapper",
                )
        groups.setdefault(root, []).append(name)
    for root, names in groups.items():
        if len(names) == 1 and names[0] == root:
            continue
        names.sort(key=_sort_key)
        # Truncating one name of a hard-linked file truncates them all.
        data = b"" if any(items[n].data == b"" for n in names) else items[root].data if root in items else None
        holder = names[0]
        items[holder] = _Item(src=members[root], data=data, fixed=any(items[n].fixed for n in names))
        for n in names[1:]:
            items[n] = _Item(src=members[root], hardlink=holder)


# --- writing -----------------------------------------------------------------------------------------


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, b: bytes) -> int:
        self._f.write(b)
        self.sha256.update(b)
        self.size += len(b)
        return len(b)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._f.flush()


class _TarInfo(tarfile.TarInfo):
    """A TarInfo that writes PAX records as raw bytes, as GNU tar does.

    Binary xattr values (security.capability) make Python's tarfile add "hdrcharset=BINARY", which GNU
    tar answers with "Ignoring unknown extended header keyword" on every such entry. The record layout
    ("<len> <key>=<value>\\n") is POSIX; only the charset marker is left out.
    """

    @classmethod
    def _create_pax_generic_header(cls, pax_headers, type, encoding):  # noqa: A002 (tarfile's signature)
        records = b""
        for keyword, value in pax_headers.items():
            record = b" " + keyword.encode("utf-8") + b"=" + value.encode("utf-8", "surrogateescape") + b"\n"
            n = len(record) + 1
            while len(str(n)) + len(record) != n:  # the length field counts its own digits
                n = len(str(n)) + len(record)
            records += str(n).encode("ascii") + record
        info = {"name": "././@PaxHeader", "type": type, "size": len(records), "magic": tarfile.POSIX_MAGIC}
        return cls._create_header(info, tarfile.USTAR_FORMAT, "ascii", "replace") + cls._create_payload(records)


def _tarinfo(name: str, item: _Item, epoch: int) -> tarfile.TarInfo:
    ti = _TarInfo(name)
    src = item.src
    ti.uname = ti.gname = ""
    if src is None:
        ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = tarfile.REGTYPE, item.mode, 0, 0, epoch
        ti.size = len(item.data or b"")
        return ti
    ti.mode, ti.uid, ti.gid = src.mode, src.uid, src.gid
    ti.mtime = min(int(src.mtime), epoch)
    ti.pax_headers = {k: src.pax_headers[k] for k in sorted(src.pax_headers) if k.startswith("SCHILY.xattr.")}
    if item.fixed:  # an emptied file keeps nothing of the one the build host put there
        ti.mode, ti.uid, ti.gid, ti.mtime, ti.pax_headers = 0o644, 0, 0, epoch, {}
    if item.hardlink is not None:
        ti.type, ti.linkname = tarfile.LNKTYPE, item.hardlink
    elif src.isreg():  # also CONTTYPE and sparse members: written as plain files
        ti.type = tarfile.REGTYPE
        ti.size = len(item.data) if item.data is not None else src.size
    else:
        ti.type, ti.linkname = src.type, src.linkname
        ti.devmajor, ti.devminor = src.devmajor, src.devminor
    return ti


def _plan(raw: tarfile.TarFile, *, epoch: int, slim: bool, family: str) -> dict[str, _Item]:
    """Decide every output entry (metadata only; contents stay in the raw tar until written)."""
    members: dict[str, tarfile.TarInfo] = {}
    for m in raw.getmembers():
        name = _normalize(m.name)
        if name:  # no entry for the root directory itself
            members[name] = m  # a later member of the same name wins, as on extraction
    items = {name: _Item(src=m) for name, m in members.items()}

    _apply_leaks(items, load_leak_rules(family))
    for path, rewrite in scrub.REWRITES.items():
        item = items.get(path)
        if item is not None and item.src is not None and item.src.isreg() and item.data is None:
            item.data = rewrite(raw.extractfile(item.src).read(), epoch)
    if family == "debian":
        if slim:
            rules = load_slim_rules()
            _apply_slim(items, rules)
            _put(items, SLIM_DPKG_CFG, slim_dpkg_cfg(rules))
        for name, data in minimize_files().items():
            _put(items, name, data)
    elif slim:
        raise BaseforgeError(f"slim is only implemented for family debian, not {family!r}", hint="set slim: false for this image")
    _link_hardlinks(items, members)
    return items


def pack(raw_tar: Path, out_tar: Path, *, epoch: int, slim: bool = False, family: str = "debian") -> PackResult:
    """Write the normalized rootfs tar for ``raw_tar`` to ``out_tar`` (atomically) and describe it."""
    if family not in FAMILIES:
        raise BaseforgeError(f"unknown family {family!r}", hint=f"one of: {', '.join(FAMILIES)}")
    try:
        raw = tarfile.open(raw_tar, "r:")
    except tarfile.ReadError as e:
        raise BaseforgeError(
            f"{raw_tar} is not an uncompressed tar ({e})",
            hint="pack reads members by random access; decompress the bootstrapper's output first",
        ) from None
    with raw:
        items = _plan(raw, epoch=epoch, slim=slim, family=family)
        with atomic_output(out_tar) as f:
            out = _HashingWriter(f)
            with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
                tar.copybufsize = _COPY_BUFSIZE
                for name in sorted(items, key=_sort_key):
                    item = items[name]
                    ti = _tarinfo(name, item, epoch)
                    if ti.type != tarfile.REGTYPE:
                        tar.addfile(ti)
                    elif item.data is not None:
                        tar.addfile(ti, io.BytesIO(item.data))
                    else:
                        tar.addfile(ti, raw.extractfile(item.src))
    result = PackResult(out.sha256.hexdigest(), out.size, len(items))
    log.info("packed %s: %d entries, %d bytes, sha256 %s", out_tar, result.entries, result.size, result.sha256)
    return result


def compress(tar: Path, out: Path) -> None:
    """Compress ``tar`` to ``out`` reproducibly, by suffix: .gz (no name, mtime 0) or .xz (preset 6, CRC64).

    Python's zlib and liblzma are single-threaded, so the bytes depend only on the input and the
    library versions.
    """
    opener: Callable[[BinaryIO], BinaryIO]
    if out.name.endswith(".gz"):
        opener = lambda f: gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=f, mtime=0)  # noqa: E731
    elif out.name.endswith(".xz"):
        opener = lambda f: lzma.LZMAFile(f, "wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6)  # noqa: E731
    else:
        raise BaseforgeError(f"don't know how to compress to {out}", hint='name the output "*.tar.gz" or "*.tar.xz"')
    with open(tar, "rb") as src, atomic_output(out) as f:
        with opener(f) as z:
            shutil.copyfileobj(src, z, _COPY_BUFSIZE)


def pack_rootfs(raw_tar: Path | str, *, tar: Path | str, manifest: Path | str, info: Path | str, epoch: int,
                slim: bool, family: str) -> dict:
    """Rule pack: the normalized tar, its package manifest, and a small JSON description of both."""

    from .manifest import packages, privileged, write_manifest
    result = pack(Path(raw_tar), Path(tar), epoch=epoch, slim=slim, family=family)
    pkgs = packages(Path(tar))
    write_manifest(pkgs, Path(manifest))
    with tarfile.open(tar) as tf:
        members = tf.getmembers()
    content = sum(m.size for m in members if m.isfile())
    description = {**result.to_dict(), "content_size": content, "epoch": epoch, "slim": slim, "packages": len(pkgs),
                   "privileged": privileged(members)}
    write_json(info, description)
    return description
