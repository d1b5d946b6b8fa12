"""Rules push, push_app, push_built_app: copy an image (OCI archive, multi-arch index, or the engine's) to the registry."""

from baseforge.publish import push
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    push(
        snakemake.input.get("archive"),
        snakemake.params.registry,
        snakemake.params.tags,
        snakemake.output.record,
        engine_record=snakemake.input.get("engine"),
    )
