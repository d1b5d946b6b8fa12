"""Rule image: write the reproducible OCI image (also a docker-archive) of one rootfs.tar."""


from baseforge.oci import write_image
from baseforge.run import job, write_json
from baseforge.spec import ImageMeta

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    result = write_image(snakemake.output.archive, [snakemake.input.tar], ImageMeta.from_dict(snakemake.params.meta),
                         threads=snakemake.threads)
    write_json(snakemake.output.info, result.to_dict())
