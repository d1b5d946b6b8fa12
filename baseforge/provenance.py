"""Provenance beside each rootfs: an SPDX 2.3 SBOM of its packages and a record of how it was made."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path
from typing import Any

from . import __version__, bootstrap, distro
from .epoch import parse_release_date
from .errors import BaseforgeError
from .manifest import packages, write_sbom
from .run import write_json
from .secret import redact, request
from .spec import CellSpec


def release_file(url: str | None) -> dict[str, Any] | None:
    """URL, Date and sha256 of the Release file the epoch came from (None when there is none)."""
    if not url:
        return None
    try:
        with urllib.request.urlopen(request(url), timeout=30) as resp:
            data = resp.read()
    except OSError as err:
        return {"url": redact(url), "error": redact(str(err))}
    return {"url": redact(url), "date": parse_release_date(data.decode(errors="replace")), "sha256": hashlib.sha256(data).hexdigest()}


def write_provenance(plan: dict[str, Any], rootfs: str, info: str, sbom: str, provenance: str) -> None:
    cell = CellSpec.from_dict(plan["cell"])
    rootfs_info = json.loads(Path(info).read_text())
    pkgs = packages(Path(rootfs))
    write_sbom(pkgs, Path(sbom), name=plan["meta"]["title"], created=cell.epoch,
               namespace_seed=f"{cell.id}:{rootfs_info['sha256']}")
    try:
        tool_version = bootstrap.get(cell.bootstrapper).version()
    except BaseforgeError as err:
        tool_version = f"unknown ({err.message})"
    record = {
        "baseforge": __version__,
        "cell": cell.id,
        "spec_sha256": hashlib.sha256(json.dumps(plan["cell"], sort_keys=True).encode()).hexdigest(),
        "bootstrapper": {"name": cell.bootstrapper, "version": tool_version},
        "sources": [redact(s.deb_line()) for s in cell.sources],
        "suite": cell.release,
        "release_file": release_file(distro.get(cell.distro).release_file(cell.release, cell.sources)),
        "epoch": cell.epoch,
        "epoch_source": plan.get("epoch_source", "config"),
        "rootfs_sha256": rootfs_info["sha256"],
        "packages": len(pkgs),
    }
    write_json(provenance, record)
