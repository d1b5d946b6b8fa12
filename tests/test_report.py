"""The report's data (matrix labels, charts) and the console's image table, from files as a build leaves them.

No root, no daemon: build/ and results/ are written by the test in tmp_path.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from pathlib import Path

import pytest

from baseforge import charts, console, report

CELL = "busybox/bookworm/default/amd64"
IMAGE_ID = "sha256:" + "2761ee5d7f32" + "0" * 52
DIGEST = "sha256:" + "61ddf4e55584" + "1" * 52
LAYER = "sha256:" + "ab" * 32


def write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))


@pytest.fixture
def build(tmp_path) -> Path:
    """build/ and results/ of one busybox image and one scratch app, as the rules write them."""
    write(tmp_path / f"build/engine/{CELL}.json", {"image_id": IMAGE_ID, "size": 1986264, "method": "oci",
                                                    "tags": ["bf/busybox:bookworm", "bf/busybox:latest"]})
    write(tmp_path / f"build/oci/{CELL}.json", {"image_id": IMAGE_ID, "manifest_digest": DIGEST, "layers": [LAYER]})
    with tarfile.open(tmp_path / f"build/oci/{CELL}.oci.tar", "w") as tf:
        for name, size in ((f"blobs/sha256/{LAYER[7:]}", 1_040_000), ("index.json", 10)):
            info = tarfile.TarInfo(name)
            info.size = size
            tf.addfile(info, io.BytesIO(b"\0" * size))
    write(tmp_path / f"build/rootfs/{CELL}/rootfs.json", {"epoch": 1700000000, "packages": 1})
    write(tmp_path / f"build/smoke/{CELL}.ok", f"image\t{IMAGE_ID}\nPASS\tuname -m\nPASS\tbusybox --help\n")
    write(tmp_path / "build/engine/apps/hello.json", {"image_id": "sha256:" + "be" * 32, "size": 682696,
                                                      "tags": ["bf/hello:latest"]})
    write(tmp_path / "build/smoke/apps/hello.ok", "image\tsha256:x\nFAIL\tdefault command output\n")
    write(tmp_path / "results/images.json", [
        {"image": CELL, "tags": "bf/busybox:bookworm,bf/busybox:latest", "image_id": IMAGE_ID, "size": 1986264},
        {"image": "apps/hello", "tags": "bf/hello:latest", "image_id": "sha256:" + "be" * 32, "size": 682696}])
    return tmp_path


def test_matrix_row_of_an_image(build):
    row = report.image_labels(CELL, build)
    assert row == {"image": CELL, "tags": "bf/busybox:bookworm bf/busybox:latest", "size": "2.0 MB",
                   "compressed": "1.0 MB", "packages": "1", "image ID": "2761ee5d7f32",
                   "manifest digest": "61ddf4e55584", "epoch": "2023-11-14 22:13 UTC",
                   "smoke test": "PASS (2 checks)", "verify": "not run"}


def test_matrix_row_shows_what_verify_said(build):
    write(build / "results/verify.json", {CELL: {"reproduced": True}})
    assert report.image_labels(CELL, build)["verify"] == "reproduced"
    write(build / "results/verify.json", {CELL: {"reproduced": False}})
    assert report.image_labels(CELL, build)["verify"] == "DIFFERS"
    # a verdict about another image than the one build/ holds now says nothing about this one
    write(build / "results/verify.json", {CELL: {"reproduced": True, "recorded_image_id": "sha256:" + "9" * 64}})
    assert report.image_labels(CELL, build)["verify"] == "not run"


def test_matrix_row_of_an_app_and_a_failed_smoke_test(build):
    row = report.image_labels("apps/hello", build)
    assert row["smoke test"] == "FAIL: default command output"
    assert (row["packages"], row["epoch"], row["verify"], row["compressed"]) == ("–", "–", "not run", "–")


def test_matrix_row_of_an_app_has_its_packages_epoch_and_verify_verdict(build):
    """An app's row is as full as a cell's: packages and epoch from its SBOM, what verify said about it."""
    write(build / "build/apps/hello.spdx.json", {"creationInfo": {"created": "2023-11-14T22:13:20Z"},
                                                 "packages": [{"name": "a"}, {"name": "b"}]})
    write(build / "build/apps/hello.json", {"image_id": "sha256:" + "be" * 32, "manifest_digest": DIGEST})
    write(build / "results/verify.json", {"apps/hello": {"reproduced": True, "recorded_image_id": "sha256:" + "be" * 32}})
    row = report.image_labels("apps/hello", build)
    assert (row["packages"], row["epoch"], row["verify"]) == ("2", "2023-11-14 22:13 UTC", "reproduced")


def test_build_times_take_the_last_job_line_of_each_log(tmp_path):
    a, b, c = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "c.log"
    a.write_text("x INFO ✔ rule pack {'image': 'd'} (9.0s)\nx INFO ✔ rule pack {'image': 'd'} (2.5s)\n")
    b.write_text("x INFO ▶ rule pack {'image': 'e'}\nx INFO ✔ rule pack {'image': 'e'} (1.5s)\n")
    c.write_text("x INFO ✔ rule bootstrap {'image': 'd'} (30.0s)\n")
    assert report.build_times([a, b, c]) == {"bootstrap": (30.0, 1), "pack": (4.0, 2)}


def test_official_sizes_match_cells():
    sizes = report.official_sizes()
    assert sizes["debian/bookworm/default"] == ("debian:bookworm", 116.6)
    assert sizes["debian/bookworm/slim"] == ("debian:bookworm-slim", 74.8)
    assert sizes["busybox/bookworm/default"] == ("busybox:latest", 4.5)


def test_size_rows_pair_each_image_with_its_official_one(build):
    rows = charts.size_rows(json.loads((build / "results/images.json").read_text()), report.official_sizes())
    assert rows == [("bf/hello:latest", 0.682696, None, ""), ("bf/busybox:bookworm", 1.986264, 4.5, "busybox:latest")]


def test_charts_are_svg_and_the_same_data_give_the_same_bytes(build, tmp_path):
    for n in (1, 2):
        charts.sizes_chart(build / "results/images.json", tmp_path / f"sizes{n}.svg")
    svg = (tmp_path / "sizes1.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and "busybox:latest (official)" in svg
    assert (tmp_path / "sizes1.svg").read_bytes() == (tmp_path / "sizes2.svg").read_bytes()
    write(build / "logs/pack/x.log", "t INFO ✔ rule pack {'image': 'x'} (2.0s)\n")
    write(build / "logs/report/sizes.log", "t INFO ✔ rule report_sizes {} (9.0s)\n")
    charts.times_chart(build / "logs", tmp_path / "times.svg", skip=build / "logs/report")
    times = (tmp_path / "times.svg").read_text()
    assert "2.0 s (1 job)" in times and "report_sizes" not in times


def test_console_table_is_docker_images_like(build):
    text = console.images_table(build / "results/images.json")
    lines = text.splitlines()
    assert lines[0] == f"baseforge: 2 images ({build / 'results/images.json'}):"
    assert lines[1].split() == ["IMAGE", "IMAGE", "ID", "SIZE", "SMOKE", "TEST"]
    assert lines[2].split() == ["bf/busybox:bookworm", ":latest", "2761ee5d7f32", "2.0", "MB", "PASS", "(2", "checks)"]
    assert lines[3].split()[:4] == ["bf/hello:latest", "bebebebebebe", "0.7", "MB"] and "FAIL" in lines[3]
    assert lines[2].index("2761ee5d7f32") == lines[3].index("bebebebebebe")  # aligned columns
    assert console.images_table(build / "results/none.json") is None


def test_nothing_to_do_shows_the_table_once(build, caplog):
    logger = logging.getLogger("test-baseforge-console")
    logger.handlers[:] = []
    handler = console.NothingToDo(logger, "Nothing to be done.", build / "results/images.json")
    logger.addHandler(handler)
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("Building DAG of jobs...")
        assert not any("baseforge" in r.getMessage() for r in caplog.records)
        logger.info("Nothing to be done.")
    shown = [r.getMessage() for r in caplog.records if r.getMessage().startswith("baseforge: nothing to do")]
    assert len(shown) == 1 and "2761ee5d7f32" in shown[0]
    console.on_nothing_to_do(logger, "Nothing to be done.")
    assert sum(isinstance(h, console.NothingToDo) for h in logger.handlers) == 1
