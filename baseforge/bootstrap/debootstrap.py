"""debootstrap: the classic recipe (``debootstrap … && tar -C rootfs -c .``), selectable per image."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BaseforgeError
from ..run import output, run
from ..spec import CellSpec
from . import Bootstrapper


class Debootstrap(Bootstrapper, name="debootstrap"):
    binaries = ("debootstrap", "tar")
    variants = ("minbase", "buildd", "fakechroot")  # debootstrap(8) --variant

    def argv(self, cell: CellSpec, target: Path) -> list[str]:
        main = cell.sources[0]
        argv = ["debootstrap", f"--variant={cell.base_variant}", f"--arch={cell.arch}", f"--components={','.join(main.components)}"]
        argv += [f"--keyring={k}" for k in cell.keyrings]
        if cell.packages:
            argv.append(f"--include={','.join(cell.packages)}")
        return argv + [cell.release, str(target), main.url]

    def bootstrap(self, cell: CellSpec, out_tar: Path, workdir: Path) -> None:
        if os.geteuid() != 0:
            raise BaseforgeError(
                f"debootstrap needs root, and {cell.id} is being built as uid {os.geteuid()}",
                hint="use bootstrapper: mmdebstrap (it runs rootless with --mode=unshare), or run as root",
            )
        target = workdir / "rootfs"
        run(self.argv(cell, target), env={"SOURCE_DATE_EPOCH": str(cell.epoch)})
        # debootstrap writes only the main source; add -updates/-security like Debian's images have
        (target / "etc/apt/sources.list").write_text("".join(f"{s.deb_line()}\n" for s in cell.sources))
        run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", target, "-cf", out_tar, "."])

    def version(self) -> str:
        return output(["dpkg-query", "-W", "-f=${Version}", "debootstrap"])
