"""dnf: the RHEL-family bootstrapper (``dnf --installroot``, Debian's dnf package), then tar the root.

Only our own repository file is read (``reposdir`` is a private folder, ``--config`` a private
dnf.conf): the host's repositories never leak in. Packages are checked against the image's
``keyrings:`` (``gpgkey=``, ``gpgcheck=1``, always: only the image's ``insecure: true`` turns it off);
``repo_gpgcheck=1`` also checks the repository metadata's signature where the preset says the
distribution signs it (``signed_metadata``), or ``options: {repo_gpgcheck: true|false}`` says so. dnf's cache and logs stay in the rootfs and pack() drops them
(leaks.tsv, family rpm); the rpmdb is kept.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from .. import distro, lockrpm
from ..errors import BaseforgeError
from ..host import require_root
from ..run import output, run
from ..secret import split_credentials, write_private
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
    if not cell.keyrings and not cell.insecure:
        raise BaseforgeError(f"{cell.id}: dnf checks package signatures and this image lists no keys",
                             hint="add keyrings: [<the distribution's RPM-GPG-KEY file or URL>] to the image")
    gpgcheck = int(not cell.insecure)  # only insecure: true turns it off
    signed = cell.options.get("repo_gpgcheck", distro.get(cell.distro).signed_metadata)
    repo_gpgcheck = int(bool(signed) and not cell.insecure)
    keys = " ".join(key_url(k) for k in cell.keyrings)
    out = []
    for src in cell.sources:
        url, user, password = split_credentials(src.url)  # this file is private to the job, never in the image
        login = f"username={unquote(user)}\npassword={unquote(password or '')}\n" if user is not None else ""
        out.append(f"[{src.suite}]\nname={cell.distro} {cell.release} {src.suite}\nbaseurl={url}\n{login}enabled=1\n"
                   f"gpgcheck={gpgcheck}\nrepo_gpgcheck={repo_gpgcheck}\ngpgkey={keys}\n")
    return "\n".join(out)


class Dnf(Bootstrapper, name="dnf"):
    binaries = ("dnf", "rpm", "tar")
    locks = True
    key_urls = True

    def argv(self, cell: CellSpec, root: Path, workdir: Path) -> list[str]:
        """The dnf command line for ``cell`` (a pure function, so tests can check it)."""
        return [
            "dnf", "-y", f"--installroot={root}", f"--releasever={cell.release}",
            f"--forcearch={cell.platform.uname}", f"--config={workdir / 'dnf.conf'}",
            f"--setopt=reposdir={workdir / 'repos.d'}", f"--setopt=cachedir={root}/var/cache/dnf",
            "--setopt=install_weak_deps=False", "--setopt=tsflags=nodocs", "--setopt=keepcache=False",
            "--noplugins", "--nodocs", "install", "--", *cell.packages,
        ]

    def bootstrap(self, cell: CellSpec, out_tar: Path, workdir: Path) -> None:
        if cell.lock:  # exactly the locked NEVRAs, verified by sha256 and signature
            return lockrpm.bootstrap(self, cell, out_tar, workdir)
        workdir = workdir.resolve()  # the tool wants absolute paths; Snakemake hands relative ones
        require_root("dnf --installroot", cell.id)
        if not cell.packages:
            raise BaseforgeError(f"{cell.id}: no packages to install", hint="list packages: for the image or its variant")
        (workdir / "repos.d").mkdir()
        write_private(workdir / "repos.d/baseforge.repo", repo_file(cell))
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
