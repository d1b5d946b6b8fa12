"""Rules push and push_app: copy an OCI archive (image or multi-arch index) to the registry under every tag."""

from baseforge.publish import push
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    push(snakemake.input.archive, snakemake.params.registry, snakemake.params.tags, snakemake.output.record)
