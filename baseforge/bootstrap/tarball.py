"""tarball: import a rootfs tarball you already have (``options: {path: … or url: …, sha256: …}``).

The tarball's SHA-256 is checked first. Then every entry is checked before it is copied into the raw
tar: no absolute names, no ``..``, no entry below a symlink (a file written through a link lands
wherever the link points), no symlink whose target climbs out of the root, no hard link to anything
but an earlier entry. Compression (gzip, xz, bzip2) is undone; pack() normalizes the rest.
"""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path
from urllib.parse import urlparse

from ..download import fetch_verified, verify
from ..errors import BaseforgeError
from ..spec import CellSpec
from . import Bootstrapper


CHANGED = "the tarball changed: check where it came from, then update options.sha256"


def fetch(cell: CellSpec, workdir: Path) -> Path:
    """The tarball at ``options.path`` or downloaded from ``options.url``, its SHA-256 checked."""
    opts = cell.options
    if opts.get("path"):
        path = Path(opts["path"])
        if not path.is_file():
            raise BaseforgeError(f"{cell.id}: options.path {path} does not exist",
                                 hint="a relative path is relative to the workflow directory")
        return verify(path, opts.get("sha256", ""), str(path), hint=CHANGED)
    url = opts.get("url", "")
    if urlparse(url).scheme not in ("http", "https", "file"):
        raise BaseforgeError(f"{cell.id}: options.url {url!r} is not an http(s) or file URL")
    return fetch_verified(url, workdir / "download", opts.get("sha256", ""), hint=CHANGED)


def _name(raw: str) -> str:
    """'./usr/bin/' -> 'usr/bin'; None-like '' for the root itself."""
    return "/".join(p for p in raw.split("/") if p not in ("", "."))


def _inside(path: str) -> bool:
    """Does a normalized-from-root relative path stay inside the root?"""
    return not posixpath.normpath(path or ".").startswith("..")


class Checker:
    """Checks the members of one tarball, in order; raises on the first one that could escape the root."""

    def __init__(self, tarball: str) -> None:
        self.tarball = tarball
        self.seen: set[str] = set()
        self.symlinks: set[str] = set()

    def bad(self, member: tarfile.TarInfo, why: str) -> BaseforgeError:
        return BaseforgeError(f"{self.tarball}: entry {member.name!r} {why}; refusing to import it",
                              hint="the tarball is broken or malicious: rebuild it from a trusted rootfs")

    def check(self, m: tarfile.TarInfo) -> str:
        if m.name.startswith("/"):
            raise self.bad(m, "has an absolute path")
        if ".." in m.name.split("/"):
            raise self.bad(m, "has a '..' path component")
        name = _name(m.name)
        parents = [name.rsplit("/", n)[0] for n in range(1, name.count("/") + 1)]
        via = next((p for p in parents if p in self.symlinks), None)
        if via:
            raise self.bad(m, f"is written through the symlink {via!r}")
        if m.issym():
            # absolute targets resolve inside the container's root; relative ones must not climb out of it
            if not m.linkname.startswith("/") and not _inside(posixpath.join(posixpath.dirname(name), m.linkname)):
                raise self.bad(m, f"is a symlink to {m.linkname!r}, outside the root")
            self.symlinks.add(name)
        elif m.islnk():
            target = _name(m.linkname)
            if m.linkname.startswith("/") or ".." in m.linkname.split("/") or target not in self.seen:
                raise self.bad(m, f"is a hard link to {m.linkname!r}, which is not an earlier entry of the tarball")
        elif m.isdev() and not name.startswith("dev/"):
            raise self.bad(m, "is a device node outside dev/")
        else:
            self.symlinks.discard(name)  # a later entry replaces an earlier symlink
        self.seen.add(name)
        return name


def copy_checked(src: Path, out_tar: Path, label: str) -> int:
    """Copy every entry of ``src`` (any compression) to the uncompressed ``out_tar``, checking each one."""
    checker = Checker(label)
    count = 0
    try:
        with tarfile.open(src, "r|*") as tin, tarfile.open(out_tar, "w", format=tarfile.PAX_FORMAT) as tout:
            for m in tin:
                checker.check(m)
                tout.addfile(m, tin.extractfile(m) if m.isreg() else None)
                count += 1
    except tarfile.TarError as err:
        raise BaseforgeError(f"{label} is not a readable tar archive: {err}") from None
    if not count:
        raise BaseforgeError(f"{label} is empty")
    return count


class Tarball(Bootstrapper, name="tarball"):
    def bootstrap(self, cell: CellSpec, out_tar: Path, workdir: Path) -> None:
        src = fetch(cell, workdir)
        copy_checked(src, out_tar, cell.options.get("path") or cell.options.get("url"))

    def version(self) -> str:
        return "builtin"
