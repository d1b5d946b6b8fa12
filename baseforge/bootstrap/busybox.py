"""BusyBox: Debian's static busybox, its applet links and a minimal /etc (moby's mkimage busybox-static).

The binary comes from the ``busybox-static`` package of the cell's Debian suite and architecture,
fetched and signature-checked by ``mmdebstrap --variant=extract`` (a locked cell: the locked .deb, by its
sha256, unpacked by ``dpkg-deb``). The image records that package the way
distroless images do, in ``var/lib/dpkg/status.d/busybox-static`` (no dpkg in the image, but the manifest,
the SBOM, the provenance and image scanners read the name and Debian version from there).
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

from .. import lockbuild
from ..errors import BaseforgeError
from ..run import output, run
from ..secret import auth_conf, strip_sources, write_private
from ..spec import CellSpec
from . import Bootstrapper
from .distroless import Index
from .mmdebstrap import Mmdebstrap, environment, mode

DIRS = {"bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755, "etc": 0o755,
        "root": 0o700, "home": 0o755, "tmp": 0o1777, "var": 0o755, "var/spool": 0o755, "var/spool/mail": 0o755,
        "var/www": 0o755, "var/lib": 0o755, "var/lib/dpkg": 0o755, "var/lib/dpkg/status.d": 0o755,
        "dev": 0o755, "proc": 0o755, "sys": 0o755}
PACKAGE = "busybox-static"
#: the first line busybox prints: "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary."
BANNER = re.compile(r"BusyBox v\S+ \(Debian ([^)\s]+)\)")
ETC = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                  "nobody:x:65534:65534:nobody:/home:/bin/false\n",
    "etc/group": "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n",
    "etc/shadow": "root:*::0:::::\ndaemon:*::0:::::\nnobody:*::0:::::\n",
    "etc/nsswitch.conf": "hosts: files dns\npasswd: files\ngroup: files\nshadow: files\n",
}


def status_stanza(version: str, arch: str) -> str:
    """The package record of ``status.d`` (deb822, like a paragraph of dpkg's status file)."""
    return (f"Package: {PACKAGE}\nStatus: install ok installed\nSource: busybox\nVersion: {version}\n"
            f"Architecture: {arch}\n")


def package_version(banner: str) -> str:
    """The Debian version of busybox-static from the banner its binary prints."""
    found = BANNER.search(banner)
    if not found:
        raise BaseforgeError(f"the busybox binary does not say which Debian version it is: {banner[:80]!r}",
                             hint=f"is {PACKAGE} of this suite a Debian build?")
    return found.group(1)


class Busybox(Bootstrapper, name="busybox"):
    binaries = ("mmdebstrap",)
    product = PACKAGE

    locks = True
    locks_from_index = True

    def choose(self, cell: CellSpec, texts: list[str]) -> dict:
        """apt's candidate of busybox-static: its highest version in the cell's indices (it depends on nothing)."""
        found = Index(texts, cell.arch).candidates({"name": PACKAGE, "version": None})
        if not found:
            raise BaseforgeError(f"busybox {cell.id}: {PACKAGE} is not in the {cell.arch} indices of {cell.release}",
                                 hint="is the release a Debian suite with main, and the architecture one Debian builds?")
        return {PACKAGE: found[0]}

    def bootstrap(self, cell: CellSpec, out_tar: Path, workdir: Path) -> None:
        extract = workdir / "extract.tar"
        if cell.lock:  # the locked busybox-static, by its sha256 (package cache, mirror, snapshot archive)
            deb = lockbuild.debs(cell, workdir / "debs")[PACKAGE]
            extract.write_bytes(run(["dpkg-deb", "--fsys-tarfile", deb], capture=True).stdout)
        else:
            netrc = auth_conf(cell.sources)  # a mirror's credentials: in a private file, not on the command line
            argv = ["mmdebstrap", f"--mode={mode()}", "--variant=extract", f"--architectures={cell.arch}",
                    "--include=busybox-static", "--format=tar", *[f"--keyring={k}" for k in cell.keyrings],
                    *([f'--aptopt=Dir::Etc::netrc "{write_private(workdir.resolve() / "auth.conf", netrc)}"'] if netrc else []),
                    cell.release, str(extract), *[s.deb_line() for s in strip_sources(cell.sources)]]
            run(argv, env=environment(cell))
        with tarfile.open(extract) as tf:
            member = next((m for m in tf.getmembers() if m.name.lstrip("./") in ("bin/busybox", "usr/bin/busybox")), None)
            if member is None:
                raise BaseforgeError(f"busybox-static of {cell.release}/{cell.arch} holds no bin/busybox")
            binary = workdir / "busybox"
            binary.write_bytes(tf.extractfile(member).read())
        binary.chmod(0o755)
        try:
            applets = output([binary, "--list-full"]).split()
            version = package_version(output([binary]))
        except BaseforgeError as err:
            raise BaseforgeError(
                f"cannot run the {cell.arch} busybox binary to list its applets: {err.message}",
                hint="for a foreign architecture install qemu-user-static and binfmt-support (see `baseforge doctor`)",
            ) from None
        self.write(out_tar, binary.read_bytes(), applets, cell.epoch, status_stanza(version, cell.arch))

    @staticmethod
    def write(out_tar: Path, binary: bytes, applets: list[str], epoch: int, status: str = "") -> None:
        """The rootfs: directories, /bin/busybox, one symlink per applet, the files of ETC and the package record."""

        def info(name: str, **kw) -> tarfile.TarInfo:
            ti = tarfile.TarInfo(name)
            ti.mtime = epoch
            for key, value in kw.items():
                setattr(ti, key, value)
            return ti

        with tarfile.open(out_tar, "w", format=tarfile.PAX_FORMAT) as tf:
            for name, perm in DIRS.items():
                tf.addfile(info(name, type=tarfile.DIRTYPE, mode=perm))
            tf.addfile(info("bin/busybox", mode=0o755, size=len(binary)), io.BytesIO(binary))
            for applet in sorted(set(applets)):
                path = applet.strip("/")
                if path == "bin/busybox" or path.count("/") not in (1, 2):
                    continue
                target = "../" * path.count("/") + "bin/busybox"
                tf.addfile(info(path, type=tarfile.SYMTYPE, linkname=target.replace("../bin/", "", 1) if path.startswith("bin/") else target, mode=0o777))
            files = {**ETC, **({f"var/lib/dpkg/status.d/{PACKAGE}": status} if status else {})}
            for name, text in files.items():
                data = text.encode()
                tf.addfile(info(name, mode=0o640 if name.endswith("shadow") else 0o644, size=len(data)), io.BytesIO(data))

    def version(self) -> str:
        """The tool that fetches busybox-static (the image's own version is the package's: ``product``)."""
        return f"mmdebstrap {Mmdebstrap().version()}"
