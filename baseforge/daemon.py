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

from . import scratch
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
    clear_stale(run_dir, data_root / "data")
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


def alive(pid: int, run_dir: Path) -> bool:
    """``pid`` runs, and is a process of the engine in ``run_dir`` (its command line names it)."""
    try:
        return str(run_dir) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def clear_stale(run_dir: Path, data: Path | None = None, timeout: float = 15) -> None:
    """What a killed dockerd leaves in ``run_dir`` that stops the next one from starting: its containerd,
    orphaned (the next dockerd finds it running and waits for a socket it already closed), pid files, the
    mounts in its exec root (the default network namespace); and its bind mount of its data root ``data``
    onto itself (the next one would mount another on top)."""
    dockerd, containerd = run_dir / "dockerd.pid", run_dir / "exec/containerd/containerd.pid"
    pids = {}
    for pidfile in (dockerd, containerd):
        try:
            pids[pidfile] = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            pass
    if dockerd in pids and alive(pids[dockerd], run_dir):
        return  # a dockerd of ours runs (starting, or not answering): leave it be
    if containerd in pids and alive(pids[containerd], run_dir):
        os.kill(pids[containerd], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pids[containerd], run_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pids[containerd], run_dir):
            os.kill(pids[containerd], signal.SIGKILL)
    for pidfile in pids:
        pidfile.unlink(missing_ok=True)
    for point in scratch.mount_points(Path(os.path.realpath(run_dir / "exec"))):  # its netns/default (nsfs)
        subprocess.run(["umount", "--lazy", str(point)], capture_output=True, check=False)
    while data is not None and mounted(data):  # (a bind of the same file system: os.path.ismount cannot tell)
        if subprocess.run(["umount", "--lazy", str(data)], capture_output=True, check=False).returncode:
            break


def mounted(path: Path) -> bool:
    return Path(os.path.realpath(path)) in scratch.mount_points(Path(os.path.realpath(path)))


def stop(run_dir: Path, data_root: Path | None = None, timeout: float = 30) -> None:
    """Stop the dockerd of ``run_dir`` (SIGTERM, then SIGKILL after ``timeout``); with ``data_root``, also
    remove what it leaves (:func:`clear_stale`: its bind mount of the data root)."""
    pidfile = run_dir / "dockerd.pid"
    try:
        pid = int(pidfile.read_text().strip() or 0)
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pid = 0
    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        if pid:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
    clear_stale(run_dir, data_root / "data" if data_root else None)
