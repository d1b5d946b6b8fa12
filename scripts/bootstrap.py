"""Rule bootstrap: make the raw rootfs tar of one cell with its bootstrapper plugin (on its parent's, if any)."""

from baseforge.bootstrap import build_raw
from baseforge.run import job
from baseforge.spec import CellSpec

snakemake = snakemake  # noqa: F821 - injected by Snakemake

with job(snakemake):
    build_raw(CellSpec.from_dict(snakemake.params.cell), snakemake.output.tar, parent=snakemake.input.get("parent"))
