"""Rule summary: one table of every image: tag, image ID, size, package count, epoch, rootfs sha256."""

from baseforge.run import job
from baseforge.summary import summarize

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    summarize(snakemake.params.rows, tsv=snakemake.output.tsv, json_out=snakemake.output.json)
