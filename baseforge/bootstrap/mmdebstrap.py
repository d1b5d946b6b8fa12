"""mmdebstrap: the default Debian-family bootstrapper (fast, reproducible with SOURCE_DATE_EPOCH, rootless)."""

from __future__ import annotations

import dataclasses
import os
import shlex
from pathlib import Path

from .. import chrootless, lockbuild, pkgcache
from ..errors import BaseforgeError
from ..host import subid_problem, user
from ..run import output
from ..secret import auth_conf, strip_sources, write_private
from ..spec import CellSpec
from . import Bootstrapper, scratch_dir

HOOKS = Path("/usr/share/mmdebstrap/hooks")


def mode() -> str:
    """``root`` when we are root, else ``unshare``; rootless needs /etc/subuid and /etc/subgid entries, so
    say so here, before mmdebstrap runs (its own error is a bare ``newuidmap`` failure deep in its log)."""
    if os.geteuid() == 0:
        return "root"
    problem = subid_problem(user())
    if problem:
        raise BaseforgeError(f"rootless bootstrap (mmdebstrap --mode=unshare) as {user()} needs subordinate uids and gids",
                             hint=f"{problem} (as root, on every node)")
    return "unshare"


def environment(cell: CellSpec) -> dict[str, str]:
    """What every mmdebstrap run gets: the cell's SOURCE_DATE_EPOCH, and as TMPDIR (where mmdebstrap unpacks
    the tree) the bootstrap scratch directory, when there is one."""
    env = {"SOURCE_DATE_EPOCH": str(cell.epoch)}
    tmpdir = scratch_dir()
    if tmpdir:
        Path(tmpdir).mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = tmpdir
    return env


def apt_trust_options(cell: CellSpec, auth: Path | None) -> list[str]:
    """apt options for a private auth.conf (a mirror's credentials) and, with ``insecure: true`` only,
    for unsigned repositories."""
    out = [f'--aptopt=Dir::Etc::netrc "{auth}"'] if auth else []
    if cell.insecure:
        out += ['--aptopt=Acquire::AllowInsecureRepositories "true"', '--aptopt=APT::Get::AllowUnauthenticated "true"']
    return out


class Mmdebstrap(Bootstrapper, name="mmdebstrap"):
    binaries = ("mmdebstrap", "apt-get", "gpgv")

    layers = True
    locks = True
    locks_through_apt = True
    variants = ("extract", "custom", "essential", "apt", "required", "minbase", "buildd", "important", "debootstrap", "standard")  # mmdebstrap(1) --variant

    def argv(self, cell: CellSpec, out_tar: Path, incoming: Path | None = None, parent: Path | None = None,
             auth: Path | None = None) -> list[str]:
        """The mmdebstrap command line for ``cell`` (a pure function, so tests can check it).

        With ``parent`` (a raw tar of the same release whose packages are a subset of this cell's), the
        tree starts as that tar and apt installs the packages in the chroot (mmdebstrap's "build on top of
        an already present minimal chroot"): the essential set is neither downloaded nor installed again.

        ``auth``: a private auth.conf holding the mirrors' credentials, which the source lines (the command
        line, and the image's sources.list) then lack; apt is pointed at it and the pointer removed again.
        """
        argv = [
            "mmdebstrap",
            f"--mode={cell.options.get('mode') or mode()}",
            f"--variant={'custom' if parent else cell.base_variant}",
            f"--architectures={cell.arch}",
            "--format=tar",
            "--aptopt=APT::Install-Recommends \"false\"",
            # dpkg without an fsync per file (~12 % of a minbase bootstrap): an interrupted build is thrown
            # away anyway
            "--dpkgopt=force-unsafe-io",
        ]
        argv += [f"--keyring={k}" for k in cell.keyrings] + apt_trust_options(cell, auth)
        customize = []
        if parent:
            # ./dev is mmdebstrap's own (it cannot mknod in unshare mode); the layout is the parent's
            argv.append(f"--setup-hook=tar -C \"$1\" --exclude='./dev/*' -xf {shlex.quote(str(parent))}")
            customize.append(f'--customize-hook=chroot "$1" apt-get install --yes -- {shlex.join(cell.packages)}')
        else:
            # bookworm and later are merged-/usr without the usrmerge package (and its perl)
            argv.append(f"--hook-dir={HOOKS / 'maybe-merged-usr'}")
            if cell.packages:
                argv.append(f"--include={','.join(cell.packages)}")
        # mmdebstrap keeps --dpkgopt in etc/dpkg/dpkg.cfg.d/99mmdebstrap: removed again, so the image's dpkg
        # config is only Debian's minimizing config (which has docker-apt-speedup)
        customize.append('--customize-hook=rm -f "$1"/etc/dpkg/dpkg.cfg.d/99mmdebstrap')
        if cell.package_cache and incoming:
            # share verified .debs between jobs: copy the cache in before download, copy new files out
            # to a job-private folder that pkgcache.merge() moves into the cache file by file, atomically
            argv += [
                "--skip=download/empty",
                "--skip=essential/unlink",
                '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
                f"--setup-hook=sync-in {shlex.quote(cell.package_cache)} /var/cache/apt/archives/",
            ]
            customize += [
                f"--customize-hook=sync-out /var/cache/apt/archives {shlex.quote(str(incoming))}",
                # sync-in copied the cache folder's own mode and owner onto archives/: put Debian's back, so
                # the image does not depend on how the cache folder was created, nor on who ran the build
                # (--mode=unshare: the hook runs as root in the user namespace; the owner was the user's uid)
                '--customize-hook=chmod 0755 "$1"/var/cache/apt/archives && chown 0:0 "$1"/var/cache/apt/archives',
            ]
        if auth or cell.insecure:
            # last: mmdebstrap keeps --aptopt in the image's apt config; the build's must not outlive it
            customize.append("--customize-hook=sed -i '/Dir::Etc::netrc/d; /AllowInsecureRepositories/d; "
                             "/AllowUnauthenticated/d' \"$1\"/etc/apt/apt.conf.d/99mmdebstrap")
        argv += customize
        argv += [cell.release, str(out_tar)]
        argv += [src.deb_line() for src in strip_sources(cell.sources)]
        return argv

    def bootstrap(self, cell: CellSpec, out_tar: Path, workdir: Path, parent: Path | None = None) -> None:
        if cell.lock:  # exactly the locked packages, from the caches, the mirror or the snapshot archive
            return lockbuild.bootstrap(self, cell, out_tar, workdir, env=environment(cell))
        incoming = workdir / "debs"
        if cell.package_cache:
            # the rule gives it relative to the work directory (so clones share cache entries)
            cell = dataclasses.replace(cell, package_cache=str(Path(cell.package_cache).resolve()))
            incoming.mkdir()
            Path(cell.package_cache).mkdir(parents=True, exist_ok=True)
        netrc = auth_conf(cell.sources)
        auth = write_private(workdir.resolve() / "auth.conf", netrc) if netrc else None
        argv = self.argv(cell, out_tar, incoming, parent=Path(parent).resolve() if parent else None, auth=auth)
        # a foreign architecture: the host's dpkg where that gives the same bytes, else qemu (baseforge/chrootless.py)
        chrootless.build(cell, argv, environment(cell), out_tar, layered=parent is not None)
        if cell.package_cache:
            pkgcache.merge(incoming, Path(cell.package_cache))

    def version(self) -> str:
        return output(["mmdebstrap", "--version"]).split()[-1]
