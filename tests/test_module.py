"""End to end: the workflow as others use it. CI's small config (.test/, as the Snakemake catalog runs it with
`--directory .test`), and baseforge as a Snakemake `module` of another workflow that consumes its images.

Both run in temporary directories with this repository's Snakefile, never writing into the repository.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import docker
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent

CONSUMER = """configfile: "config/config.yaml"


module baseforge:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from baseforge as baseforge_*


rule all:
    input:
        "checked.json",
    default_target: True


# our own rule, next to baseforge's: run the image it built and keep what it says with its record
rule check_busybox:
    input:
        record="build/engine/busybox/bookworm/default/amd64.json",
        images="results/images.json",
    output:
        "checked.json",
    shell:
        "docker run --rm --network none $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\\"image_id\\"])' "
        "{{input.record}}) busybox echo consumed > echo.txt && "
        "python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r[\\"said\\"]=open(\\"echo.txt\\").read().strip(); "
        "json.dump(r, open(sys.argv[2], \\"w\\"))' {{input.record}} {{output}}"
"""
CONFIG = """namespace: bfmodule
epoch: 1700000000
package_cache: {cache}
images:
  busybox:
    releases: [bookworm]
    cmd: [sh]
"""


def run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(["snakemake", "--cores", "2", *args], cwd=workdir, capture_output=True, text=True,
                          env=os.environ.copy())
    assert proc.returncode == 0, f"snakemake {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def test_the_ci_config_builds_as_the_catalog_runs_it(tmp_path, engine):
    shutil.copytree(ROOT / ".test", tmp_path / ".test")
    run(tmp_path, "--snakefile", str(ROOT / "Snakefile"), "--directory", ".test")
    with open(tmp_path / ".test/results/images.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [r["image"] for r in rows] == ["busybox/bookworm/default/amd64"]
    assert (tmp_path / ".test/build/smoke/busybox/bookworm/default/amd64.ok").read_text().count("PASS") >= 2
    assert docker.DockerClient(base_url=engine).images.get("baseforge-test/busybox:bookworm").id == rows[0]["image_id"]


def test_a_workflow_uses_baseforge_as_a_module(tmp_path, engine):
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(CONFIG.format(cache=tmp_path / "debs"))
    (tmp_path / "Snakefile").write_text(CONSUMER.format(snakefile=ROOT / "Snakefile"))
    first = run(tmp_path)
    assert "rule baseforge_bootstrap:" in first.stderr and "rule check_busybox:" in first.stderr
    checked = json.loads((tmp_path / "checked.json").read_text())
    assert checked["said"] == "consumed" and checked["tags"] == ["bfmodule/busybox:bookworm", "bfmodule/busybox:latest"]
    images = json.loads((tmp_path / "results/images.json").read_text())
    assert [i["image_id"] for i in images] == [checked["image_id"]]
    # the module's report rules and captions resolve from the module's directory, not this one
    run(tmp_path, "baseforge_all")
    run(tmp_path, "--report", "report.html")
    assert (tmp_path / "results/report/sizes.svg").exists() and (tmp_path / "report.html").stat().st_size > 100_000
    assert not (tmp_path / "rules").exists() and not (tmp_path / "scripts").exists()


APPS = """apps:
  note:                 # declarative, on the module's busybox, its context in the consuming workflow
    base: busybox:bookworm
    context: ctx
    add: {{note.txt: /note.txt}}
    cmd: [cat, /note.txt]
    expect: a note
  top:                  # a Dockerfile app on that app
    dockerfile: df
    expect: a note
"""


def test_a_module_builds_the_apps_of_its_config(tmp_path, engine):
    """Apps of the consuming workflow's config (contexts and Dockerfiles in its directory), one on the other."""
    (tmp_path / "config").mkdir()
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx/note.txt").write_text("a note\n")
    (tmp_path / "df").mkdir()
    (tmp_path / "df/Dockerfile").write_text('FROM bfmodule/note\nRUN cp /note.txt /n2\nCMD ["cat", "/n2"]\n')
    (tmp_path / "config/config.yaml").write_text(CONFIG.format(cache=tmp_path / "debs") + APPS.format())
    snakefile = CONSUMER.format(snakefile=ROOT / "Snakefile")
    snakefile = snakefile.replace('"checked.json",\n    default_target', '"top.json",\n    default_target')
    (tmp_path / "Snakefile").write_text(snakefile + '\n\nrule use_top:\n    input:\n        "build/engine/apps/top.json",\n'
                                        '    output:\n        "top.json",\n    shell:\n        "cp {input} {output}"\n')
    run(tmp_path)
    record = json.loads((tmp_path / "top.json").read_text())
    assert record["tags"] == ["bfmodule/top:latest"]
    client = docker.DockerClient(base_url=engine)
    assert client.containers.run(record["image_id"], remove=True, network_mode="none").strip() == b"a note"
