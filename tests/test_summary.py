"""The summary table, and its check that the engine holds the image of the OCI archive on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baseforge.errors import BaseforgeError
from baseforge.summary import summarize

CELL = "debian/bookworm/default/amd64"


def build(work: Path, engine_id: str, oci_id: str) -> list[dict]:
    files = {f"build/engine/{CELL}.json": {"image_id": engine_id, "tags": ["bf/debian:12"], "method": "oci", "size": 5},
             f"build/oci/{CELL}.json": {"image_id": oci_id, "size": 4},
             f"build/rootfs/{CELL}/rootfs.json": {"packages": 88, "epoch": 1700000000, "sha256": "ab" * 32}}
    for name, data in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(json.dumps(data))
    return [{"image": CELL, "record": f"build/engine/{CELL}.json", "rootfs": f"build/rootfs/{CELL}/rootfs.json",
             "oci": f"build/oci/{CELL}.json"}]


def test_summary_rows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = summarize(build(tmp_path, "sha256:1", "sha256:1"), "results/images.tsv", "results/images.json")
    assert rows == [{"image": CELL, "tags": "bf/debian:12", "image_id": "sha256:1", "size": 5, "packages": 88,
                     "epoch": 1700000000, "rootfs_sha256": "ab" * 32, "method": "oci"}]
    assert (tmp_path / "results/images.tsv").read_text().splitlines()[1].startswith(f"{CELL}\tbf/debian:12\tsha256:1\t")


def test_an_engine_image_that_is_not_the_oci_archive_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BaseforgeError, match="engine holds sha256:1 but the OCI archive .* is sha256:2"):
        summarize(build(tmp_path, "sha256:1", "sha256:2"), "results/images.tsv", "results/images.json")
    assert not (tmp_path / "results/images.tsv").exists()
