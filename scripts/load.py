"""Rules load and app_load: put an image into the Docker Engine and record its ID there."""

from baseforge.engine import load_job
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    load_job(
        record=snakemake.output.record,
        meta=snakemake.params.meta,
        method=snakemake.params.method,
        archive=snakemake.input.get("archive"),
        info=snakemake.input.get("info"),
        rootfs=snakemake.input.get("rootfs"),
        rootfs_info=snakemake.input.get("rootfs_info"),
    )
