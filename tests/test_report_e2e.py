"""End to end: what a user sees. The image table at the end of a run (and of a no-op run), `verify`'s image
ID beside `docker images`' and results/images.tsv's, and `snakemake --report` opened in a real headless
Chromium (Debian's `chromium`, driven by Playwright): the matrix and both charts render.
"""

from __future__ import annotations

import csv
import re
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CONFIG = """namespace: bfreport
epoch: 1700000000
package_cache: {cache}
images:
  busybox:
    releases: [bookworm]
    cmd: [sh]
    checks: ["busybox --help >/dev/null", "echo hello | grep -q hello"]
"""
CELL = "busybox/bookworm/default/amd64"
CHROMIUM = "/usr/bin/chromium"
# the flags a sandboxed CI needs: no GPU, no network calls of its own, a private profile
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, engine, workflow):
    work = workflow.make(tmp_path_factory.mktemp("report"), CONFIG.format(cache=tmp_path_factory.mktemp("debs")))
    first = workflow.run(work)
    return work, first


def tsv_row(work: Path) -> dict[str, str]:
    with open(work / "results/images.tsv") as f:
        return next(r for r in csv.DictReader(f, delimiter="\t") if r["image"] == CELL)


def test_a_run_ends_with_the_image_table(built):
    work, first = built
    image_id = tsv_row(work)["image_id"]
    tail = first.stderr[first.stderr.rindex("baseforge: 1 images"):]
    assert "bfreport/busybox:bookworm :latest" in tail and image_id[7:19] in tail and "PASS (" in tail


def test_a_no_op_run_says_nothing_to_do_and_shows_the_table(built, workflow):
    work, _ = built
    again = workflow.run(work)
    assert "baseforge: nothing to do, every image is up to date." in again.stderr
    assert tsv_row(work)["image_id"][7:19] in again.stderr.split("nothing to do", 1)[1]


@pytest.fixture(scope="module")
def verified(built):
    """`baseforge verify` of the cell, as a user runs it after a build."""
    work, _ = built
    out = subprocess.run(["python3", "-m", "baseforge", "verify", CELL], cwd=work, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def test_verify_prints_the_image_id_of_docker_images_and_images_tsv(built, verified, engine):
    work, _ = built
    out = verified
    shown = subprocess.run(["docker", "images", "--format", "{{.ID}}", "bfreport/busybox:bookworm"], check=True,
                           capture_output=True, text=True, env={**os.environ, "DOCKER_HOST": engine}).stdout.strip()
    image_id = tsv_row(work)["image_id"]
    assert image_id.removeprefix("sha256:").startswith(shown) and len(shown) == 12
    assert f"image ID {image_id} (docker images: {shown})" in out.stdout


@pytest.fixture(scope="module")
def report(built, verified, workflow):
    work, _ = built
    workflow.run(work, "--report", "report.html")
    return work / "report.html"


def test_report_zip_holds_the_report_and_every_attachment(built, report, workflow):
    work, _ = built
    workflow.run(work, "--report", "report.zip")
    names = zipfile.ZipFile(work / "report.zip").namelist()
    assert "report/report.html" in names
    for name in ("sbom.spdx.json", "provenance.json", "sizes.svg", "build-time.svg", "amd64.ok"):
        assert any(n.endswith("/" + name) for n in names), name


@pytest.fixture(scope="module")
def page(report, tmp_path_factory):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("Debian's chromium is not installed (tools/install-deps installs it)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=FLAGS,
                                                        viewport={"width": 1600, "height": 1000})
        page = browser.new_page()
        page.goto(report.as_uri())
        yield page
        browser.close()
    shutil.rmtree(profile, ignore_errors=True)


def test_report_matrix_renders_with_every_column(page, built):
    work, _ = built
    page.get_by_text("1. Images").first.click()
    headers = [h.lower() for h in page.locator("th").all_inner_texts()]
    for column in ("tags", "size", "compressed", "packages", "image id", "manifest digest", "epoch", "smoke test", "verify"):
        assert column in headers, headers
    row = page.locator("tr", has_text="bfreport/busybox:bookworm").inner_text()
    assert tsv_row(work)["image_id"][7:19] in row and "PASS (" in row and "2023-11-14 22:13 UTC" in row
    # verify ran before the report was made (fixture verified): the report reads its verdict
    assert "reproduced" in row


def test_report_attaches_sbom_and_provenance(page):
    page.get_by_text("Results").first.click()
    page.get_by_text("2. SBOM and provenance").first.click()
    # Snakemake's report shows a label with few values as a toggle: one document kind at a time
    for document in ("SBOM (SPDX 2.3)", "provenance"):
        page.get_by_text(document, exact=True).click()
        row = page.locator("tr", has_text="bfreport/busybox:bookworm")
        row.wait_for()
        assert row.locator("a[iconname=eye]").count() == 1


@pytest.mark.parametrize("chart, svg", [("image sizes", "sizes.svg"), ("build time per rule", "build-time.svg")])
def test_report_charts_render(page, chart, svg, tmp_path):
    page.get_by_text("Results").first.click()
    page.get_by_text("3. Charts").first.click()
    page.locator("tr", has_text=chart).locator("a[iconname=eye]").click()
    image = page.locator(f"img[src*='filename={svg}']")
    image.wait_for()
    width, height = image.evaluate("e => [e.naturalWidth, e.naturalHeight]")
    assert width > 300 and height > 100
    page.screenshot(path=tmp_path / f"{svg}.png")  # kept by pytest's tmp_path for a person to look at


def test_rich_logger_shows_progress_and_still_ends_with_the_table(built, engine):
    """README's `snakemake --logger rich` (snakemake-logger-plugin-rich), in a terminal (script(1) gives it a pty)."""
    work, _ = built
    command = "snakemake --cores 2 --logger rich --forcerun summary"
    proc = subprocess.run(["script", "-qec", command, "/dev/null"], cwd=work, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "120", "DOCKER_HOST": engine})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Total Progress" in proc.stdout and "100%" in proc.stdout
    assert "baseforge: 1 images (results/images.json):" in proc.stdout


def test_busybox_records_busybox_static_everywhere(built):
    """The real busybox cell: the package in manifest, SBOM and provenance, with BusyBox's Debian version."""
    import json

    work, _ = built
    cell = work / "build/rootfs" / CELL
    name, version, arch = (cell / "manifest.tsv").read_text().split()
    assert (name, arch) == ("busybox-static", "amd64") and re.fullmatch(r"1:1\.\d+\.\d+-\S+", version)
    sbom = json.loads((cell / "sbom.spdx.json").read_text())
    assert [(p["name"], p["versionInfo"]) for p in sbom["packages"]] == [(name, version)]
    made_by = json.loads((cell / "provenance.json").read_text())["bootstrapper"]
    assert made_by["package"] == "busybox-static" and made_by["version"] == version
    assert made_by["fetched_with"].startswith("mmdebstrap ")
