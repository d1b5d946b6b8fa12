"""A private Docker Engine (Debian's dockerd) with its own data-root, exec-root and unix socket.

Used by `tools/engine`, by `tools/run` when no engine answers, and by the tests. It leaves the
host's networking alone (no bridge, no iptables); builds use the host network, containers none.

Its socket is ``root:root 0660``: whoever can reach a Docker socket is root on the host, so no group is
let in unless one is configured (``group=`` or ``BASEFORGE_ENGINE_GROUP``, e.g. for a cluster user).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker

from .errors import BaseforgeError


def answers(url: str) -> bool:
    try:
        docker.DockerClient(base_url=url, version="auto", timeout=5).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not answering"
        return False


def start(data_root: Path, run_dir: Path, timeout: float = 60, group: str | None = None) -> str:
    """Start dockerd keeping all state in ``data_root`` and sockets in ``run_dir`` (keep it short:
    unix socket paths have a 108 byte limit). Returns the DOCKER_HOST URL. Idempotent.

    ``group`` (default ``$BASEFORGE_ENGINE_GROUP``, else root: nobody but root) owns the socket."""
    group = group or os.environ.get("BASEFORGE_ENGINE_GROUP") or "root"
    if shutil.which("dockerd") is None:
        raise BaseforgeError("dockerd not found", hint="install Debian's docker.io package (tools/install-deps does)")
    run_dir.mkdir(parents=True, exist_ok=True)
    data_root.mkdir(parents=True, exist_ok=True)
    url = f"unix://{run_dir / 'docker.sock'}"
    if answers(url):
        return url
    log = open(data_root / "dockerd.log", "ab")
    subprocess.Popen(
        ["dockerd", f"--data-root={data_root / 'data'}", f"--exec-root={run_dir / 'exec'}", f"--host={url}",
         f"--pidfile={run_dir / 'dockerd.pid'}", f"--group={group}", "--bridge=none", "--iptables=false", "--ip-masq=false",
         "--containerd-namespace=baseforge", "--containerd-plugins-namespace=baseforge-plugins"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(url):
            return url
        time.sleep(0.3)
    tail = (data_root / "dockerd.log").read_text(errors="replace").splitlines()[-10:]
    raise BaseforgeError("the private dockerd did not answer within %ds:\n    %s" % (timeout, "\n    ".join(tail)))


def stop(run_dir: Path, timeout: float = 30) -> None:
    pidfile = run_dir / "dockerd.pid"
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text().strip() or 0)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
