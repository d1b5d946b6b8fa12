"""The Snakemake workflow catalog's conventions: config/README.md documents every key of the schema, the
catalog file's flags are honest, `snakemake --lint` finds only the documented exception, snakefmt is clean.

No root, no daemon (`snakemake --lint` only parses the workflow).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = yaml.safe_load((ROOT / "config/schema.yaml").read_text())
#: the one lint README ("Development") explains: no conda environment or container per rule
ALLOWED_LINTS = {"Specify a conda environment or container for each rule."}


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def schema_keys(node: dict = SCHEMA, prefix: str = ""):
    """Every key a config can hold, as a path: ``images.<name>.variants[].slim``."""
    node = _resolve(node)
    for alternative in map(_resolve, node.get("oneOf", [])):
        if "properties" in alternative:
            yield from schema_keys(alternative, prefix)
    for key, sub in node.get("properties", {}).items():
        yield prefix + key
        yield from schema_keys(sub, f"{prefix}{key}.")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "properties" in _resolve(extra):
        yield from schema_keys(extra, f"{prefix}<name>.")
    if isinstance(node.get("items"), dict):
        yield from schema_keys(node["items"], f"{prefix[:-1]}[].")


def test_schema_walk_finds_nested_keys():
    keys = set(schema_keys())
    assert {"namespace", "registry.tls_verify", "images.<name>.variants[].slim", "apps.<name>.expect"} <= keys


def test_every_schema_key_is_documented_with_a_default():
    rows = {}
    for line in (ROOT / "config/README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            rows[cells[0].strip("`")] = cells
    missing = [k for k in schema_keys() if k not in rows]
    assert not missing, f"config/README.md does not document {missing}"
    assert not [k for k in rows if k not in set(schema_keys())], "config/README.md documents keys the schema does not have"
    assert all(meaning for _, _, meaning in rows.values())


def test_the_test_config_is_valid_and_small():
    from baseforge import config

    cfg = yaml.safe_load((ROOT / ".test/config/config.yaml").read_text())
    plan = config.plan(cfg, ROOT, resolve_epochs=False)
    assert list(plan.images) == ["busybox/bookworm/default/amd64"]


def test_catalog_flags_are_honest():
    usage = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    rules = "".join(p.read_text() for p in [ROOT / "Snakefile", *(ROOT / "rules").glob("*.smk")])
    has_conda = re.search(r"^\s+conda:", rules, re.MULTILINE) is not None
    has_container = re.search(r"^\s*(container|singularity):", rules, re.MULTILINE) is not None
    stack = usage["software-stack-deployment"]
    assert stack["conda"] == has_conda and stack["singularity"] == has_container
    assert stack["singularity+conda"] == (has_conda and has_container)
    # report: true only when the workflow flags files for `snakemake --report`
    assert usage["report"] == ("report(" in rules)


def test_lint_finds_only_the_documented_exception():
    proc = subprocess.run(["snakemake", "--lint"], cwd=ROOT, capture_output=True, text=True)
    titles = {m.group(1) for m in re.finditer(r"^    \* (.+?):?$", proc.stdout + proc.stderr, re.MULTILINE)}
    assert titles, "snakemake --lint printed no lints: has the exception gone? then drop it from README"
    assert titles <= ALLOWED_LINTS, titles - ALLOWED_LINTS
    assert "snakemake --lint" in (ROOT / "README.md").read_text()


def test_snakefmt_clean():
    proc = subprocess.run(["snakefmt", "--check", "Snakefile", "rules"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_docs_stand_alone():
    """README.md, config/README.md and docs/ link only to files of this repository, and those exist."""
    for doc in [ROOT / "README.md", ROOT / "config/README.md", *(ROOT / "docs").glob("*.md")]:
        text = doc.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            assert not re.match(r"[a-z]+:", target), f"{doc.name} links outside the repository: {target}"
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(ROOT) and path.exists(), f"{doc.name}: {target} is not a file of the repository"
        assert not re.search(r"`\.\./|\]\(\.\./\.\./|/work/", text), f"{doc.name} names a path outside the repository"
