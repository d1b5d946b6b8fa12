"""Rules load and app_load: put an image into the Docker Engine and record its ID there."""

from baseforge.engine import load_job
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    load_job(
        archive=snakemake.input.archive,
        info=snakemake.input.info,
        rootfs=snakemake.input.get("rootfs"),
        meta=snakemake.params.meta,
        method=snakemake.params.method,
        record=snakemake.output.record,
    )
