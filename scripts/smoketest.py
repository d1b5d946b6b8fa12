"""Rules smoketest and smoketest_app: run an image with no network and check what it says."""

from baseforge.run import job
from baseforge.smoketest import smoketest

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    smoketest(snakemake.params.plan, record=snakemake.input.record, report=snakemake.output.report)
