"""Files the config names by URL (a static apk, a rootfs tarball): downloaded, then checked against the
SHA-256 the config gives, before anything uses them."""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from pathlib import Path

from .errors import BaseforgeError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, want: str, label: str, hint: str) -> Path:
    """``path`` if its SHA-256 is ``want``; else an error naming ``label`` (where it came from) and both sums."""
    got = sha256_file(path)
    if got != want:
        raise BaseforgeError(f"{label}: sha256 is {got}, the config says {want}", hint=hint)
    return path


def fetch_verified(url: str, target: Path, want: str, hint: str, timeout: float = 60) -> Path:
    """Download ``url`` to ``target`` and check it against ``want``."""
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(target, "wb") as f:
        shutil.copyfileobj(resp, f)
    return verify(target, want, url, hint)
