"""debootstrap: the classic recipe (``debootstrap … && tar -C rootfs -c .``), selectable per image."""

from __future__ import annotations

from pathlib import Path

from ..errors import BaseforgeError
from ..host import require_root
from ..run import output, run
from ..secret import auth_conf, strip_sources
from ..spec import CellSpec
from . import Bootstrapper, tar_tree


class Debootstrap(Bootstrapper, name="debootstrap"):
    binaries = ("debootstrap", "tar")
    variants = ("minbase", "buildd", "fakechroot")  # debootstrap(8) --variant

    def argv(self, cell: CellSpec, target: Path) -> list[str]:
        main = strip_sources(cell.sources)[0]
        argv = ["debootstrap", f"--variant={cell.base_variant}", f"--arch={cell.arch}", f"--components={','.join(main.components)}"]
        # a missing or unusable keyring is an error, not debootstrap's warning; only insecure: true turns it off
        argv.append("--no-check-gpg" if cell.insecure else "--force-check-gpg")
        argv += [f"--keyring={k}" for k in cell.keyrings]
        if cell.packages:
            argv.append(f"--include={','.join(cell.packages)}")
        return argv + [cell.release, str(target), main.url]

    def bootstrap(self, cell: CellSpec, out_tar: Path, workdir: Path) -> None:
        if auth_conf(cell.sources):
            raise BaseforgeError(f"{cell.id}: debootstrap would put the mirror's user:password on its command line",
                                 hint="use bootstrapper: mmdebstrap, which reads credentials from a private auth.conf")
        require_root("debootstrap", cell.id, "use bootstrapper: mmdebstrap (it runs rootless with --mode=unshare), or run as root")
        target = workdir / "rootfs"
        run(self.argv(cell, target), env={"SOURCE_DATE_EPOCH": str(cell.epoch)})
        # debootstrap writes only the main source; add -updates/-security like Debian's images have
        (target / "etc/apt/sources.list").write_text("".join(f"{s.deb_line()}\n" for s in strip_sources(cell.sources)))
        tar_tree(target, out_tar)

    def version(self) -> str:
        return output(["dpkg-query", "-W", "-f=${Version}", "debootstrap"])
