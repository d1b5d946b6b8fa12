"""Image layers as file trees: flatten an image's layers into one tar, and turn two trees into one layer.

Both follow the OCI image spec's layer rules ("Representing Changes"): a ``.wh.<name>`` entry deletes
``<name>`` of the layers below, ``.wh..wh..opq`` empties its directory, and a layer holds every entry that
is new or changed (type, mode, owner, mtime, xattrs, link target or contents) plus a whiteout for every
entry that is gone. Output tars are written in path order with the metadata of the tree they come from,
so the same trees give the same bytes.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .ociread import read
from .run import atomic_output
from .tarnames import kept_xattrs, normalize, sort_key

log = logging.getLogger("baseforge")

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def _norm(name: str) -> str:
    return normalize(name, "layer entry", hint="the layer is broken: rebuild it")


def _under(name: str, parent: str) -> bool:
    return not parent or name.startswith(parent + "/")


@contextlib.contextmanager
def layer_tars(archive: Path, workdir: Path) -> Iterator[list[tarfile.TarFile]]:
    """The layers of the image in ``archive``, bottom first, each uncompressed into ``workdir`` and opened."""
    manifest = read(archive).manifest
    with contextlib.ExitStack() as stack:
        outer = stack.enter_context(tarfile.open(archive, "r:"))
        names = {_norm(m.name): m.name for m in outer.getmembers() if m.isfile()}
        tars = []
        for i, desc in enumerate(manifest["layers"]):
            algo, _, hexdigest = desc["digest"].partition(":")
            blob: IO[bytes] = outer.extractfile(names[f"blobs/{algo}/{hexdigest}"])
            if desc["mediaType"].endswith("gzip"):
                blob = gzip.GzipFile(fileobj=blob, mode="rb")
            path = workdir / f"layer-{i}.tar"
            with path.open("wb") as f:
                shutil.copyfileobj(blob, f, 1 << 20)
            tars.append(stack.enter_context(tarfile.open(path, "r:")))
        yield tars


def _drop(entries: dict, top: str, keep_top: bool = False) -> None:
    for name in [n for n in entries if (n == top and not keep_top) or _under(n, top)]:
        del entries[name]


def merged(tars: list[tarfile.TarFile]) -> dict[str, tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Path -> (layer, member) of the tree the layers make, whiteouts applied."""
    entries: dict[str, tuple[tarfile.TarFile, tarfile.TarInfo]] = {}
    for tf in tars:
        for m in tf.getmembers():
            name = _norm(m.name)
            if not name:
                continue
            parent, _, base = name.rpartition("/")
            if base == OPAQUE:
                _drop(entries, parent, keep_top=True)
            elif base.startswith(WHITEOUT):
                _drop(entries, f"{parent}/{base[len(WHITEOUT):]}".lstrip("/"))
            else:
                if not m.isdir():
                    _drop(entries, name)
                entries[name] = (tf, m)
    return entries


def _copy(out: tarfile.TarFile, name: str, src: tarfile.TarFile, m: tarfile.TarInfo, linkable: set[str]) -> None:
    """Write member ``m`` of ``src`` as ``name``; a hard link becomes a copy unless its target is ``linkable``
    (written already, with the contents the link means)."""
    ti = _info(m, name)
    if m.islnk():
        target = _norm(m.linkname)
        if target in linkable:
            ti.linkname = target
            out.addfile(ti)
            return
        ti.type, ti.size = tarfile.REGTYPE, src.getmember(m.linkname).size
        out.addfile(ti, src.extractfile(m))
    elif m.isreg():
        out.addfile(ti, src.extractfile(m))
    else:
        out.addfile(ti)


def _info(m: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    for key in ("mode", "uid", "gid", "mtime", "type", "linkname", "size", "devmajor", "devminor"):
        setattr(ti, key, getattr(m, key))
    ti.uname = ti.gname = ""
    ti.pax_headers = kept_xattrs(m.pax_headers)
    if not m.isreg():
        ti.size = 0
    return ti


def flatten(archive: Path, out: Path, workdir: Path) -> int:
    """Write the one tree the layers of the image in ``archive`` make to the tar ``out``; return its entries."""
    with layer_tars(archive, workdir) as tars, atomic_output(out) as f:
        entries = merged(tars)
        written: set[str] = set()
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(entries, key=sort_key):
                src, m = entries[name]
                # a link into a lower layer whose target an upper layer replaced keeps the old contents
                target = _norm(m.linkname) if m.islnk() else ""
                _copy(tar, name, src, m, {target} if target in written and entries[target][0] is src else set())
                written.add(name)
    log.info("flattened %s: %d entries", archive, len(entries))
    return len(entries)


@dataclass(frozen=True)
class _Entry:
    member: tarfile.TarInfo
    key: tuple  # what makes two entries the same file


def _index(tf: tarfile.TarFile) -> dict[str, _Entry]:
    """Every entry of a tree tar with its comparison key (hard links compare by their target's contents)."""
    members = {_norm(m.name): m for m in tf.getmembers() if _norm(m.name)}
    digests: dict[str, str] = {}
    for name, m in members.items():
        if m.isreg():
            h = hashlib.sha256()
            with tf.extractfile(m) as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            digests[name] = h.hexdigest()
    out = {}
    for name, m in members.items():
        xattrs = tuple(kept_xattrs(m.pax_headers).items())
        common = (m.mode, m.uid, m.gid, int(m.mtime), xattrs)
        if m.islnk() or m.isreg():
            kind = ("file", digests.get(_norm(m.linkname)) if m.islnk() else digests[name])
        else:
            kind = (m.type, m.linkname, m.devmajor, m.devminor)
        out[name] = _Entry(m, kind + common)
    return out


def _groups(index: dict[str, _Entry]) -> dict[str, set[str]]:
    """Name -> every name of its hard-link group (only for names that are in one)."""
    groups: dict[str, set[str]] = {}
    for name, e in index.items():
        if e.member.islnk():
            holder = _norm(e.member.linkname)
            group = groups.setdefault(holder, {holder})
            group.add(name)
            groups[name] = group
    return groups


def diff(base: Path, new: Path, out: Path, epoch: int) -> dict[str, int]:
    """Write the layer that turns the tree tar ``base`` into the tree tar ``new``: changed and new entries
    (with their parent directories), whiteouts for entries that are gone. Returns counts."""
    with tarfile.open(base, "r:") as btf, tarfile.open(new, "r:") as ntf:
        old, cur = _index(btf), _index(ntf)
        changed = {n for n, e in cur.items() if n not in old or old[n].key != e.key}
        groups = _groups(cur)
        for name in list(changed):
            changed |= groups.get(name, set())
        gone = {n for n in old if n not in cur}
        # a whiteout for the top only; none under a directory that became a file or link (that hides it all)
        gone = {n for n in gone if not any(p in gone or (p in cur and not cur[p].member.isdir()) for p in _ancestors(n))}
        for name in changed | gone:
            changed |= {p for p in _ancestors(name) if p in cur}
        whiteouts = {f"{n.rpartition('/')[0]}/{WHITEOUT}{n.rpartition('/')[2]}".lstrip("/") for n in gone}
        with atomic_output(out) as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            written: set[str] = set()
            for name in sorted(changed | whiteouts, key=sort_key):
                if name in whiteouts:
                    ti = tarfile.TarInfo(name)
                    ti.mtime, ti.mode, ti.uname, ti.gname = epoch, 0o644, "", ""
                    tar.addfile(ti)
                else:
                    _copy(tar, name, ntf, cur[name].member, written)
                    written.add(name)
    counts = {"changed": len(changed), "deleted": len(gone)}
    log.info("layer %s: %d new or changed entries, %d whiteouts", out, counts["changed"], counts["deleted"])
    return counts


def _ancestors(name: str) -> Iterator[str]:
    while "/" in name:
        name = name.rpartition("/")[0]
        yield name
