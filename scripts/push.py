"""Rules push, push_app: copy an image (OCI archive or multi-arch index) to the
registry (signed with registry.sign), with its SBOM and provenance beside it as OCI referrers."""

from baseforge.attest import push_with_attestations
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    push_with_attestations(
        snakemake.input.get("archive"),
        snakemake.params.registry,
        snakemake.params.tags,
        snakemake.output.record,
        engine_record=snakemake.input.get("engine"),
        oci=list(snakemake.input.get("oci", [])),
        sbom=list(snakemake.input.get("sbom", [])),
        provenance=list(snakemake.input.get("provenance", [])),
        base_name=snakemake.params.get("base_name"),
        base_info=snakemake.input.get("base_info"),
        parameters=snakemake.params.get("parameters"),
        epoch=snakemake.params.get("epoch", 0),
    )
