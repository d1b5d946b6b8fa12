"""Provenance beside each rootfs: an SPDX 2.3 SBOM of its packages and a record of how it was made."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path
from typing import Any

from . import __version__, bootstrap, distro, lockfile
from .epoch import parse_release_date
from .errors import BaseforgeError
from .manifest import Package, packages, write_sbom
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


def locked_release(cell: CellSpec) -> dict[str, Any]:
    """The lock of a locked cell: its path, content key, and the suites' InRelease dates and sha256."""
    lock = lockfile.read(Path(cell.lock))
    return {"lock": cell.lock, "lock_key": cell.lock_key,
            "suites": [{"suite": s.name, "date": s.date, "sha256": s.sha256} for s in lock.suites]}


def bootstrapper_record(name: str, product: str | None, tool_version: str, pkgs: list[Package]) -> dict[str, Any]:
    """What made the rootfs. When the image is one package (busybox: busybox-static), that package's name
    and version; the tool that fetched it (mmdebstrap) is named apart as ``fetched_with``."""
    if not product:
        return {"name": name, "version": tool_version}
    found = [p for p in pkgs if p.name == product]
    version = found[0].version if found else "unknown (not in the image's package records)"
    return {"name": name, "package": product, "version": version, "fetched_with": tool_version}


def write_provenance(plan: dict[str, Any], rootfs: str, info: str, sbom: str, provenance: str) -> None:
    cell = CellSpec.from_dict(plan["cell"])
    rootfs_info = json.loads(Path(info).read_text())
    pkgs = packages(Path(rootfs))
    write_sbom(pkgs, Path(sbom), name=plan["meta"]["title"], created=cell.epoch,
               namespace_seed=f"{cell.id}:{rootfs_info['sha256']}")
    plugin = bootstrap.get(cell.bootstrapper)
    try:
        tool_version = plugin.version()
    except BaseforgeError as err:
        tool_version = f"unknown ({err.message})"
    record = {
        "baseforge": __version__,
        "cell": cell.id,
        # of the cell without user:password@ (a hash of a known text around a password lets one guess it)
        "spec_sha256": hashlib.sha256(redact(json.dumps(plan["cell"], sort_keys=True)).encode()).hexdigest(),
        "bootstrapper": bootstrapper_record(cell.bootstrapper, plugin.product, tool_version, pkgs),
        "sources": [redact(s.deb_line()) for s in cell.sources],
        "suite": cell.release,
        # a locked cell: the signed InRelease files its lock was resolved from (no mirror asked)
        "release_file": locked_release(cell) if cell.lock else release_file(distro.get(cell.distro).release_file(cell.release, cell.sources)),
        "epoch": cell.epoch,
        "epoch_source": plan.get("epoch_source", "config"),
        "rootfs_sha256": rootfs_info["sha256"],
        "packages": len(pkgs),
        # insecure: true turned the signature checks off: the record says so too (as the image's label does)
        **({"insecure": True} if cell.insecure else {}),
    }
    write_json(provenance, record)
