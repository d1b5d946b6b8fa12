"""Facts about the host a job runs on: its architecture, binfmt_misc handlers for foreign ones, who runs
the job, subordinate ids and user namespaces for rootless builds, "this needs root", and where the
Docker Engine listens.

A leaf module (standard library, errors and spec only): bootstrap jobs and ``baseforge doctor`` both
ask here, and neither pulls in the other (nor the Docker SDK, nor the config schema).
"""

from __future__ import annotations

import os
import platform
import pwd
import shutil
from pathlib import Path

from .errors import BaseforgeError
from .spec import PLATFORMS

BINFMT = Path("/proc/sys/fs/binfmt_misc")


def host_arch() -> str:
    machine = platform.machine()
    return next((p.debian for p in PLATFORMS.values() if p.uname == machine), machine)


def user() -> str:
    """The name of the user this process runs as."""
    return pwd.getpwuid(os.geteuid()).pw_name


def binfmt_problem(arch: str) -> str | None:
    """Why binaries of ``arch`` cannot run here, or None if they can (natively or through qemu-user)."""
    if arch == host_arch() or (host_arch() == "amd64" and arch == "i386"):
        return None
    qemu = PLATFORMS[arch].qemu
    entry = BINFMT / f"qemu-{qemu}"
    if not entry.exists() or not entry.read_text().startswith("enabled"):
        return (f"no binfmt_misc handler for {arch} (qemu-{qemu}): install qemu-user-static and binfmt-support, then "
                f"`mount -t binfmt_misc binfmt_misc {BINFMT}` (if not mounted) and `update-binfmts --enable qemu-{qemu}`")
    return None


def require_binfmt(arch: str) -> None:
    problem = binfmt_problem(arch)
    if problem:
        raise BaseforgeError(f"cannot bootstrap {arch} on this {host_arch()} host", hint=problem)


def require_root(what: str, job: str, hint: str | None = None) -> None:
    """Refuse, before any tool runs, a step that only works as root (``what`` names the tool)."""
    if os.geteuid() != 0:
        raise BaseforgeError(f"{what} needs root, and {job} is being built as uid {os.geteuid()}",
                             hint=hint or "run the bootstrap rule as root")


def subid_problem(name: str) -> str | None:
    """Rootless mmdebstrap (--mode=unshare) needs subordinate uid and gid ranges for user ``name``."""
    for path in (Path("/etc/subuid"), Path("/etc/subgid")):
        lines = path.read_text().splitlines() if path.exists() else []
        if not any(line.split(":")[0] == name and int(line.split(":")[2]) >= 65536 for line in lines if line.count(":") == 2):
            return f"{path} has no range of 65536 ids for {name}: run `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}`"
    return None


def userns_problem() -> str | None:
    """Why this unprivileged user cannot map its subordinate ids into a user namespace, or None."""
    clone = Path("/proc/sys/kernel/unprivileged_userns_clone")  # Debian kernels before 6.x
    if clone.exists() and clone.read_text().strip() != "1":
        return "unprivileged user namespaces are off: `sysctl -w kernel.unprivileged_userns_clone=1` (as root)"
    limit = Path("/proc/sys/user/max_user_namespaces")
    if limit.exists() and limit.read_text().strip() == "0":
        return "user namespaces are off: `sysctl -w user.max_user_namespaces=15000` (as root)"
    for helper in ("newuidmap", "newgidmap"):
        path = shutil.which(helper)
        if path is None:
            return f"{helper} not found: install the uidmap package"
        if not os.stat(path).st_mode & 0o4000:
            return f"{path} is not setuid root: `chmod u+s {path}` (or reinstall uidmap)"
    return None


#: where `baseforge engine start` puts the socket of a private engine; tried when DOCKER_HOST is unset
PRIVATE_SOCKET = Path("/run/baseforge/docker.sock")


def docker_host() -> str:
    """DOCKER_HOST, else the standard socket, else a private engine's socket if one is running."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    if not Path("/var/run/docker.sock").exists() and PRIVATE_SOCKET.exists():
        return f"unix://{PRIVATE_SOCKET}"
    return "unix:///var/run/docker.sock"
