"""Incremental builds: a change reruns exactly the jobs that depend on it (Snakemake's own dry-run job list).

Most tests need no bootstrap: the workflow runs once with ``--touch`` on empty stand-ins for every output,
which records Snakemake's metadata (params, code, input sets) as a real run would; then a change and
``snakemake -n`` (default ``--rerun-triggers``) show what would run. Only the engine test builds for real
(busybox, a few seconds).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import docker
import pytest

ROOT = Path(__file__).resolve().parent.parent

# the default matrix, with a fixed epoch (no mirror asked) and its own namespace
CONFIG = (ROOT / "config/config.yaml").read_text().replace("namespace: baseforge", "namespace: bfinc").replace(
    "epoch: release", "epoch: 1700000000")
#: what reruns after any image changes: the summary, the report's charts (rules/report.smk) and rule all
END = {("summary", "results/images.tsv"), ("report_sizes", "results/report/sizes.svg"),
       ("report_times", "results/report/build-time.svg"), ("all", "")}
#: no engine: forget_missing() leaves the stand-in records alone
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def jobs(workflow, work: Path, env: dict | None = None, *args: str) -> set[tuple[str, str]]:
    """``snakemake -n``'s job list as (rule, first output) pairs; rule all has output ""."""
    out = workflow.run(work, "-n", *args, env={**NO_ENGINE, **(env or {})}).stdout
    found = set()
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", out, re.MULTILINE):
        m = re.search(r"^    output: ([^,\n]+)", body, re.MULTILINE)
        found.add((rule, m.group(1) if m else ""))
    return found



@pytest.fixture(scope="module")
def template(tmp_path_factory, workflow):
    """A work directory where every output exists (empty) and Snakemake's metadata says it is up to date."""
    return touched(workflow, workflow.make(tmp_path_factory.mktemp("inc"), CONFIG))


def touched(workflow, work):
    """``work`` with every planned output present (empty) and Snakemake's metadata saying it is up to date."""
    out = workflow.run(work, "-n", env=NO_ENGINE).stdout
    for line in re.findall(r"^    output: (.*)$", out, re.MULTILINE):
        for f in line.split(", "):
            (work / f).parent.mkdir(parents=True, exist_ok=True)
            (work / f).touch()
    # one job at a time, in DAG order, so every output is newer than its inputs; records params, code, inputs
    workflow.run(work, "--touch", "--forceall", "--cores", "1", env=NO_ENGINE)
    return work


@pytest.fixture
def work(template, tmp_path):
    dest = tmp_path / "work"
    shutil.copytree(template, dest, symlinks=True)  # mtimes and .snakemake/metadata come along
    return dest


def cells(found: set[tuple[str, str]]) -> set[str]:
    return {o for _, o in found}


def test_nothing_to_do(workflow, work):
    assert jobs(workflow, work) == set()


def test_changing_an_app_rebuilds_that_app_and_its_smoke_test_only(workflow, work):
    with open(work / "apps/hello/hello.c", "a") as f:
        f.write("/* changed */\n")
    # the apps built from apps/hello: hello, and the same program on the distroless variants
    import yaml

    users = [a for a, spec in yaml.safe_load(CONFIG)["apps"].items() if spec.get("context") == "apps/hello"]
    assert "hello" in users
    assert jobs(workflow, work) == END | {
        job for a in users for job in (("app_image", f"build/apps/{a}.oci.tar"), ("app_load", f"build/engine/apps/{a}.json"),
                                       ("smoketest_app", f"build/smoke/apps/{a}.ok"))}


def test_changing_an_apps_packages_rebuilds_that_app_only(workflow, work):
    config = work / "config/config.yaml"
    config.write_text(config.read_text().replace("packages: [hello]", "packages: [hello, jq]"))
    assert jobs(workflow, work) == {
        ("app_image", "build/apps/greeter.oci.tar"), ("app_load", "build/engine/apps/greeter.json"),
        ("smoketest_app", "build/smoke/apps/greeter.ok"), *END}


def test_changing_packages_rebuilds_that_image_and_the_apps_built_on_it(workflow, work):
    config = work / "config/config.yaml"
    config.write_text(config.read_text().replace("    variants: [default, slim]\n",
                                                 "    variants: [default, slim]\n    packages: [curl]\n"))
    found = jobs(workflow, work)
    deb = "debian/bookworm/{}/amd64"
    expected = {*END,
                ("app_image", "build/apps/greeter.oci.tar"), ("app_load", "build/engine/apps/greeter.json"),
                ("smoketest_app", "build/smoke/apps/greeter.ok")}
    raw = {o for r, o in found if r == "bootstrap"}
    assert len(raw) == 1 and re.fullmatch(r"build/raw/debian/bookworm/amd64/minbase-[0-9a-f]{8}\.tar", raw.pop())
    for v in ("default", "slim"):
        c = deb.format(v)
        expected |= {("pack", f"build/rootfs/{c}/rootfs.tar"), ("sbom", f"build/rootfs/{c}/sbom.spdx.json"),
                     ("image", f"build/oci/{c}.oci.tar"), ("load", f"build/engine/{c}.json"),
                     ("smoketest", f"build/smoke/{c}.ok")}
    assert {j for j in found if j[0] != "bootstrap"} == expected
    assert not any("busybox" in o or "hello" in o for o in cells(found))


def test_a_new_variant_is_layered_on_its_release_bootstrap_which_stays(workflow, work):
    config = work / "config/config.yaml"
    config.write_text(config.read_text().replace("    variants: [default, slim]\n",
                                                 "    variants: [default, slim, {name: web, packages: [curl]}]\n"))
    out = workflow.run(work, "-n", env=NO_ENGINE).stdout
    c = "debian/bookworm/web/amd64"
    raw = {o for r, o in jobs(workflow, work) if r == "bootstrap"}
    assert len(raw) == 1 and re.fullmatch(r"build/raw/debian/bookworm/amd64/minbase-[0-9a-f]{8}\.tar", next(iter(raw)))
    # its input is the up-to-date default bootstrap, which does not run again
    assert re.search(r"rule bootstrap:\n    input: build/raw/debian/bookworm/amd64/minbase\.tar\n", out)
    assert {j for j in jobs(workflow, work) if j[0] != "bootstrap"} == {
        ("pack", f"build/rootfs/{c}/rootfs.tar"), ("sbom", f"build/rootfs/{c}/sbom.spdx.json"),
        ("image", f"build/oci/{c}.oci.tar"), ("load", f"build/engine/{c}.json"), ("smoketest", f"build/smoke/{c}.ok"),
        *END}


def test_changing_an_epoch_rebuilds_that_cell_only(workflow, work):
    config = work / "config/config.yaml"
    config.write_text(config.read_text().replace("  busybox:\n", "  busybox:\n    epoch: 1700000001\n"))
    found = jobs(workflow, work)
    c = "busybox/bookworm/default/amd64"
    assert found == {
        ("bootstrap", "build/raw/busybox/bookworm/amd64/minbase.tar"), ("pack", f"build/rootfs/{c}/rootfs.tar"),
        ("sbom", f"build/rootfs/{c}/sbom.spdx.json"), ("image", f"build/oci/{c}.oci.tar"),
        ("load", f"build/engine/{c}.json"), ("smoketest", f"build/smoke/{c}.ok"),
        *END}


def test_changing_the_packing_code_rebuilds_the_tarballs_not_the_bootstraps(workflow, work, tmp_path):
    """A changed baseforge/pack.py (here: a copy of the package, first on PYTHONPATH) changes code_hash."""
    import baseforge

    lib = tmp_path / "lib"
    shutil.copytree(Path(baseforge.__file__).parent, lib / "baseforge", ignore=shutil.ignore_patterns("__pycache__"))
    with open(lib / "baseforge/pack.py", "a") as f:
        f.write("# a change to the packing code\n")
    env = {"PYTHONPATH": os.pathsep.join([str(lib), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    found = jobs(workflow, work, env)
    rules = {r for r, _ in found}
    assert {o for r, o in found if r == "pack"} == {
        "build/rootfs/debian/bookworm/default/amd64/rootfs.tar", "build/rootfs/debian/bookworm/slim/amd64/rootfs.tar",
        "build/rootfs/busybox/bookworm/default/amd64/rootfs.tar", "build/rootfs/distroless/bookworm/static/amd64/rootfs.tar",
        "build/rootfs/distroless/bookworm/base/amd64/rootfs.tar"}
    assert "bootstrap" not in rules
    # hello is FROM scratch: not touched; greeter (packages on debian) and the apps on the distroless variants
    # are rebuilt on their repacked bases
    assert {o for r, o in found if r == "app_image"} == {"build/apps/greeter.oci.tar", "build/apps/hello-static.oci.tar",
                                                          "build/apps/hello-dynamic.oci.tar"}
    # the unchanged copy changes nothing
    (lib / "baseforge/pack.py").write_text((ROOT / "baseforge/pack.py").read_text())
    assert jobs(workflow, work, env) == set()


@pytest.mark.e2e
def test_engine_import_is_skipped_when_the_engine_holds_the_image(tmp_path, engine, workflow):
    work = workflow.make(tmp_path, "namespace: bfinc\npackage_cache: %s\nimages:\n  busybox:\n    releases: [bookworm]\n"
                         "    cmd: [sh]\n" % (tmp_path / "debs"))
    workflow.run(work)
    record = work / "build/engine/busybox/bookworm/default/amd64.json"
    image_id = json.loads(record.read_text())["image_id"]
    record.unlink()
    # a lost record alone reruns nothing (Snakemake treats it like a temp() intermediate); force the load job
    found = jobs(workflow, work, {"DOCKER_HOST": engine}, "--forcerun", "load")
    assert {r for r, _ in found} == {"load", "smoketest", *(r for r, _ in END)}
    workflow.run(work, "--forcerun", "load")
    log = (work / "logs/load/busybox/bookworm/default/amd64.log").read_text()
    assert f"engine already holds {image_id}" in log
    assert json.loads(record.read_text())["image_id"] == image_id
    assert docker.DockerClient(base_url=engine).images.get("bfinc/busybox:bookworm").id == image_id
