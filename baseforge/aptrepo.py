"""Reading an apt archive's files: InRelease (date, file hashes), Packages stanzas, dpkg status, and
fetching a file by URL verified against a sha256. Signatures are apt's job (it checks every InRelease
this module reads, at lock time and again in every locked build)."""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import lzma
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from .download import sha256_file  # noqa: F401  (the one implementation; lock modules call it through here)
from .secret import redact, request

TIMEOUT = 30


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """deb822 paragraphs (Packages, dpkg status, Release) as dicts; continuation lines are joined."""
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line and not line.startswith("-----"):
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def release_date(inrelease: str) -> str:
    """The ``Date:`` of a (In)Release file as ISO 8601 UTC (``2024-06-01T12:00:00Z``)."""
    match = re.search(r"^Date:\s*(.+)$", inrelease, re.MULTILINE)
    if not match:
        raise ValueError("no Date: field")
    when = email.utils.parsedate_to_datetime(match.group(1).strip()).astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_epoch(date: str) -> int:
    return int(datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


def release_files(inrelease: str) -> dict[str, tuple[str, int]]:
    """The SHA256 section of a Release: path under dists/<suite>/ -> (sha256, size)."""
    out: dict[str, tuple[str, int]] = {}
    section = re.search(r"^SHA256:\n((?:[ \t].*\n?)*)", inrelease, re.MULTILINE)
    for line in (section.group(1) if section else "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            out[parts[2]] = (parts[0], int(parts[1]))
    return out


def installed(status: str) -> list[tuple[str, str, str]]:
    """(name, version, architecture) of every installed package in a dpkg status file."""
    return sorted((s["Package"], s["Version"], s["Architecture"]) for s in stanzas(status)
                  if s.get("Status", "").endswith(" installed"))


def decompress(name: str, data: bytes) -> bytes:
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".gz"):
        return gzip.decompress(data)
    return data


def fetch(url: str, dest: Path, sha256: str) -> str | None:
    """Download ``url`` to ``dest`` (atomically) if its sha256 is ``sha256``; else return why not (naming the
    URL without its ``user:password@``, which is sent as HTTP basic auth)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request(url), timeout=TIMEOUT) as resp:
            for block in iter(lambda: resp.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != sha256:
            return f"{redact(url)}: sha256 {digest.hexdigest()} is not the locked {sha256}"
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        return None
    except urllib.error.HTTPError as err:
        return f"{redact(url)}: HTTP {err.code} {err.reason}"
    except (OSError, urllib.error.URLError, ValueError) as err:
        return redact(f"{url}: {getattr(err, 'reason', None) or err}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
