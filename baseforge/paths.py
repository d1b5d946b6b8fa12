"""Where every output of the workflow lives, spelled once: the rules (rules/*.smk), the summary and
``baseforge verify`` all build their paths here.

A pattern holds ``{cell}`` (image/release/variant/arch), ``{group}`` (image/release/variant: the
architectures of one index), ``{app}``, or the raw bootstrap's own fields. :func:`cell` fills ``{cell}``
with a cell's path, or by default with Snakemake wildcards for a rule's input and output.
"""

from __future__ import annotations

#: the two trees every output lives in (baseforge.scratch cleans a killed run's temporary files there)
BUILD = "build"
RESULTS = "results"

CELL = "{image}/{release}/{variant}/{arch}"
GROUP = "{image}/{release}/{variant}"

RAW = "build/raw/{image}/{release}/{arch}/{raw}.tar"
ROOTFS = "build/rootfs/{cell}/rootfs.tar"
MANIFEST = "build/rootfs/{cell}/manifest.tsv"
ROOTFS_INFO = "build/rootfs/{cell}/rootfs.json"
SBOM = "build/rootfs/{cell}/sbom.spdx.json"
PROVENANCE = "build/rootfs/{cell}/provenance.json"
OCI = "build/oci/{cell}.oci.tar"
OCI_INFO = "build/oci/{cell}.json"
ENGINE = "build/engine/{cell}.json"
SMOKE = "build/smoke/{cell}.ok"
INDEX = "build/oci/{group}.index.oci.tar"
PUSH = "build/push/{group}.json"

APP_OCI = "build/apps/{app}.oci.tar"
APP_INFO = "build/apps/{app}.json"
APP_SBOM = "build/apps/{app}.spdx.json"
APP_ENGINE = "build/engine/apps/{app}.json"
APP_SMOKE = "build/smoke/apps/{app}.ok"
APP_PUSH = "build/push/apps/{app}.json"

ENGINE_RECORDS = "build/engine"
SMOKE_REPORTS = "build/smoke"
SIGNATURES = "build/signatures"  # the default lookaside of registry.sign (baseforge.sign)
SUMMARY_TSV = "results/images.tsv"
SUMMARY_JSON = "results/images.json"
VERIFY_RESULTS = "results/verify.json"
REPORT_SIZES = "results/report/sizes.svg"
REPORT_TIMES = "results/report/build-time.svg"


def cell(pattern: str, path: str = CELL) -> str:
    """``pattern`` for one cell (``debian/bookworm/default/amd64``), or with the cell's wildcards."""
    return pattern.replace("{cell}", path)


def group(pattern: str, path: str = GROUP) -> str:
    """``pattern`` for one (image, release, variant), or with its wildcards."""
    return pattern.replace("{group}", path)


def app(pattern: str, name: str = "{app}") -> str:
    return pattern.replace("{app}", name)


def raw(image: str, release: str, arch: str, key: str) -> str:
    return RAW.format(image=image, release=release, arch=arch, raw=key)


def base(path: str, app_pattern: str = APP_OCI, cell_pattern: str = OCI) -> str:
    """An app's base ``path`` (a cell id, ``debian/bookworm/default/amd64``, or ``apps/<name>``) filled into
    the app pattern or the cell pattern, whichever kind it is: by default, the base's archive."""
    if path.startswith("apps/"):
        return app(app_pattern, path.removeprefix("apps/"))
    return cell(cell_pattern, path)
