"""End to end: lock the default matrix against the real Debian archive, build a locked cell, and rebuild it
in a fresh clone with no network at all (a network namespace with only loopback) and the package cache
warm: the same bytes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from baseforge import lockfile

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
CELL = "debian/bookworm/default/amd64"


def digests(work: Path) -> tuple[str, str]:
    info = json.loads((work / f"build/rootfs/{CELL}/rootfs.json").read_text())
    return info["sha256"], hashlib.sha256((work / f"build/oci/{CELL}.oci.tar").read_bytes()).hexdigest()


def test_lock_the_default_matrix_and_rebuild_a_cell_offline(tmp_path, workflow):
    shipped = (ROOT / "config/config.yaml").read_text().replace("namespace: baseforge", "namespace: bflocke2e")
    work = workflow.make(tmp_path / "first", shipped)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["python3", "-m", "baseforge", "lock"], cwd=work, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "busybox/bookworm/default/amd64: not locked (busybox cells cannot be locked yet)" in proc.stdout
    lock = lockfile.read(lockfile.path(work, CELL))
    assert {p.name for p in lock.packages} >= {"base-files", "dpkg", "apt", "libc6"}
    assert [s.name for s in lock.suites] == ["bookworm", "bookworm-security", "bookworm-updates"]
    assert lockfile.path(work, "debian/bookworm/slim/amd64").read_text().replace("slim", "default") == \
        lockfile.path(work, CELL).read_text()
    workflow.run(work, f"build/oci/{CELL}.oci.tar")
    want = digests(work)
    assert json.loads((work / f"build/rootfs/{CELL}/rootfs.json").read_text())["epoch"] == lock.epoch
    # a fresh clone with the locks and the warm package cache, and no network but loopback
    offline = workflow.make(tmp_path / "offline", shipped)
    shutil.copytree(work / "config/locks", offline / "config/locks")
    shutil.copytree(work / ".baseforge/cache", offline / ".baseforge/cache")
    # the unlocked busybox cell still takes its epoch from the Release date: the last one known
    shutil.copy(work / ".baseforge/epochs.json", offline / ".baseforge/epochs.json")
    proc = subprocess.run(["unshare", "--net", "sh", "-c", f'ip link set lo up && exec snakemake --cores 2 build/oci/{CELL}.oci.tar'],
                          cwd=offline, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert digests(offline) == want
