"""SOURCE_DATE_EPOCH per matrix cell: from config, or the ``Date:`` of the suite's Release file."""

from __future__ import annotations

import email.utils
import json
import os
import re
import time
import urllib.request
from pathlib import Path

from .errors import BaseforgeError
from .secret import redact, request

#: the Release date of a suite moves with point releases; remember it a while, so every Snakemake
#: invocation (and every cluster job that re-parses the workflow) does not ask the mirror again
CACHE_SECONDS = 3600


def parse_release_date(text: str) -> int:
    match = re.search(r"^Date:\s*(.+)$", text, re.MULTILINE)
    if not match:
        raise ValueError("no Date: field")
    return int(email.utils.parsedate_to_datetime(match.group(1).strip()).timestamp())


def release_date(url: str, cache_file: Path | None = None, timeout: float = 15) -> int:
    """The ``Date:`` of the Release file at ``url`` as a Unix time (first 4 KiB fetched).

    A ``user:password@`` in ``url`` is sent as HTTP basic auth and never written to the cache or an error."""
    req = request(url, {"Range": "bytes=0-4095"})
    url = req.full_url
    cache: dict[str, list[float]] = {}
    if cache_file and cache_file.exists():
        try:
            cache = json.loads(cache_file.read_text())
        except ValueError:
            cache = {}
        if url in cache and time.time() - cache[url][1] < CACHE_SECONDS:
            return int(cache[url][0])
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            epoch = parse_release_date(resp.read(4096).decode(errors="replace"))
    except (OSError, ValueError) as err:
        if url in cache:  # offline: the last known date is still the best answer
            return int(cache[url][0])
        raise BaseforgeError(
            f"cannot read the release date from {url}: {redact(str(err))}",
            hint="check the mirror (mirrors: in config/config.yaml), or set epoch: <unix time> for this image",
        ) from None
    if cache_file:
        cache[url] = [epoch, time.time()]
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, sort_keys=True, indent=1))
        os.replace(tmp, cache_file)
    return epoch


def rfc3339(epoch: int) -> str:
    """``epoch`` as the UTC timestamp OCI configs, labels and SPDX documents carry: 2023-11-14T22:13:20Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))
