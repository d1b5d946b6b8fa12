"""Rule sbom: an SPDX 2.3 SBOM of the installed packages and a provenance record, beside the rootfs."""

from baseforge.provenance import write_provenance
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    write_provenance(
        snakemake.params.plan,
        rootfs=snakemake.input.tar,
        info=snakemake.input.info,
        sbom=snakemake.output.sbom,
        provenance=snakemake.output.provenance,
    )
