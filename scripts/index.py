"""Rule index: one OCI image index listing every architecture of an (image, release, variant)."""

from baseforge.oci import write_index
from baseforge.run import job
from baseforge.spec import ImageMeta

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    write_index(snakemake.output.archive, snakemake.input.archives, ImageMeta.from_dict(snakemake.params.meta))
