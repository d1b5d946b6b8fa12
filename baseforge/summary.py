"""The summary table of a build: image, tag, image ID, size, package count, epoch, rootfs sha256."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import BaseforgeError
from .run import write_atomic

COLUMNS = ("image", "tags", "image_id", "size", "packages", "epoch", "rootfs_sha256", "method")


def row(record: Path) -> dict[str, object]:
    """One row from an engine record and the rootfs/OCI info files beside it in build/."""
    rec = json.loads(record.read_text())
    rel = record.relative_to(Path("build/engine")).with_suffix("")
    rootfs_info = Path("build/rootfs") / rel / "rootfs.json"
    oci_info = (Path("build/apps") if rel.parts[0] == "apps" else Path("build/oci")) / (
        rel.name if rel.parts[0] == "apps" else str(rel)
    )
    oci_info = oci_info.with_name(oci_info.name + ".json")
    info = json.loads(rootfs_info.read_text()) if rootfs_info.exists() else {}
    oci = json.loads(oci_info.read_text()) if oci_info.exists() else {}
    if rec.get("method") == "oci" and oci and oci["image_id"] != rec["image_id"]:
        # a base image is loaded from its rootfs.tar while its OCI archive is written apart: same config
        raise BaseforgeError(f"{rel}: the engine holds {rec['image_id']} but the OCI archive {oci_info} is {oci['image_id']}",
                             hint=f"rebuild both: snakemake --forcerun load image {oci_info} (and report it: it is a bug)")
    return {
        "image": str(rel),
        "tags": ",".join(rec["tags"]),
        "image_id": rec["image_id"],
        "size": rec.get("size") or oci.get("size", ""),
        "packages": info.get("packages", ""),
        "epoch": info.get("epoch", ""),
        "rootfs_sha256": info.get("sha256", ""),
        "method": rec.get("method", ""),
    }


def summarize(records: list[str], tsv: str, json_out: str) -> list[dict[str, object]]:
    rows = [row(Path(r)) for r in records]
    lines = ["\t".join(COLUMNS)] + ["\t".join(str(r[c]) for c in COLUMNS) for r in rows]
    write_atomic(tsv, "\n".join(lines) + "\n")
    write_atomic(json_out, json.dumps(rows, indent=2) + "\n")
    return rows
