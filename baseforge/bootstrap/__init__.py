"""Bootstrapper plugins: the "how" of making a rootfs.

A plugin is one class in one module of this package (or of another package, registered under the
``baseforge.bootstrappers`` entry point group) that subclasses :class:`Bootstrapper` with
``name="…"``. Modules are imported only when their bootstrapper is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from .. import plugins
from ..spec import CellSpec

ENTRY_POINT_GROUP = "baseforge.bootstrappers"


class Bootstrapper:
    """Turns a :class:`CellSpec` into a raw (not yet normalized) rootfs tarball."""

    name: ClassVar[str]
    #: executables this plugin needs on the host (checked by ``baseforge doctor``)
    binaries: ClassVar[tuple[str, ...]] = ()
    registry: ClassVar[dict[str, type[Bootstrapper]]] = {}

    def __init_subclass__(cls, name: str | None = None, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if name:
            cls.name = name
            Bootstrapper.registry[name] = cls

    def bootstrap(self, cell: CellSpec, out_tar: Path, workdir: Path) -> None:
        """Write the rootfs of ``cell`` as an uncompressed tar to ``out_tar``.

        ``workdir`` is an empty scratch directory on the same file system, removed afterwards.
        """
        raise NotImplementedError

    def version(self) -> str:
        """The version of the tool doing the work, for provenance records."""
        return "unknown"


def available() -> list[str]:
    """Names of every bootstrapper: the modules of this package and the entry points."""
    return plugins.available(__name__, ENTRY_POINT_GROUP)


def get(name: str) -> Bootstrapper:
    """Load and instantiate the bootstrapper called ``name``."""
    return plugins.load(name, Bootstrapper.registry, __name__, ENTRY_POINT_GROUP, "bootstrapper")()


def build_raw(cell: CellSpec, out_tar: Path) -> None:
    """Bootstrap ``cell`` into ``out_tar`` via a temporary file, so a failed or interrupted job leaves nothing."""
    import os
    import shutil
    import tempfile

    from ..doctor import require_binfmt
    from ..run import step

    require_binfmt(cell.arch)
    out_tar = Path(out_tar)
    out_tar.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".bootstrap-", dir=out_tar.parent))
    try:
        with step(f"bootstrap {cell.id} with {cell.bootstrapper}"):
            tmp = workdir / "rootfs.tar"
            get(cell.bootstrapper).bootstrap(cell, tmp, workdir)
            os.replace(tmp, out_tar)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
