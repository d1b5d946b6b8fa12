"""Turn a raw rootfs tar into a normalized, reproducible one (rule pack).

One pass over the raw tar does what debuerreotype spreads over ``-fixup``, ``-minimizing-config``,
``-slimify`` and ``-tar``:

1. drop or empty what leaks from the build host or the build moment (``data/leaks.tsv``);
2. rewrite the account files (``scrub.py``): no password hash, the "last password change" = the epoch;
3. for ``slim``, drop docs, man pages and translations (``data/slim.tsv``) and add the dpkg config that
   keeps them out later;
4. add Debian's container minimizing config (``data/minimize/``);
5. write entries sorted by path, owners numeric, mtimes clamped to the epoch, no atime/ctime, file
   capabilities kept (no other xattr: :data:`.tarnames.KEPT_XATTRS`), PAX format: the same input gives
   the same bytes.

The steps live in :mod:`.packdata` (the data files), :mod:`.packtree` (what goes into the output)
and :mod:`.packtar` (writing it); this module opens the raw tar, runs them and describes the result.
The raw tar must be uncompressed: members are read by random access, one at a time, so memory holds
the tree's metadata, never its contents.
"""

from __future__ import annotations

import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path

from .errors import BaseforgeError
from .manifest import packages, privileged, write_manifest
from .packdata import leak_action, load_leak_rules, load_slim_rules, minimize_files  # noqa: F401 (the packer's API)
from .packtar import write_tree
from .packtree import plan_tree
from .run import write_json
from .spec import FAMILIES

log = logging.getLogger("baseforge")


@dataclass(frozen=True)
class PackResult:
    """What pack() wrote: the tar's SHA-256 and size in bytes, and how many entries it holds."""

    sha256: str
    size: int
    entries: int

    def to_dict(self) -> dict:
        return {"sha256": self.sha256, "size": self.size, "entries": self.entries}


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
        items = plan_tree(raw, epoch=epoch, slim=slim, family=family)
        sha256, size = write_tree(raw, items, out_tar, epoch)
    result = PackResult(sha256, size, len(items))
    log.info("packed %s: %d entries, %d bytes, sha256 %s", out_tar, result.entries, result.size, result.sha256)
    return result


def pack_rootfs(raw_tar: Path | str, *, tar: Path | str, manifest: Path | str, info: Path | str, epoch: int,
                slim: bool, family: str) -> dict:
    """Rule pack: the normalized tar, its package manifest, and a small JSON description of both."""
    result = pack(Path(raw_tar), Path(tar), epoch=epoch, slim=slim, family=family)
    pkgs = packages(Path(tar))
    write_manifest(pkgs, Path(manifest))
    with tarfile.open(tar) as tf:
        members = tf.getmembers()
    description = {**result.to_dict(), "epoch": epoch, "slim": slim, "packages": len(pkgs),
                   "privileged": privileged(members)}
    write_json(info, description)
    return description
