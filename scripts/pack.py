"""Rule pack: normalize a raw rootfs into a reproducible rootfs.tar, with its package manifest."""

from baseforge.pack import pack_rootfs
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    pack_rootfs(
        snakemake.input.raw,
        tar=snakemake.output.tar,
        manifest=snakemake.output.manifest,
        info=snakemake.output.info,
        epoch=snakemake.params.epoch,
        slim=snakemake.params.slim,
        family=snakemake.params.family,
    )
