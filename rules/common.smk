# Config validation, the plan of the matrix, and the input functions every stage file uses.
import re
import sys
import time
from pathlib import Path

from baseforge import codehash as bfcode
from baseforge import config as bfconfig
from baseforge import engine as bfengine
from baseforge import paths
from baseforge import report as bfreport
from baseforge import scratch as bfscratch
from baseforge.errors import BaseforgeError

# runs that only look (-n, --dag, --summary, --list-rules, --lint, ...) must change nothing
LOOK_ONLY = {
    "--dry-run",
    "--dryrun",
    "--just-print",
    "--dag",
    "--d3dag",
    "--rulegraph",
    "--filegraph",
    "--summary",
    "--detailed-summary",
    "--list",
    "--list-rules",
    "--list-target-rules",
    "--lt",
    "--lint",
    "--list-changes",
    "--lc",
    "--list-input-changes",
    "--li",
    "--list-params-changes",
    "--lp",
    "--list-code-changes",
    "--list-untracked",
    "--lu",
    "--print-compilation",
    "--containerize",
    "--export-cwl",
    "--unlock",
    "--cleanup-metadata",
    "--cleanup-shadow",
    "--archive",
    "--generate-unit-tests",
    "--report",
}


def dry_run():
    # Snakemake 9 sets workflow.dryrun only after parsing, so look at the command line too (also short
    # flags such as -np: -n dry run, -l list, -S summary, -D detailed summary)
    flags = [a.split("=", 1)[0] for a in sys.argv[1:] if a.startswith("-")]
    return workflow.dryrun or any(
        a in LOOK_ONLY or (not a.startswith("--") and set(a[1:]) & set("nlSD")) for a in flags
    )


# failures recorded from now on are this run's (the onerror summary); what a killed run left (its lock,
# its scratch trees and mounts, its temporary files, its containers) is removed before anything else
# (baseforge.scratch, baseforge.engine)
RUN_START = time.time()
if workflow.is_main_process and not dry_run():
    for note in bfscratch.recover(Path.cwd()) + bfengine.remove_stale_containers():
        sys.stderr.write(f"baseforge: {note}\n")
    try:
        bfscratch.check_writable(Path.cwd())
    except BaseforgeError as err:
        sys.stderr.write(f"baseforge: {err}\n")
        sys.exit(1)

try:
    PLAN = bfconfig.plan(config, Path.cwd())
except BaseforgeError as err:
    # one paragraph for the user, no traceback, before any job runs
    sys.stderr.write(f"baseforge: {err}\n")
    sys.exit(1)

# Cluster execution: which rules run on the submit host (``localrule:`` of each rule). With an executor
# plugin (`--profile profiles/slurm`) bootstrap, pack, image and app_image are cluster jobs, run rootless on
# a node. The engine rules (load, app_load, app_build, smoketest*, summary, push*) stay on the submit host,
# next to the Docker Engine, unless the config says the nodes have one (engine: {on_nodes: true}). sbom and
# index are always local: as cluster jobs they would cost more in queueing and status polling than the work.
ENGINE_LOCAL = not (config.get("engine") or {}).get("on_nodes")

IMAGES = PLAN.images
APPS = PLAN.apps
DECLARATIVE = [a for a, p in APPS.items() if p.kind == "declarative"]
DOCKERFILE = [a for a, p in APPS.items() if p.kind == "dockerfile"]


def alternation(names):
    # a wildcard constraint that matches exactly these names (and nothing, when there are none)
    return "|".join(map(re.escape, names)) or "(?!)"


wildcard_constraints:
    image="[^/]+",
    release="[^/]+",
    variant="[^/]+",
    arch="[^/]+",
    raw="[^/]+",


# scripts/ of this workflow, also when another workflow uses it as a module (workflow.basedir is then that
# workflow's folder); read while this file is parsed, from rules/
SCRIPTS = Path(workflow.current_basedir.get_path_or_uri(secret_free=False)).parent / "scripts"


def code_hash(script, cell=None):
    # the library code scripts/<script>.py runs (the import closure of what it imports, and the plugins
    # the cell names): a param, so a change to that code reruns the job and misses the between-workflow cache
    plugins = bfcode.cell_modules(cell["bootstrapper"], cell["distro"]) if cell else ()
    return bfcode.script_hash(SCRIPTS / f"{script}.py", *plugins)


def calls_hash(*modules):
    # as code_hash, for a job that calls only these modules of what its script imports (their import closure)
    return bfcode.module_hash(*modules)


def cell_path(w):
    return f"{w.image}/{w.release}/{w.variant}/{w.arch}"


def image_plan(w):
    return IMAGES[cell_path(w)]


def raw_plan(w):
    # the first image sharing this bootstrap (variants that differ only at pack time share one rootfs)
    for img in IMAGES.values():
        c = img.cell
        if (c.image, c.release, c.arch, img.raw_key) == (w.image, w.release, w.arch, w.raw):
            return img
    raise ValueError(f"no cell bootstraps {paths.raw(w.image, w.release, w.arch, w.raw)}")


def raw_cell(w):
    # package_cache stays as configured (relative to the work directory, or a shared absolute path):
    # params are the between-workflow cache key, and every clone must find the entry
    return raw_plan(w).cell.to_dict()


def raw_parent(w):
    # the smaller bootstrap of the same release this one is layered on (config layer_variants)
    parent = raw_plan(w).parent_raw
    return {"parent": paths.raw(w.image, w.release, w.arch, parent)} if parent else {}


def raw_tar(w):
    return paths.raw(w.image, w.release, w.arch, image_plan(w).raw_key)


def app_base_inputs(w):
    # the base's archive: an image (build/oci/<cell>.oci.tar) or another app (build/apps/<name>.oci.tar), and
    # the archives of every other image a Dockerfile's stages read (FROM, COPY --from)
    app = APPS[w.app]
    out = {"from_oci": sorted({paths.base(path) for _, path in app.from_refs})}
    if app.base:
        out["base_oci"] = paths.base(app.base)
    return out


def app_attest_inputs(w):
    # what a declarative app's attestations say: its OCI record and SBOM, the provenance of the image at the
    # bottom of its chain (Release file), and its base's OCI record (the base manifest digest)
    app = APPS[w.app]
    out = {"oci": [paths.app(paths.APP_INFO, w.app)], "sbom": [paths.app(paths.APP_SBOM, w.app)]}
    if app.root:
        out["provenance"] = [paths.cell(paths.PROVENANCE, app.root)]
    if app.base:
        out["base_info"] = paths.base(app.base, paths.APP_INFO, paths.OCI_INFO)
    return out


def app_context(w):
    app = APPS[w.app]
    return sorted(str(p) for p in Path(app.context).rglob("*") if p.is_file()) if app.context else []


def smoke_targets():
    return [paths.cell(paths.SMOKE, p) for p in IMAGES] + [paths.app(paths.APP_SMOKE, a) for a in APPS]


def push_targets():
    if not PLAN.registry:
        return []
    groups = sorted({f"{img.cell.image}/{img.cell.release}/{img.cell.variant}" for img in IMAGES.values()})
    return [paths.group(paths.PUSH, g) for g in groups] + [paths.app(paths.APP_PUSH, a) for a in APPS]


def report_targets():
    # the charts of rules/report.smk (the rest of the report is flagged where it is made)
    return [paths.REPORT_SIZES, paths.REPORT_TIMES]


def group(w):
    # the cells of one (image, release, variant): its architectures, pushed as one index
    return [
        p
        for p, img in IMAGES.items()
        if (img.cell.image, img.cell.release, img.cell.variant) == (w.image, w.release, w.variant)
    ]


def index_inputs(w):
    return [paths.cell(paths.OCI, p) for p in group(w)]


def summary_rows():
    # what the summary reads for each row: the engine record, and the rootfs and OCI info beside it
    rows = [
        {
            "image": p,
            "record": paths.cell(paths.ENGINE, p),
            "rootfs": paths.cell(paths.ROOTFS_INFO, p),
            "oci": paths.cell(paths.OCI_INFO, p),
        }
        for p in IMAGES
    ]
    rows += [
        {
            "image": f"apps/{a}",
            "record": paths.app(paths.APP_ENGINE, a),
            "rootfs": None,
            "oci": paths.app(paths.APP_INFO, a),
        }
        for a in APPS
    ]  # both kinds are loaded from their archive
    return rows


# The engine is state outside Snakemake's view: if an image we recorded is gone from the engine
# (docker rmi, a new engine), drop the record so the load/build job runs again (never in a dry run).
if workflow.is_main_process and Path(paths.ENGINE_RECORDS).is_dir():  # (a fresh clone does not import docker)
    from baseforge import engine as bfengine

    bfengine.forget_missing(
        Path(paths.ENGINE_RECORDS),
        Path(paths.SMOKE_REPORTS),
        [Path(paths.SUMMARY_TSV), Path(paths.SUMMARY_JSON)],
        remove=not dry_run(),
    )
