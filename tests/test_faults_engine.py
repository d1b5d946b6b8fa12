"""The Docker Engine as a fault: a real private dockerd SIGKILLed while a load is in progress, no engine at
all, and a socket this user may not use. Each is named on the console; after the first, the README's
command (with the engine started again) finishes the build.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from baseforge import daemon
from test_faults import assert_named, config, leftovers, make

LOAD = "build/engine/busybox/bookworm/default/amd64.json"
CELL_IMAGE = "busybox/bookworm/default/amd64"


class HoldingProxy:
    """A unix socket in front of a real engine's that passes everything through, except that it holds a
    ``POST …/images/load`` once its first bytes went through (``loading`` is then set: the engine is in the
    middle of the load) until ``release`` is set."""

    def __init__(self, path: Path, upstream: Path) -> None:
        self.upstream, self.loading, self.release = str(upstream), threading.Event(), threading.Event()
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX)
            up.connect(self.upstream)
            threading.Thread(target=self.pump, args=(up, conn, False), daemon=True).start()
            threading.Thread(target=self.pump, args=(conn, up, True), daemon=True).start()

    def pump(self, src: socket.socket, dst: socket.socket, watch: bool) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                if watch and b"/images/load" in data.split(b"\r\n", 1)[0]:
                    self.loading.set()
                    self.release.wait(120)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def private_engine(tmp_path):
    """(url, run_dir, data_root) of a private dockerd of this test only, stopped afterwards."""
    run_dir = Path(tempfile.mkdtemp(prefix="bf-k-", dir="/tmp"))  # unix socket paths are short
    data = tmp_path / "engine"
    yield daemon.start(data, run_dir), run_dir, data
    daemon.stop(run_dir, data)  # (and the bind of its data root that dockerd leaves)
    assert not daemon.mounted(data / "data")
    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.mark.e2e
@pytest.mark.root
def test_a_real_engine_killed_during_the_load_is_named_and_the_rerun_succeeds(tmp_path, workflow, private_engine):
    url, run_dir, data = private_engine
    work = make(workflow, tmp_path / "w", config(epoch="1700000000"))
    proxy = HoldingProxy(run_dir / "proxy.sock", run_dir / "docker.sock")
    pid = int((run_dir / "dockerd.pid").read_text())

    def kill_mid_load() -> None:
        if proxy.loading.wait(300):
            os.kill(pid, signal.SIGKILL)
        proxy.release.set()

    killer = threading.Thread(target=kill_mid_load)
    killer.start()
    try:
        proc = workflow.run(work, LOAD, check=False, env={"DOCKER_HOST": f"unix://{run_dir}/proxy.sock"})
    finally:
        proxy.loading.set()
        killer.join()
        proxy.close()
    assert proxy.release.is_set()
    assert_named(proc, f"load {CELL_IMAGE} failed: the Docker Engine at unix://",
                 "stopped answering", "hint: check that dockerd runs")
    assert not (work / LOAD).exists() and not leftovers(work)
    url = daemon.start(data, run_dir)  # the engine comes back; the README's command finishes the build
    workflow.run(work, env={"DOCKER_HOST": url})
    built = json.loads((work / "results/images.json").read_text())[0]["image_id"]
    assert built == json.loads((work / "build/oci/busybox/bookworm/default/amd64.json").read_text())["image_id"]


@pytest.mark.e2e
def test_no_engine_at_all_is_named(tmp_path, workflow):
    work = make(workflow, tmp_path / "w", config(epoch="1700000000"))
    sock = Path(tempfile.mkdtemp(prefix="bf-n-", dir="/tmp")) / "docker.sock"
    try:
        proc = workflow.run(work, LOAD, check=False, env={"DOCKER_HOST": f"unix://{sock}"})
    finally:
        shutil.rmtree(sock.parent)
    assert_named(proc, f"failed: no Docker Engine answers at unix://{sock}: no socket there (no engine runs)",
                 "hint: start one with `tools/engine start`")


@pytest.mark.root
def test_a_socket_this_user_may_not_use_is_named(tmp_path):
    # root passes every file permission check: drop that capability, as an ordinary user has none
    where = Path(tempfile.mkdtemp(prefix="bf-p-", dir="/tmp"))
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(where / "docker.sock"))
    server.listen()
    (where / "docker.sock").chmod(0)
    caps = "-dac_override,-dac_read_search"
    try:
        proc = subprocess.run(["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "python3", "-c",
                               "from baseforge import engine; engine.connect(5)"], capture_output=True, text=True,
                              env={**os.environ, "DOCKER_HOST": f"unix://{where}/docker.sock",
                                   "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    finally:
        server.close()
        shutil.rmtree(where)
    assert proc.returncode != 0
    assert (f"no Docker Engine answers at unix://{where}/docker.sock: permission denied on its socket\n"
            "  hint: whoever may use a Docker socket is root on the host") in proc.stderr, proc.stderr[-2000:]


def test_containers_of_killed_jobs_are_removed_by_the_next_run_live_ones_kept(engine):
    import io
    import tarfile

    import docker

    from baseforge import engine as bfengine
    from baseforge import scratch

    client = docker.DockerClient(base_url=engine, version="auto")
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tf:
        tf.addfile(tarfile.TarInfo("empty"), io.BytesIO(b""))
    image = client.api.import_image_from_data(data.getvalue(), repository="bf-faults-stale", tag="x")
    image = json.loads(image.strip().splitlines()[-1])["status"]
    dead = subprocess.Popen(["true"])
    dead.wait()
    killed = client.containers.create(image, command=["x"], labels={
        bfengine.OWNER_LABEL: json.dumps({**scratch.owner(), "pid": dead.pid, "start": 1})})
    live = bfengine.create(client, image, command=["x"])
    try:
        assert bfengine.remove_stale_containers() == ["removed 1 container a killed job left in the engine"]
        ids = {c.id for c in client.containers.list(all=True)}
        assert killed.id not in ids and live.id in ids
    finally:
        live.remove(force=True)
        client.images.remove(image, force=True)
