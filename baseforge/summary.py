"""The summary table of a build: image, tag, image ID, size, package count, epoch, rootfs sha256."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import BaseforgeError
from .run import write_atomic

COLUMNS = ("image", "tags", "image_id", "size", "packages", "epoch", "rootfs_sha256", "method")


def _read(path: str | None) -> dict[str, Any]:
    return json.loads(Path(path).read_text()) if path and Path(path).exists() else {}


def row(image: str, record: str, rootfs: str | None = None, oci: str | None = None) -> dict[str, object]:
    """One row from an engine record and the rootfs and OCI info of the same image (the rule names them)."""
    rec = json.loads(Path(record).read_text())
    info, archive = _read(rootfs), _read(oci)
    if rec.get("method") == "oci" and archive and archive["image_id"] != rec["image_id"]:
        # a base image is loaded from its rootfs.tar while its OCI archive is written apart: same config
        raise BaseforgeError(f"{image}: the engine holds {rec['image_id']} but the OCI archive {oci} is {archive['image_id']}",
                             hint=f"rebuild both: snakemake --forcerun load image {oci} (and report it: it is a bug)")
    return {
        "image": image,
        "tags": ",".join(rec["tags"]),
        "image_id": rec["image_id"],
        "size": rec.get("size") or archive.get("size", ""),
        "packages": info.get("packages", ""),
        "epoch": info.get("epoch", ""),
        "rootfs_sha256": info.get("sha256", ""),
        "method": rec.get("method", ""),
    }


def summarize(rows: list[dict[str, Any]], tsv: str, json_out: str) -> list[dict[str, object]]:
    """The table of ``rows`` (each: image, record, and the rootfs and OCI info files, or None)."""
    rows = [row(**r) for r in rows]
    lines = ["\t".join(COLUMNS)] + ["\t".join(str(r[c]) for c in COLUMNS) for r in rows]
    write_atomic(tsv, "\n".join(lines) + "\n")
    write_atomic(json_out, json.dumps(rows, indent=2) + "\n")
    return rows
