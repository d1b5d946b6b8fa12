"""Rule report_sizes: a chart of every image's size beside the official image of the same cell."""

from baseforge.charts import sizes_chart
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    sizes_chart(snakemake.input.images, snakemake.output.svg)
