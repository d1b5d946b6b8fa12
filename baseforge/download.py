"""Files the config names by URL (a static apk, a rootfs tarball): downloaded, then checked against the
SHA-256 the config gives, before anything uses them (the tarball bootstrapper hashes the bytes as it
unpacks them instead, and checks the sum with :func:`check_sha256`)."""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from pathlib import Path

from .errors import BaseforgeError
from .secret import redact, request


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(got: str, want: str, label: str, hint: str) -> None:
    """An error naming ``label`` (where the bytes came from) and both sums unless ``got`` is ``want``."""
    if got != want:
        raise BaseforgeError(f"{label}: sha256 is {got}, the config says {want}", hint=hint)


def verify(path: Path, want: str, label: str, hint: str) -> Path:
    """``path`` if its SHA-256 is ``want``; else an error naming ``label`` (where it came from) and both sums."""
    check_sha256(sha256_file(path), want, label, hint)
    return path


def download(url: str, target: Path, timeout: float = 60) -> Path:
    """``url``, saved to ``target`` (its ``user:password@`` sent as HTTP basic auth; an error names the URL
    without them)."""
    try:
        with urllib.request.urlopen(request(url), timeout=timeout) as resp, open(target, "wb") as f:
            shutil.copyfileobj(resp, f)
    except (OSError, ValueError) as err:  # urllib.error.URLError is an OSError
        raise BaseforgeError(redact(f"{url}: {getattr(err, 'reason', None) or err}"),
                             hint="check the URL and that the server answers") from None
    return target


def fetch_verified(url: str, target: Path, want: str, hint: str, timeout: float = 60) -> Path:
    """Download ``url`` to ``target`` and check it against ``want`` (an error names the URL without credentials)."""
    return verify(download(url, target, timeout), want, redact(url), hint)
