"""Rule app_image: write a declarative app (base + built/added files + cmd) as a reproducible OCI image."""

from baseforge.app import write_app
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    write_app(
        snakemake.params.app,
        base_archive=snakemake.input.get("base_oci"),
        archive=snakemake.output.archive,
        info=snakemake.output.info,
        threads=snakemake.threads,
    )
