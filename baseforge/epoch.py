"""SOURCE_DATE_EPOCH per matrix cell, and what the suite's Release file says (date, architectures).

The first 4 KiB of ``dists/<suite>/Release`` hold its header: ``Date:`` (the default epoch) and
``Architectures:`` (what the config's architectures are checked against, :mod:`baseforge.preflight`).
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .errors import BaseforgeError
from .secret import redact, request

#: the Release date of a suite moves with point releases; remember it a while, so every Snakemake
#: invocation (and every cluster job that re-parses the workflow) does not ask the mirror again
CACHE_SECONDS = 3600


class MissingRelease(BaseforgeError):
    """The mirror answers, and has no such Release file (HTTP 404/410): the suite is not there."""


def parse_release_date(text: str) -> int:
    match = re.search(r"^Date:\s*(.+)$", text, re.MULTILINE)
    if not match:
        raise ValueError("no Date: field")
    return int(email.utils.parsedate_to_datetime(match.group(1).strip()).timestamp())


def parse_release(text: str) -> dict[str, Any]:
    """``{"date": unix time, "architectures": [...] or None}`` from a Release file's header."""
    arches = re.search(r"^Architectures:\s*(.+)$", text, re.MULTILINE)
    return {"date": parse_release_date(text), "architectures": arches.group(1).split() if arches else None}


def release_info(url: str, cache_file: Path | None = None, timeout: float = 15) -> dict[str, Any]:
    """What the Release file at ``url`` says (first 4 KiB fetched; cached for CACHE_SECONDS).

    A ``user:password@`` in ``url`` is sent as HTTP basic auth and never written to the cache or an error."""
    req = request(url, {"Range": "bytes=0-4095"})
    url = req.full_url
    cache: dict[str, Any] = {}
    if cache_file and cache_file.exists():
        try:
            cache = json.loads(cache_file.read_text())
        except ValueError:
            cache = {}
    entry = cache.get(url)
    entry = entry if isinstance(entry, dict) else None  # (an older cache held [date, time])
    if entry and time.time() - entry["fetched"] < CACHE_SECONDS:
        return entry
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            info = parse_release(resp.read(4096).decode(errors="replace"))
    except (OSError, ValueError) as err:
        if entry:  # offline: the last known answer is still the best one
            return entry
        if isinstance(err, urllib.error.HTTPError) and err.code in (404, 410):
            raise MissingRelease(f"{url}: {err.code} {err.reason}") from None
        reason = err.reason if isinstance(err, urllib.error.URLError) else err
        if isinstance(err, urllib.error.HTTPError):  # a 401: the mirror's user:password
            reason = f"{err.code} {err.reason}"
        raise BaseforgeError(
            f"cannot read {url}: {redact(str(reason))}",
            hint="check the mirror (mirrors: in config/config.yaml), or set epoch: <unix time> for this image",
        ) from None
    info["fetched"] = time.time()
    if cache_file:
        cache[url] = info
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, sort_keys=True, indent=1))
        os.replace(tmp, cache_file)
    return info


def release_date(url: str, cache_file: Path | None = None, timeout: float = 15) -> int:
    """The ``Date:`` of the Release file at ``url`` as a Unix time."""
    return int(release_info(url, cache_file, timeout)["date"])


def rfc3339(epoch: int) -> str:
    """``epoch`` as the UTC timestamp OCI configs, labels and SPDX documents carry: 2023-11-14T22:13:20Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))
