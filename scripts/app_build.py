"""Rule app_build: buildah builds a Dockerfile app FROM the exact base archive this workflow wrote (--timestamp)."""

from baseforge.buildah import build_dockerfile_app
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    build_dockerfile_app(
        snakemake.params.app,
        base_archive=snakemake.input.get("base_oci"),
        archive=snakemake.output.archive,
        info=snakemake.output.info,
        sbom=snakemake.output.sbom,
    )
