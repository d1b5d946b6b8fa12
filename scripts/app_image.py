"""Rule app_image: write a declarative app (base + packages + built/added files + cmd) as a reproducible OCI image."""

from baseforge.app_packages import write_declarative
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    write_declarative(
        snakemake.params.app,
        root_cell=snakemake.params.root_cell,
        base_archive=snakemake.input.get("base_oci"),
        archive=snakemake.output.archive,
        info=snakemake.output.info,
        sbom=snakemake.output.sbom,
    )
