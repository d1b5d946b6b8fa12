"""Shared fixtures: a real Docker Engine and a real registry, started by the tests when none is given."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW_FILES = ("Snakefile", "rules", "scripts", "config/schema.yaml", "apps")


def pytest_collection_modifyitems(items):
    """Mark what a test needs from the fixtures it uses, so `-m "not engine"` selects without a list."""
    for item in items:
        if "engine" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.engine)


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """DOCKER_HOST of an engine that answers: the given one, or a private dockerd stopped afterwards."""
    from baseforge import daemon

    given = os.environ.get("DOCKER_HOST")
    if given and daemon.answers(given):
        yield given
        return
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.fail("no Docker Engine answers and a private dockerd cannot be started (needs root and docker.io)")
    run_dir = Path(tempfile.mkdtemp(prefix="bf-", dir="/tmp"))  # short: unix socket paths are limited
    data = tmp_path_factory.mktemp("engine")
    url = daemon.start(data, run_dir)  # root only, like the project's own engine
    os.environ["DOCKER_HOST"] = url
    yield url
    daemon.stop(run_dir, data)
    os.environ.pop("DOCKER_HOST", None)
    shutil.rmtree(run_dir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A real registry (Debian's docker-registry) on 127.0.0.1; yields host:port."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed (tools/install-deps installs it)")
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\n"
        "http: {addr: '127.0.0.1:%d'}\n" % (root / "data", port)
    )
    with open(root / "registry.log", "wb") as log:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("docker-registry did not start: " + (root / "registry.log").read_text()[-500:])
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def make_workdir(path: Path, config_text: str) -> Path:
    """A fresh copy of the workflow (as a user's clone would have it) with ``config_text`` as its config."""
    for name in WORKFLOW_FILES:
        src = ROOT / name
        dest = path / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest)
    (path / "config/config.yaml").write_text(config_text)
    namespace = re.search(r"^namespace: *(\S+)", config_text, re.MULTILINE)
    dockerfile = path / "apps/greeter/Dockerfile"
    if namespace and dockerfile.exists():  # the example app builds FROM this config's Debian image
        dockerfile.write_text(dockerfile.read_text().replace("baseforge/debian", f"{namespace.group(1)}/debian"))
    return path


def snakemake(workdir: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real `snakemake` command, as a user runs it."""
    proc = subprocess.run(["snakemake", "--cores", "2", *args], cwd=workdir, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def shipped_app(name: str) -> str:
    """The YAML of app ``name`` as config/config.yaml ships it, indented to sit under ``apps:``."""
    import textwrap

    import yaml

    app = yaml.safe_load((ROOT / "config/config.yaml").read_text())["apps"][name]
    return textwrap.indent(yaml.safe_dump({name: app}, sort_keys=False), "  ")


@pytest.fixture(scope="session")
def workflow():
    """Helpers for tests that run the workflow: make_workdir(path, config), snakemake(workdir, *args),
    shipped_app(name)."""
    return type("Workflow", (), {"make": staticmethod(make_workdir), "run": staticmethod(snakemake),
                                 "shipped_app": staticmethod(shipped_app)})
