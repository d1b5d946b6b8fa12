# Config validation, the plan of the matrix, and the input functions every stage file uses.
import re
import sys
import time
from pathlib import Path

from baseforge import config as bfconfig
from baseforge import scratch as bfscratch
from baseforge.errors import BaseforgeError

# failures recorded from now on are this run's (the onerror summary); what a killed run left (its lock,
# its scratch trees and mounts, its temporary files) is removed before anything else (baseforge.scratch)
RUN_START = time.time()
if workflow.is_main_process and not workflow.dryrun:
    for note in bfscratch.recover(Path.cwd()):
        sys.stderr.write(f"baseforge: {note}\n")

try:
    PLAN = bfconfig.plan(config, Path.cwd())
except BaseforgeError as err:
    # one paragraph for the user, no traceback, before any job runs
    sys.stderr.write(f"baseforge: {err}\n")
    sys.exit(1)

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
    raise ValueError(f"no cell bootstraps build/raw/{w.image}/{w.release}/{w.arch}/{w.raw}.tar")


def raw_cell(w):
    # package_cache stays as configured (relative to the work directory, or a shared absolute path):
    # params are the between-workflow cache key, and every clone must find the entry
    return raw_plan(w).cell.to_dict()


def raw_parent(w):
    # the smaller bootstrap of the same release this one is layered on (config layer_variants)
    parent = raw_plan(w).parent_raw
    return {"parent": f"build/raw/{w.image}/{w.release}/{w.arch}/{parent}.tar"} if parent else {}


def raw_tar(w):
    img = image_plan(w)
    return f"build/raw/{w.image}/{w.release}/{w.arch}/{img.raw_key}.tar"


def app_base_inputs(w):
    base = APPS[w.app].base
    return {"base": f"build/engine/{base}.json", "base_oci": f"build/oci/{base}.oci.tar"} if base else {}


def app_context(w):
    app = APPS[w.app]
    return sorted(str(p) for p in Path(app.context).rglob("*") if p.is_file()) if app.context else []


def smoke_targets():
    return [f"build/smoke/{p}.ok" for p in IMAGES] + [f"build/smoke/apps/{a}.ok" for a in APPS]


def push_targets():
    if not PLAN.registry:
        return []
    groups = sorted({f"{img.cell.image}/{img.cell.release}/{img.cell.variant}" for img in IMAGES.values()})
    return [f"build/push/{g}.json" for g in groups] + [f"build/push/apps/{a}.json" for a in APPS]


def group(w):
    # the cells of one (image, release, variant): its architectures, pushed as one index
    return [p for p, img in IMAGES.items() if (img.cell.image, img.cell.release, img.cell.variant) == (w.image, w.release, w.variant)]


def index_inputs(w):
    return [f"build/oci/{p}.oci.tar" for p in group(w)]


# The engine is state outside Snakemake's view: if an image we recorded is gone from the engine
# (docker rmi, a new engine), drop the record so the load/build job runs again.
if workflow.is_main_process and Path("build/engine").is_dir():  # (a fresh clone does not import docker)
    from baseforge import engine as bfengine

    bfengine.forget_missing(Path("build/engine"), Path("build/smoke"), [Path("results/images.tsv"), Path("results/images.json")])
