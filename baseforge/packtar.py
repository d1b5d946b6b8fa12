"""Writing a planned tree as a tar: sorted, numeric owners, mtimes clamped to the epoch, xattrs kept, PAX.

Same tree and raw tar in, same bytes out; the writer hashes and counts what it writes as it goes.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import BinaryIO

from .packtree import Item
from .tarnames import kept_xattrs, sort_key
from .run import atomic_output

_COPY_BUFSIZE = 1 << 20


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


def _tarinfo(name: str, item: Item, epoch: int) -> tarfile.TarInfo:
    ti = _TarInfo(name)
    src = item.src
    ti.uname = ti.gname = ""
    if src is None:
        ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = tarfile.REGTYPE, item.mode, 0, 0, epoch
        ti.size = len(item.data or b"")
        return ti
    ti.mode, ti.uid, ti.gid = src.mode, src.uid, src.gid
    ti.mtime = min(int(src.mtime), epoch)
    ti.pax_headers = kept_xattrs(src.pax_headers)  # file capabilities; no xattr of the build host
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


def write_tree(raw: tarfile.TarFile, items: dict[str, Item], out_tar: Path, epoch: int) -> tuple[str, int]:
    """Write ``items`` (contents from ``raw`` unless replaced) to ``out_tar`` atomically; its sha256 and size."""
    with atomic_output(out_tar) as f:
        out = _HashingWriter(f)
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
            tar.copybufsize = _COPY_BUFSIZE
            for name in sorted(items, key=sort_key):
                item = items[name]
                ti = _tarinfo(name, item, epoch)
                if ti.type != tarfile.REGTYPE:
                    tar.addfile(ti)
                elif item.data is not None:
                    tar.addfile(ti, io.BytesIO(item.data))
                else:
                    tar.addfile(ti, raw.extractfile(item.src))
    return out.sha256.hexdigest(), out.size
