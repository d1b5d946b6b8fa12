"""Rule app_build: docker build a Dockerfile app FROM the exact base image this workflow loaded."""

from baseforge.app import build_dockerfile_app
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    build_dockerfile_app(
        snakemake.params.app,
        base_record=snakemake.input.get("base"),
        record=snakemake.output.record,
    )
