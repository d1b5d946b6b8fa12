"""Preflight: can this host (or cluster node) build the configured matrix? One line per check.

The host facts themselves are probed by :mod:`.host`; this module adds the engine, tools and folders.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import bootstrap, config, daemon, engine
from .host import binfmt_problem, host_arch, subid_problem, user, userns_problem


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not applicable
    detail: str


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
    if os.geteuid() == 0:
        out.append(Check("rootless (subuid/subgid)", None, "running as root: mmdebstrap --mode=root"))
    else:
        problem = subid_problem(user()) or userns_problem()
        out.append(Check("rootless (subuid/subgid)", problem is None, problem or f"{user()}: mmdebstrap --mode=unshare"))
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
        print(f"node {platform.node()}, user {user()}")
    width = max(len(c.name) for c in results)
    for c in results:
        status = {True: "ok", False: "FAIL", None: "-"}[c.ok]
        print(f"{c.name:<{width}}  {status:<4}  {c.detail}")
    return 1 if any(c.ok is False for c in results) else 0
