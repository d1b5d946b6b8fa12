"""Bootstrapper plugins: the "how" of making a rootfs.

A plugin is one class in one module of this package (or of another package, registered under the
``baseforge.bootstrappers`` entry point group) that subclasses :class:`Bootstrapper` with
``name="…"``. Modules are imported only when their bootstrapper is asked for.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from .. import plugins, scratch
from ..host import require_binfmt
from ..run import prefixed, run, step
from ..spec import CellSpec

ENTRY_POINT_GROUP = "baseforge.bootstrappers"


class Bootstrapper:
    """Turns a :class:`CellSpec` into a raw (not yet normalized) rootfs tarball."""

    name: ClassVar[str]
    #: executables this plugin needs on the host (checked by ``baseforge doctor``)
    binaries: ClassVar[tuple[str, ...]] = ()
    #: can start from a parent bootstrap's tar and add packages to it (see ``bootstrap(parent=...)``)
    layers: ClassVar[bool] = False
    #: builds a cell pinned by a lock file (``cell.lock``; see baseforge.lockfile), and ``baseforge lock`` resolves it
    locks: ClassVar[bool] = False
    #: a locked build lets apt fetch the locked files through baseforge's proxy (so: ``http://`` mirrors only)
    locks_through_apt: ClassVar[bool] = False
    #: ``baseforge lock`` resolves its cells from the signed package indices alone (:meth:`choose`), without
    #: running the bootstrap (busybox, distroless: Debian packages that apt does not install)
    locks_from_index: ClassVar[bool] = False
    #: the package this plugin puts into the image (busybox: busybox-static), when the image is that
    #: package rather than a distribution: provenance names its version, not the fetching tool's
    product: ClassVar[str | None] = None
    #: the ``bootstrap_variant`` values it accepts (checked before any job, :mod:`baseforge.preflight`);
    #: empty: it has none to check
    variants: ClassVar[tuple[str, ...]] = ()
    #: ``keyrings:`` may be URLs (the tool fetches them itself: dnf's gpgkey=); else only files
    key_urls: ClassVar[bool] = False
    registry: ClassVar[dict[str, type[Bootstrapper]]] = {}

    def __init_subclass__(cls, name: str | None = None, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if name:
            cls.name = name
            Bootstrapper.registry[name] = cls

    def bootstrap(self, cell: CellSpec, out_tar: Path, workdir: Path, parent: Path | None = None) -> None:
        """Write the rootfs of ``cell`` as an uncompressed tar to ``out_tar``.

        ``workdir`` is an empty scratch directory on the same file system, removed afterwards. ``parent``
        (only given to plugins with ``layers = True``) is the raw tar of a bootstrap of the same release
        with a subset of ``cell.packages``, to start from.
        """
        raise NotImplementedError

    def choose(self, cell: CellSpec, texts: list[str]) -> dict:
        """With ``locks_from_index``: the packages of ``cell`` in the cell's signed Packages indices (their
        ``texts``), name -> its stanza (with ``Package``, ``Version``, ``Architecture``, ``SHA256``, ``Size``,
        ``Filename``)."""
        raise NotImplementedError

    def version(self) -> str:
        """The version of the tool doing the work, for provenance records."""
        return "unknown"


def tar_tree(root: Path, out_tar: Path) -> None:
    """The raw tar of a bootstrapped tree: numeric owners and xattrs kept (pack() normalizes the rest)."""
    run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", root, "-cf", out_tar, "."])


def available() -> list[str]:
    """Names of every bootstrapper: the modules of this package and the entry points."""
    return plugins.available(__name__, ENTRY_POINT_GROUP)


def get(name: str) -> Bootstrapper:
    """Load and instantiate the bootstrapper called ``name``."""
    return plugins.load(name, Bootstrapper.registry, __name__, ENTRY_POINT_GROUP, "bootstrapper")()


def scratch_dir(min_free: int = 2 << 30) -> str | None:
    """Where a bootstrapper unpacks its tree: ``$BASEFORGE_TMPDIR`` if set, else /dev/shm when it is a
    tmpfs with ``min_free`` bytes available (dpkg on a RAM disk is a third faster than on a disk), else None
    (the system's temporary directory)."""
    if os.environ.get("BASEFORGE_TMPDIR"):
        return os.environ["BASEFORGE_TMPDIR"]
    shm = "/dev/shm"
    try:
        st = os.statvfs(shm)
    except OSError:
        return None
    with open("/proc/self/mounts") as mounts:
        tmpfs = any(f[1] == shm and f[2] == "tmpfs" for f in (line.split() for line in mounts))
    ok = tmpfs and st.f_bavail * st.f_frsize >= min_free and os.access(shm, os.W_OK | os.X_OK)
    return shm if ok else None


@contextlib.contextmanager
def isolated(beside: Path | str, prefix: str = ".bootstrap-") -> Iterator[Path]:
    """A work directory in ``beside`` (an output's folder) and a scratch tree for the bootstrapper
    (``BASEFORGE_TMPDIR``, in a directory of :func:`scratch_dir`), both carrying an owner marker, with every
    command of the block in private namespaces (:func:`baseforge.scratch.isolation`): what a killed job
    leaves, the next run removes (:mod:`baseforge.scratch`)."""
    root = scratch_dir() or tempfile.gettempdir()
    saved = os.environ.get("BASEFORGE_TMPDIR")
    with scratch.owned_dir(beside, prefix) as workdir, scratch.owned_dir(root, "baseforge-") as tmpdir, \
            prefixed(scratch.isolation(), own_group=True):
        os.environ["BASEFORGE_TMPDIR"] = str(tmpdir)
        try:
            yield workdir
        finally:
            os.environ.pop("BASEFORGE_TMPDIR") if saved is None else os.environ.update(BASEFORGE_TMPDIR=saved)


def build_raw(cell: CellSpec, out_tar: Path, parent: Path | None = None) -> None:
    """Bootstrap ``cell`` into ``out_tar`` via a temporary file, so a failed or interrupted job leaves nothing
    (its commands :func:`isolated`, with its work directory beside ``out_tar``).
    ``parent``: a smaller bootstrap of the same release to layer on (see config ``layer_variants``)."""
    require_binfmt(cell.arch)
    out_tar = Path(out_tar)
    with isolated(out_tar.parent) as workdir, step(f"bootstrap {cell.id} with {cell.bootstrapper}"):
        tmp = workdir / "rootfs.tar"
        plugin = get(cell.bootstrapper)
        if parent is not None and plugin.layers:
            plugin.bootstrap(cell, tmp, workdir, parent=Path(parent))
        else:
            plugin.bootstrap(cell, tmp, workdir)
        os.replace(tmp, out_tar)
