"""A download cache of verified .deb files shared by every bootstrap (safe for parallel jobs)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("baseforge")


def merge(incoming: Path, cache: Path) -> int:
    """Move the .deb files of ``incoming`` into ``cache``, each by an atomic rename; return how many were new.

    apt checked every file against the signed index before installing it, so what arrives here is
    verified. Readers only ever see complete files, and two jobs adding the same file is harmless.
    """
    added = 0
    # half-copied files wait beside the cache, not in it: bootstraps copy the whole folder in
    staging = cache.parent / f".{cache.name}.incoming"
    staging.mkdir(exist_ok=True)
    for deb in sorted(incoming.glob("*.deb")):
        target = cache / deb.name
        if target.exists():
            continue
        fd, tmp = tempfile.mkstemp(dir=staging, prefix=deb.name, suffix=".part")
        os.close(fd)
        try:
            shutil.copyfile(deb, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
            added += 1
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    log.info("package cache %s: %d new .deb files", cache, added)
    return added
