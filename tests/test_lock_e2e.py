"""End to end: lock the default matrix against the real Debian archive (every cell: debian, busybox,
distroless; and the packages of the app greeter), build a locked Debian cell, the busybox and distroless
rootfs and the app greeter, and rebuild them in a fresh clone with no network at all (a network namespace
with only loopback) and the package cache warm: the same bytes."""

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
BUSYBOX = "busybox/bookworm/default/amd64"
DISTROLESS = "distroless/bookworm"
#: the cells whose bootstrapper picks packages from the indices itself: locked and rebuilt up to the rootfs
INDEXED = tuple(f"build/rootfs/{c}/rootfs.tar" for c in (BUSYBOX, f"{DISTROLESS}/static/amd64", f"{DISTROLESS}/base/amd64"))
#: the shipped app with packages (hello on debian:bookworm): its own lock
GREETER = "build/apps/greeter.oci.tar"


def digests(work: Path) -> tuple[str, str]:
    info = json.loads((work / f"build/rootfs/{CELL}/rootfs.json").read_text())
    return info["sha256"], hashlib.sha256((work / f"build/oci/{CELL}.oci.tar").read_bytes()).hexdigest()


def others(work: Path) -> list[str]:
    return [hashlib.sha256((work / target).read_bytes()).hexdigest() for target in (*INDEXED, GREETER)]


def test_lock_the_default_matrix_and_rebuild_a_cell_offline(tmp_path, workflow):
    shipped = (ROOT / "config/config.yaml").read_text().replace("namespace: baseforge", "namespace: bflocke2e")
    work = workflow.make(tmp_path / "first", shipped)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["python3", "-m", "baseforge", "lock"], cwd=work, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "not locked" not in proc.stdout, proc.stdout  # every cell of the default matrix has a lock
    (busybox,) = lockfile.read(lockfile.path(work, BUSYBOX)).packages
    assert (busybox.name, busybox.suite) == ("busybox-static", "bookworm")
    static = lockfile.read(lockfile.path(work, f"{DISTROLESS}/static/amd64"))
    assert {p.name for p in static.packages} == {"base-files", "netbase", "tzdata", "ca-certificates"}
    assert {s.name for s in static.suites} == {"bookworm", "bookworm-security", "bookworm-updates"}
    assert [p.name for p in lockfile.read(lockfile.path(work, "apps/greeter")).packages] == ["hello"]
    # resolved again (the mirror unchanged): the same bytes, so --check says up to date (a few seconds: the
    # indices only; an app's check would bootstrap its base again)
    again = [BUSYBOX, f"{DISTROLESS}/static/amd64", f"{DISTROLESS}/base/amd64"]
    check = subprocess.run(["python3", "-m", "baseforge", "lock", "--check", *again], cwd=work, capture_output=True,
                           text=True, env=env)
    assert check.returncode == 0 and {f"{x}: up to date" for x in again} <= set(check.stdout.splitlines()), check.stdout
    lock = lockfile.read(lockfile.path(work, CELL))
    assert {p.name for p in lock.packages} >= {"base-files", "dpkg", "apt", "libc6"}
    assert [s.name for s in lock.suites] == ["bookworm", "bookworm-security", "bookworm-updates"]
    assert lockfile.path(work, "debian/bookworm/slim/amd64").read_text().replace("slim", "default") == \
        lockfile.path(work, CELL).read_text()
    workflow.run(work, f"build/oci/{CELL}.oci.tar", *INDEXED, GREETER)
    want = digests(work), others(work)
    assert json.loads((work / f"build/rootfs/{CELL}/rootfs.json").read_text())["epoch"] == lock.epoch
    # a fresh clone with the locks and the warm package cache, and no network but loopback
    offline = workflow.make(tmp_path / "offline", shipped)
    shutil.copytree(work / "config/locks", offline / "config/locks")
    shutil.copytree(work / ".baseforge/cache", offline / ".baseforge/cache")
    # every cell is locked: the plan asks no mirror for a date, and busybox and distroless need no index
    proc = subprocess.run(["unshare", "--net", "sh", "-c",
                           f'ip link set lo up && exec snakemake --cores 2 build/oci/{CELL}.oci.tar {" ".join(INDEXED)} {GREETER}'],
                          cwd=offline, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (digests(offline), others(offline)) == want
