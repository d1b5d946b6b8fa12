"""Rule app_save: a Dockerfile app's image, from the engine, as an OCI archive for the apps built on it."""

from baseforge.app_packages import save_engine_image
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    save_engine_image(snakemake.input.record, snakemake.output.archive, snakemake.output.info)
