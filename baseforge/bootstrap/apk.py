"""apk: Alpine's package manager, statically linked (apk.static), from a path or a URL on your mirror.

``options: {apk: /usr/local/sbin/apk.static}`` or ``{apk: http://<alpine mirror>/…/apk.static,
apk_sha256: …}``; the image's ``keyrings:`` are the repository's public keys (``*.rsa.pub``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

from ..download import fetch_verified
from ..errors import BaseforgeError
from ..host import require_root
from ..run import run
from ..secret import strip_sources, write_private
from ..spec import CellSpec
from . import Bootstrapper, tar_tree

#: Debian architecture -> apk --arch
ARCH = {"amd64": "x86_64", "arm64": "aarch64", "armhf": "armv7", "armel": "armhf", "i386": "x86",
        "ppc64el": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def fetch_apk(cell: CellSpec, workdir: Path) -> Path:
    """The apk binary: a local path as is, or a download checked against ``apk_sha256``."""
    where = cell.options.get("apk")
    if not where:
        raise BaseforgeError(f"{cell.id}: no static apk configured",
                             hint="set options: {apk: <path or URL of apk.static>} (Debian packages none)")
    if urlparse(where).scheme not in ("http", "https", "file"):
        if not Path(where).is_file():
            raise BaseforgeError(f"{cell.id}: options.apk {where} does not exist")
        return Path(where).resolve()
    want = cell.options.get("apk_sha256")
    if not want:
        raise BaseforgeError(f"{cell.id}: options.apk is a URL without apk_sha256",
                             hint="add apk_sha256: <sha256sum of apk.static>, so a changed binary is noticed")
    target = fetch_verified(where, workdir / "apk.static", want, hint="fix options.apk_sha256 or the mirror")
    target.chmod(0o755)
    return target


def copy_key(key: str, dest: Path, cell_id: str) -> None:
    """One of ``keyrings:`` into the keys folder: it must be a PEM public key (apk copies it into the image,
    where any other file of the build host, a private key say, must never go)."""
    with open(key, "rb") as f:
        head = f.read(64)
    if not head.startswith(b"-----BEGIN PUBLIC KEY-----"):
        raise BaseforgeError(f"{cell_id}: keyrings entry {key} is not a PEM public key, and apk's keys are copied "
                             "into the image",
                             hint="list the repository's *.rsa.pub files (package alpine-keys, or the mirror)")
    shutil.copyfile(key, dest / Path(key).name)


class Apk(Bootstrapper, name="apk"):
    def argv(self, cell: CellSpec, apk: Path, root: Path, keys: Path, repositories: Path) -> list[str]:
        """The apk command line for ``cell`` (a pure function, so tests can check it); the repositories (with any
        credentials) are in the job's private ``repositories`` file, not on the command line."""
        argv = [str(apk), "--root", str(root), "--initdb", "--keys-dir", str(keys), "--arch", ARCH[cell.arch],
                "--repositories-file", str(repositories), "--update-cache", "--no-progress"]
        if cell.insecure:  # config insecure: true, and only then
            argv.append("--allow-untrusted")
        return argv + ["add", "--", *cell.packages]

    def bootstrap(self, cell: CellSpec, out_tar: Path, workdir: Path) -> None:
        workdir = workdir.resolve()  # the tool wants absolute paths; Snakemake hands relative ones
        require_root("apk --root", cell.id)
        if not cell.keyrings and not cell.insecure:
            raise BaseforgeError(f"{cell.id}: apk checks index signatures and this image lists no keys",
                                 hint="add keyrings: [<alpine-devel@…rsa.pub files>] to the image")
        apk = fetch_apk(cell, workdir)
        keys = workdir / "keys"
        keys.mkdir()
        for k in cell.keyrings:
            copy_key(k, keys, cell.id)
        root = workdir / "rootfs"
        (root / "etc/apk/keys").mkdir(parents=True)
        for k in keys.iterdir():  # apk in the image checks the same keys; 0644 whatever the host file's mode
            shutil.copyfile(k, root / "etc/apk/keys" / k.name)
            (root / "etc/apk/keys" / k.name).chmod(0o644)
        repositories = write_private(workdir / "repositories", "".join(f"{s.url}\n" for s in cell.sources))
        run(self.argv(cell, apk, root, keys, repositories), env={"SOURCE_DATE_EPOCH": str(cell.epoch)})
        (root / "etc/apk/repositories").write_text("".join(f"{s.url}\n" for s in strip_sources(cell.sources)))
        tar_tree(root, out_tar)

    def version(self) -> str:
        return "unknown"
