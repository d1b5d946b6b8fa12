"""Declarative apps with packages (the SBOM of every declarative app: baseforge.app).

``packages: [jq]`` on a base of this workflow (Debian family): the base image's layers are flattened into
one tree, mmdebstrap starts from that tree (``--variant=custom``, the same way a layered variant starts
from its parent bootstrap) and installs the packages in a chroot with the tree's own apt and dpkg, from
the root image's configured sources, with its keyrings (signatures verified), its epoch and the package
cache. The result is normalized by pack's rules (leaks, epoch, slim's path-excludes when the root image is
slim) and the difference to the base becomes one layer (whiteouts for what is gone) written by the OCI
writer on top of the base's exact layers. The install runs as root in the chroot (mmdebstrap
``--mode=root``; ``--mode=unshare`` when not root, in a user namespace).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from . import bootstrap, layers, lockbuild, pack, pkgcache, scratch, trust
from .app import check_pins, write_declarative
from .bootstrap.mmdebstrap import environment
from .run import run, step
from .spec import CellSpec


def install_argv(cell: CellSpec, raw: Path, incoming: Path | None, flat: Path) -> list[str]:
    """mmdebstrap's command line that installs ``cell.packages`` on the tree tar ``flat``.

    It is the layered bootstrap's command line, with the tree unpacked with its xattrs (file capabilities
    are part of the base: losing them would show up as a change in the new layer), and without the base's
    etc/resolv.conf (emptied by pack): mmdebstrap's copy of the host's lets apt in the chroot reach the
    mirror; pack empties it again.
    """
    argv = bootstrap.get("mmdebstrap").argv(cell, raw, incoming, parent=flat)
    extract = '--setup-hook=tar -C "$1" '
    flags = "--xattrs --xattrs-include='*' --exclude=etc/resolv.conf "
    return [a.replace(extract, extract + flags, 1) if a.startswith(extract) else a for a in argv]


def package_layer(packages: list[str], root_cell: dict[str, Any], base_archive: Path, out: Path, workdir: Path,
                  lock: dict[str, Any] | None = None) -> dict:
    """Write the layer that ``apt-get install``s ``packages`` on the image in ``base_archive`` to ``out``;
    ``lock`` (the app's ``lock``, ``lock_key`` and ``snapshot``): only the locked packages can be installed."""
    cell = dataclasses.replace(CellSpec.from_dict(root_cell), packages=tuple(packages))
    flat, raw, packed = workdir / "base.tar", workdir / "installed.tar", workdir / "packed.tar"
    layers.flatten(base_archive, flat, workdir)
    if not cell.insecure:
        trust.check_apt_config(flat, f"apt-get install {' '.join(packages)}")
    if lock:
        _install_locked(dataclasses.replace(cell, **lock), raw.resolve(), flat.resolve(), workdir)
    else:
        _install(cell, raw.resolve(), flat.resolve(), workdir)
    pack.pack(raw, packed, epoch=cell.epoch, slim=cell.slim, family="debian")
    return layers.diff(flat, packed, out, cell.epoch)


def _install(cell: CellSpec, raw: Path, flat: Path, workdir: Path) -> None:
    incoming = None
    if cell.package_cache:
        cell = dataclasses.replace(cell, package_cache=str(Path(cell.package_cache).resolve()))
        incoming = workdir / "debs"
        incoming.mkdir()
        Path(cell.package_cache).mkdir(parents=True, exist_ok=True)
    with step(f"apt-get install {' '.join(cell.packages)} (mmdebstrap, chroot)"):
        run(install_argv(cell, raw, incoming, flat), env=environment(cell))
    if incoming:
        pkgcache.merge(incoming, Path(cell.package_cache))


def _install_locked(cell: CellSpec, raw: Path, flat: Path, workdir: Path) -> None:
    """The install of an app with a lock: apt reaches the mirror through the proxy that serves only the
    lock's files (its InRelease, indices and packages: :mod:`baseforge.lockbuild`)."""
    lock = lockbuild.load(cell)
    with step(f"gather the {len(lock.packages)} locked packages of {cell.lock}"):
        files, routes = lockbuild.gather(cell, lock, workdir / "locked", who=f"app {Path(cell.lock).stem}")
    with step(f"apt-get install {' '.join(cell.packages)} (mmdebstrap, chroot, locked)"), lockbuild.proxy(routes) as url:
        argv = install_argv(dataclasses.replace(cell, package_cache=None), raw, None, flat)
        run(lockbuild.through(argv, url, cell), env=environment(cell))
    lockbuild.keep(files)


def write_with_packages(app: dict[str, Any], root_cell: dict[str, Any], base_archive: str, archive: str, info: str,
                        sbom: str, threads: int | None = None) -> None:
    """Rule app_image for an app with packages: the packages layer, then the app's files, image and SBOM."""
    check_pins(app, base_archive)
    with scratch.owned_dir(Path(archive).resolve().parent, ".pkgs-") as tmp:
        layer = tmp / "packages.tar"
        locked = {k: app[k] for k in ("lock", "lock_key", "snapshot")} if app.get("lock") else None
        # mmdebstrap mounts in its tree: its commands in private namespaces, killed with the job
        with bootstrap.isolated(tmp, "install-") as work:
            package_layer(app["packages"], root_cell, Path(base_archive), layer, work, locked)
        write_declarative(app, base_archive, archive, info, sbom, below=[layer], threads=threads)
