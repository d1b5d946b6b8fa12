"""dnf: the RHEL-family bootstrapper (``dnf --installroot``, Debian's dnf package), then tar the root.

Only our own repository file is read (``reposdir`` is a private folder, ``--config`` a private
dnf.conf): the host's repositories never leak in. Packages are checked against the image's
``keyrings:`` (``gpgkey=``, ``gpgcheck=1``); ``options: {repo_gpgcheck: true}`` also checks the
repository metadata's signature. dnf's cache and logs stay in the rootfs and pack() drops them
(leaks.tsv, family rpm); the rpmdb is kept.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from .. import distro, lockrpm
from ..errors import BaseforgeError
from ..host import require_root
from ..run import output, run
from ..spec import CellSpec
from . import Bootstrapper, tar_tree

def rpmdb_path(cell: CellSpec) -> str:
    """Where the target's rpm looks for its database: ``options.rpmdb``, else what the cell's preset says."""
    return cell.options.get("rpmdb") or distro.get(cell.distro).rpmdb(cell.release)


def key_url(key: str) -> str:
    """A key of ``keyrings:`` as dnf's gpgkey= wants it: a URL (relative paths are relative to the workflow)."""
    return key if urlparse(key).scheme in ("http", "https", "file") else Path(key).resolve().as_uri()


def repo_file(cell: CellSpec) -> str:
    """The .repo file: one section per source, every one checked against the configured keys."""
    if not cell.keyrings and cell.options.get("gpgcheck", True):
        raise BaseforgeError(f"{cell.id}: dnf checks package signatures and this image lists no keys",
                             hint="add keyrings: [<the distribution's RPM-GPG-KEY file or URL>] to the image")
    gpgcheck = int(bool(cell.options.get("gpgcheck", True)))
    repo_gpgcheck = int(bool(cell.options.get("repo_gpgcheck", False)))
    keys = " ".join(key_url(k) for k in cell.keyrings)
    out = []
    for src in cell.sources:
        out.append(f"[{src.suite}]\nname={cell.distro} {cell.release} {src.suite}\nbaseurl={src.url}\nenabled=1\n"
                   f"gpgcheck={gpgcheck}\nrepo_gpgcheck={repo_gpgcheck}\ngpgkey={keys}\n")
    return "\n".join(out)


class Dnf(Bootstrapper, name="dnf"):
    binaries = ("dnf", "rpm", "tar")
    locks = True

    def argv(self, cell: CellSpec, root: Path, workdir: Path) -> list[str]:
        """The dnf command line for ``cell`` (a pure function, so tests can check it)."""
        return [
            "dnf", "-y", f"--installroot={root}", f"--releasever={cell.release}",
            f"--forcearch={cell.platform.uname}", f"--config={workdir / 'dnf.conf'}",
            f"--setopt=reposdir={workdir / 'repos.d'}", f"--setopt=cachedir={root}/var/cache/dnf",
            "--setopt=install_weak_deps=False", "--setopt=tsflags=nodocs", "--setopt=keepcache=False",
            "--noplugins", "--nodocs", "install", *cell.packages,
        ]

    def bootstrap(self, cell: CellSpec, out_tar: Path, workdir: Path) -> None:
        if cell.lock:  # exactly the locked NEVRAs, verified by sha256 and signature
            return lockrpm.bootstrap(self, cell, out_tar, workdir)
        workdir = workdir.resolve()  # the tool wants absolute paths; Snakemake hands relative ones
        require_root("dnf --installroot", cell.id)
        if not cell.packages:
            raise BaseforgeError(f"{cell.id}: no packages to install", hint="list packages: for the image or its variant")
        (workdir / "repos.d").mkdir()
        (workdir / "repos.d/baseforge.repo").write_text(repo_file(cell))
        (workdir / "dnf.conf").write_text("[main]\nbest=True\nskip_if_unavailable=False\n")
        # rpm's database location is a macro; ~/.rpmmacros of a private HOME sets it for the target
        home = workdir / "home"
        home.mkdir()
        (home / ".rpmmacros").write_text(f"%_dbpath {rpmdb_path(cell)}\n")
        root = workdir / "rootfs"
        root.mkdir()
        run(self.argv(cell, root, workdir), env={"HOME": str(home), "SOURCE_DATE_EPOCH": str(cell.epoch)})
        tar_tree(root, out_tar)

    def version(self) -> str:
        return output(["dnf", "--version"]).splitlines()[0]
