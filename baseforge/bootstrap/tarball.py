"""tarball: import a rootfs tarball you already have (``options: {path: … or url: …, sha256: …}``).

The tarball is read once: its SHA-256 is computed from the bytes being unpacked and checked at the end
(a mismatch throws the result away). Every entry is checked before it is copied into the raw tar: no
absolute names, no ``..``, no entry below a symlink (a file written through a link lands wherever the
link points), no symlink whose target, resolved through the symlinks before it (and, once the whole
tarball is read, through all of them), climbs out of the root, no hard link to anything but an earlier
file (a hard link to a symlink is that symlink, checked from its new place), no name twice (a later
entry would silently replace the first) except a directory, no device node outside ``dev/``, at most
``options.max_size`` bytes unpacked. Setuid/setgid files and file capabilities are logged (and listed
in rootfs.json by pack). Compression (gzip, xz, bzip2) is undone; pack() normalizes the rest.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from ..download import check_sha256, download
from ..errors import BaseforgeError
from ..secret import redact
from ..spec import CellSpec
from . import Bootstrapper

log = logging.getLogger("baseforge")


CHANGED = "the tarball changed: check where it came from, then update options.sha256"

#: the most a tarball may unpack to (options.max_size overrides): a tar bomb gets a clear error, not a full disk
MAX_SIZE = 16 << 30


def open_source(cell: CellSpec, workdir: Path) -> Path:
    """The tarball at ``options.path``, or downloaded from ``options.url`` into the job's ``workdir``.

    Its SHA-256 is computed from the very bytes that are unpacked (:func:`copy_checked`), not from a
    first read of a path someone could change before a second one.
    """
    opts = cell.options
    if opts.get("path"):
        path = Path(opts["path"])
        if not path.is_file():
            raise BaseforgeError(f"{cell.id}: options.path {path} does not exist",
                                 hint="a relative path is relative to the workflow directory")
        return path
    url = opts.get("url", "")
    if urlparse(url).scheme not in ("http", "https", "file"):
        raise BaseforgeError(f"{cell.id}: options.url {redact(url)!r} is not an http(s) or file URL")
    return download(url, workdir / "download")


class _Hashing(io.RawIOBase):
    """A read-only stream that hashes every byte read through it."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # noqa: ANN001 - a writable buffer
        n = self._f.readinto(buf)
        self.sha256.update(memoryview(buf)[:n])
        return n

    def finish(self) -> str:
        """Hash what is left after the tar's end (padding), and return the hex digest of everything."""
        for block in iter(lambda: self._f.read(1 << 20), b""):
            self.sha256.update(block)
        return self.sha256.hexdigest()


def _name(raw: str) -> str:
    """'./usr/bin/' -> 'usr/bin'; '' for the root itself."""
    return "/".join(p for p in raw.split("/") if p not in ("", "."))


class Checker:
    """Checks the members of one tarball, in order; raises on the first one that could escape the root.

    Every symlink target is resolved against the symlinks seen so far (``x/up -> ..`` then
    ``y -> x/up/..`` climbs out, though ``x/up/..`` alone looks harmless), and the unpacked size is capped.
    """

    def __init__(self, tarball: str, max_size: int = MAX_SIZE) -> None:
        self.tarball = tarball
        self.max_size = max_size
        self.size = 0
        #: name -> "dir", "sym" or "other", of every entry so far
        self.seen: dict[str, str] = {}
        self.symlinks: dict[str, str] = {}
        #: setuid/setgid files and files with capabilities, for the log and the manifest
        self.privileged: list[str] = []

    def bad(self, member: tarfile.TarInfo | str, why: str) -> BaseforgeError:
        name = member if isinstance(member, str) else member.name
        return BaseforgeError(f"{self.tarball}: entry {name!r} {why}; refusing to import it",
                              hint="the tarball is broken or malicious: rebuild it from a trusted rootfs")

    def resolve(self, start: list[str], target: str, depth: int = 0) -> list[str] | None:
        """The path ``target`` leads to from directory ``start``, following the symlinks seen so far; None
        when it climbs above the root."""
        if depth > 40:
            raise BaseforgeError(f"{self.tarball}: a chain of more than 40 symlinks at {target!r}; refusing to import it",
                                 hint="the tarball is broken or malicious: rebuild it from a trusted rootfs")
        stack = [] if target.startswith("/") else list(start)
        for part in target.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not stack:
                    return None
                stack.pop()
                continue
            stack.append(part)
            link = self.symlinks.get("/".join(stack))
            if link is not None:
                stack = self.resolve(stack[:-1], link, depth + 1)
                if stack is None:
                    return None
        return stack

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
        self.size += 512 + (m.size if m.isreg() else 0)
        if self.size > self.max_size:
            raise self.bad(m, f"takes the unpacked size past {self.max_size} bytes (options.max_size): a tar bomb?")
        kind = "dir" if m.isdir() else "sym" if m.issym() else "other"
        if name in self.seen and not (kind == "dir" == self.seen[name]) or (not name and kind != "dir"):
            raise self.bad(m, "names the root, and is not a directory" if not name else
                           "appears twice (the later entry would silently replace the first)")
        link = m.linkname if m.issym() else None
        if m.islnk():
            target = _name(m.linkname)
            if (m.linkname.startswith("/") or ".." in m.linkname.split("/")
                    or self.seen.get(target) not in ("other", "sym")):
                raise self.bad(m, f"is a hard link to {m.linkname!r}, which is not an earlier entry of the tarball "
                                  "(a file or a symlink)")
            link = self.symlinks.get(target)  # a hard link to a symlink is a symlink, read from its new place
        if link is not None:
            # absolute targets resolve inside the container's root; no target may climb out of it
            if self.resolve(name.split("/")[:-1], link) is None:
                raise self.bad(m, f"is a symlink to {link!r}, outside the root (through the symlinks before it)")
            self.symlinks[name] = link
        elif m.isdev() and not name.startswith("dev/"):
            raise self.bad(m, "is a device node outside dev/")
        if m.isreg() and (m.mode & 0o6000 or "SCHILY.xattr.security.capability" in m.pax_headers):
            self.privileged.append(name)
        self.seen[name] = kind
        return name

    def finish(self) -> None:
        """Once every entry is read: no symlink climbs out through links that came after it (``y -> a/..``
        first, then ``a -> d/e`` and ``d/e -> ..``)."""
        for name, link in self.symlinks.items():
            if self.resolve(name.split("/")[:-1], link) is None:
                raise self.bad(name, f"is a symlink to {link!r}, outside the root (through the symlinks after it)")


def copy_checked(src: Path, out_tar: Path, label: str, sha256: str | None = None, max_size: int = MAX_SIZE) -> int:
    """Copy every entry of ``src`` (any compression) to the uncompressed ``out_tar``, checking each one and
    hashing the bytes as they are read; ``sha256``: what they must hash to (checked before any complaint
    about an entry, so a changed tarball is reported as such)."""
    checker = Checker(label, max_size)
    count = 0
    with open(src, "rb") as raw:
        stream = _Hashing(raw)
        try:
            with tarfile.open(fileobj=io.BufferedReader(stream, 1 << 20), mode="r|*") as tin, \
                    tarfile.open(out_tar, "w", format=tarfile.PAX_FORMAT) as tout:
                for m in tin:
                    checker.check(m)
                    tout.addfile(m, tin.extractfile(m) if m.isreg() else None)
                    count += 1
            checker.finish()
        except (BaseforgeError, tarfile.TarError, EOFError, OSError) as err:
            _check_sha256(stream.finish(), sha256, label)
            if isinstance(err, BaseforgeError):
                raise
            raise BaseforgeError(f"{label} is not a readable tar archive: {err}") from None
        _check_sha256(stream.finish(), sha256, label)
    if not count:
        raise BaseforgeError(f"{label} is empty")
    for name in checker.privileged:
        log.info("%s: setuid/setgid or file capabilities: %s", label, name)
    return count


def _check_sha256(got: str, want: str | None, label: str) -> None:
    if want is not None:
        check_sha256(got, want, label, hint=CHANGED)


class Tarball(Bootstrapper, name="tarball"):
    def bootstrap(self, cell: CellSpec, out_tar: Path, workdir: Path) -> None:
        src = open_source(cell, workdir)
        label = cell.options.get("path") or redact(cell.options.get("url", ""))
        copy_checked(src, out_tar, label, sha256=cell.options.get("sha256", ""), max_size=cell.options.get("max_size", MAX_SIZE))

    def version(self) -> str:
        return "builtin"
