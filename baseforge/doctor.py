"""Preflight: can this host (or cluster node) build the configured matrix? One line per check."""

from __future__ import annotations

import os
import platform
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import bootstrap, config, daemon, engine
from .errors import BaseforgeError
from .spec import PLATFORMS

BINFMT = Path("/proc/sys/fs/binfmt_misc")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not applicable
    detail: str


def host_arch() -> str:
    machine = platform.machine()
    return next((p.debian for p in PLATFORMS.values() if p.uname == machine), machine)


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


def subid_problem(user: str) -> str | None:
    """Rootless mmdebstrap (--mode=unshare) needs subordinate uid and gid ranges for ``user``."""
    for path in (Path("/etc/subuid"), Path("/etc/subgid")):
        lines = path.read_text().splitlines() if path.exists() else []
        if not any(line.split(":")[0] == user and int(line.split(":")[2]) >= 65536 for line in lines if line.count(":") == 2):
            return f"{path} has no range of 65536 ids for {user}: run `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`"
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


def writable(path: Path) -> str | None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".doctor-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
        return None
    except OSError as err:
        return f"{path} is not writable: {err.strerror}"


def checks(plan: config.Plan, cfg: dict, on_node: bool = False) -> list[Check]:
    """``on_node``: run on a cluster node (`srun python3 -m baseforge doctor --on-node`), where the engine is
    not needed unless ``engine.on_nodes`` is set, but the shared work and cache folders are."""
    out = []
    url = engine.host()
    if on_node and not (cfg.get("engine") or {}).get("on_nodes"):
        out.append(Check("engine", None, "not needed on a cluster node (engine rules run on the submit host)"))
    else:
        out.append(Check("engine", daemon.answers(url), f"{url}" if daemon.answers(url) else
                         f"no Docker Engine answers at {url}: `tools/engine start`, or export DOCKER_HOST=…"))
    for arch in sorted({img.cell.arch for img in plan.images.values()}):
        problem = binfmt_problem(arch)
        out.append(Check(f"binfmt {arch}", problem is None, problem or ("native" if arch == host_arch() else "qemu-user")))
    user = pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        out.append(Check("rootless (subuid/subgid)", None, "running as root: mmdebstrap --mode=root"))
    else:
        problem = subid_problem(user) or userns_problem()
        out.append(Check("rootless (subuid/subgid)", problem is None, problem or f"{user}: mmdebstrap --mode=unshare"))
    for name in sorted({img.cell.bootstrapper for img in plan.images.values()}):
        missing = [b for b in bootstrap.get(name).binaries if shutil.which(b) is None]
        out.append(Check(f"bootstrapper {name}", not missing, f"missing: {', '.join(missing)}" if missing else "found"))
    scratch = bootstrap.scratch_dir()
    problem = writable(Path(scratch)) if scratch else None
    out.append(Check("bootstrap scratch", problem is None if scratch else None, problem or (
        f"{scratch} (mmdebstrap's tree)" if scratch else
        "the system's temporary directory (no tmpfs with 2 GiB free at /dev/shm; BASEFORGE_TMPDIR sets one)")))
    if plan.registry:
        out.append(Check("skopeo", shutil.which("skopeo") is not None, "needed to push to the registry"))
    caches = [Path(c) for c in {img.cell.package_cache for img in plan.images.values()} if c]
    if os.environ.get("SNAKEMAKE_OUTPUT_CACHE"):
        caches.append(Path(os.environ["SNAKEMAKE_OUTPUT_CACHE"]))
    if on_node:
        caches.append(Path.cwd() / "build")  # the shared file system the jobs write their outputs to
    for path in caches:
        problem = writable(path)
        out.append(Check(f"cache {path}", problem is None, problem or "writable"))
    return out


def doctor(config_path: Path, workdir: Path, on_node: bool = False) -> int:
    cfg = config.load(config_path)
    results = checks(config.plan(cfg, workdir), cfg, on_node)
    if on_node:
        print(f"node {platform.node()}, user {pwd.getpwuid(os.geteuid()).pw_name}")
    width = max(len(c.name) for c in results)
    for c in results:
        status = {True: "ok", False: "FAIL", None: "-"}[c.ok]
        print(f"{c.name:<{width}}  {status:<4}  {c.detail}")
    return 1 if any(c.ok is False for c in results) else 0
