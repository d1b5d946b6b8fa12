"""Rule app_image: write a declarative app (base + packages + built/added files + cmd) as a reproducible OCI image."""

from baseforge.app import write_declarative
from baseforge.app_packages import write_with_packages
from baseforge.run import job

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    app, out = snakemake.params.app, snakemake.output
    kwargs = dict(base_archive=snakemake.input.get("base_oci"), archive=out.archive, info=out.info, sbom=out.sbom,
                  threads=snakemake.threads)
    if app.get("packages"):
        write_with_packages(app, snakemake.params.root_cell, **kwargs)
    else:
        write_declarative(app, **kwargs)
