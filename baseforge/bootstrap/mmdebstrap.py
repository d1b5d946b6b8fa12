"""mmdebstrap: the default Debian-family bootstrapper (fast, reproducible with SOURCE_DATE_EPOCH, rootless)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .. import pkgcache
from ..run import output, run
from ..spec import CellSpec
from . import Bootstrapper

HOOKS = Path("/usr/share/mmdebstrap/hooks")


def mode() -> str:
    """``root`` when we are root, else ``unshare``; rootless needs /etc/subuid and /etc/subgid entries, so
    say so here, before mmdebstrap runs (its own error is a bare ``newuidmap`` failure deep in its log)."""
    if os.geteuid() == 0:
        return "root"
    import pwd

    from ..doctor import subid_problem
    from ..errors import BaseforgeError

    user = pwd.getpwuid(os.geteuid()).pw_name
    problem = subid_problem(user)
    if problem:
        raise BaseforgeError(f"rootless bootstrap (mmdebstrap --mode=unshare) as {user} needs subordinate uids and gids",
                             hint=f"{problem} (as root, on every node)")
    return "unshare"


class Mmdebstrap(Bootstrapper, name="mmdebstrap"):
    binaries = ("mmdebstrap", "apt-get", "gpgv")

    def argv(self, cell: CellSpec, out_tar: Path, incoming: Path | None = None) -> list[str]:
        """The mmdebstrap command line for ``cell`` (a pure function, so tests can check it)."""
        argv = [
            "mmdebstrap",
            f"--mode={cell.options.get('mode') or mode()}",
            f"--variant={cell.base_variant}",
            f"--architectures={cell.arch}",
            "--format=tar",
            # bookworm and later are merged-/usr without the usrmerge package (and its perl)
            f"--hook-dir={HOOKS / 'maybe-merged-usr'}",
            "--aptopt=APT::Install-Recommends \"false\"",
            # dpkg without an fsync per file (~12 % of a minbase bootstrap): an interrupted build is thrown
            # away anyway. mmdebstrap keeps the option in etc/dpkg/dpkg.cfg.d/99mmdebstrap: removed again, so
            # the image's dpkg config is only Debian's minimizing config (which has docker-apt-speedup)
            "--dpkgopt=force-unsafe-io",
            '--customize-hook=rm -f "$1"/etc/dpkg/dpkg.cfg.d/99mmdebstrap',
        ]
        argv += [f"--keyring={k}" for k in cell.keyrings]
        if cell.packages:
            argv.append(f"--include={','.join(cell.packages)}")
        if cell.package_cache and incoming:
            # share verified .debs between jobs: copy the cache in before download, copy new files out
            # to a job-private folder that pkgcache.merge() moves into the cache file by file, atomically
            argv += [
                "--skip=download/empty",
                "--skip=essential/unlink",
                '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
                f"--setup-hook=sync-in {cell.package_cache} /var/cache/apt/archives/",
                f"--customize-hook=sync-out /var/cache/apt/archives {incoming}",
                # sync-in copied the cache folder's own mode and owner onto archives/: put Debian's back, so
                # the image does not depend on how the cache folder was created, nor on who ran the build
                # (--mode=unshare: the hook runs as root in the user namespace; the owner was the user's uid)
                '--customize-hook=chmod 0755 "$1"/var/cache/apt/archives && chown 0:0 "$1"/var/cache/apt/archives',
            ]
        argv += [cell.release, str(out_tar)]
        argv += [src.deb_line() for src in cell.sources]
        return argv

    def bootstrap(self, cell: CellSpec, out_tar: Path, workdir: Path) -> None:
        incoming = workdir / "debs"
        if cell.package_cache:
            # the rule gives it relative to the work directory (so clones share cache entries)
            cell = dataclasses.replace(cell, package_cache=str(Path(cell.package_cache).resolve()))
            incoming.mkdir()
            Path(cell.package_cache).mkdir(parents=True, exist_ok=True)
        run(self.argv(cell, out_tar, incoming), env={"SOURCE_DATE_EPOCH": str(cell.epoch)})
        if cell.package_cache:
            pkgcache.merge(incoming, Path(cell.package_cache))

    def version(self) -> str:
        return output(["mmdebstrap", "--version"]).split()[-1]
