"""Rule report_times: a chart of the seconds each rule's jobs took, from the jobs' logs."""

from baseforge.charts import times_chart
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    times_chart(snakemake.params.logs, snakemake.output.svg, skip=snakemake.params.skip)
