"""baseforge.scratch: what a killed job leaves is removed safely, and only that (real mounts, real processes)."""

from __future__ import annotations

import json
import shlex
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from baseforge import scratch

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")


def started(proc: subprocess.Popen, needle: str) -> subprocess.Popen:
    """``proc`` once it runs its program (between fork and exec, it still looks like this test)."""
    while needle not in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace"):
        threading.Event().wait(0.01)
    return proc


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def tree(parent: Path, name: str, pid: int, start: int | None, host: str | None = None) -> Path:
    path = parent / name
    (path / "sub").mkdir(parents=True)
    (path / "sub/file").write_text("x")
    (path / scratch.MARKER).write_text(json.dumps({"pid": pid, "start": start, "host": host or socket.gethostname()}))
    return path


def test_a_dead_owners_tree_goes_a_live_owners_stays(tmp_path):
    live = started(subprocess.Popen(["sleep", "60"]), "sleep")
    try:
        dead = tree(tmp_path, "baseforge-dead", dead_pid(), 1)
        alive = tree(tmp_path, "baseforge-alive", live.pid, scratch.start_time(live.pid))
        # a pid that was reused by another process: the start time tells them apart
        reused = tree(tmp_path, "baseforge-reused", live.pid, scratch.start_time(live.pid) - 1)
        elsewhere = tree(tmp_path, "baseforge-other-host", dead_pid(), 1, host="another-host")
        unmarked = tmp_path / "baseforge-unmarked"
        unmarked.mkdir()
        (tmp_path / "build").mkdir()
        notes = scratch.recover(tmp_path, roots=[tmp_path])
        assert not dead.exists() and not reused.exists()
        assert alive.exists() and elsewhere.exists() and unmarked.exists()
        assert any("removed 2 scratch trees" in n for n in notes), notes
    finally:
        live.kill()
        live.wait()


def test_a_killed_owner_not_yet_reaped_is_dead(tmp_path):
    zombie = started(subprocess.Popen(["sleep", "60"]), "sleep")
    start = scratch.start_time(zombie.pid)
    dead = tree(tmp_path, "baseforge-zombie", zombie.pid, start)
    assert scratch.owner_alive(dead / scratch.MARKER)
    zombie.kill()
    while Path(f"/proc/{zombie.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        threading.Event().wait(0.01)
    try:
        assert not scratch.owner_alive(dead / scratch.MARKER)
    finally:
        zombie.wait()


def test_build_scratch_and_temporary_files_go_only_when_no_snakemake_works_here(tmp_path):
    raw = tmp_path / "build/raw/debian/bookworm/amd64"
    raw.mkdir(parents=True)
    legacy = raw / ".bootstrap-abc"
    legacy.mkdir()
    partial = raw / ".minbase.tar.x1y2.tmp"
    partial.write_text("half")
    result = raw / "minbase.tar"
    result.write_text("whole")
    (tmp_path / "results").mkdir()
    summary_tmp = tmp_path / "results/.images.tsv.abc.tmp"
    summary_tmp.write_text("half")
    # a job script of a run that still goes on (what Snakemake runs: python .snakemake/scripts/tmp….py)
    job = started(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", ".snakemake/scripts/tmp1.bootstrap.py"],
                                   cwd=tmp_path), ".snakemake/scripts")
    try:
        scratch.recover(tmp_path, roots=[])
        assert legacy.exists() and partial.exists() and summary_tmp.exists()
    finally:
        job.kill()
        job.wait()
    scratch.recover(tmp_path, roots=[])
    assert not legacy.exists() and not partial.exists() and not summary_tmp.exists()
    assert result.read_text() == "whole"


def test_a_stale_snakemake_lock_is_removed_a_live_ones_kept(tmp_path):
    locks = tmp_path / ".snakemake/locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("build/x\n")
    program = tmp_path / "bin/snakemake"  # as `snakemake` runs: python3 /usr/local/bin/snakemake --cores 4
    program.parent.mkdir()
    program.write_text("import time\ntime.sleep(60)\n")
    (tmp_path / "notes.txt").write_text(".snakemake/log")
    reader = started(subprocess.Popen(["tail", "-f", "notes.txt", ".snakemake/locks/0.output.lock"], cwd=tmp_path),
                     "notes.txt")  # not one
    run = started(subprocess.Popen([sys.executable, str(program), "--cores", "4"], cwd=tmp_path), str(program))
    try:
        notes = scratch.recover(tmp_path, roots=[])
        assert (locks / "0.output.lock").exists()
        assert any(f"pid {run.pid}" in n and "wait for it" in n for n in notes), notes
    finally:
        run.kill()
        run.wait()
    try:
        notes = scratch.recover(tmp_path, roots=[])
    finally:
        reader.kill()
        reader.wait()
    assert not locks.exists() and any("removed Snakemake's lock" in n for n in notes), notes


@root_only
def test_a_mount_under_a_dead_tree_is_unmounted_first_and_what_it_shows_survives(tmp_path):
    shared = tmp_path / "host-dev-shm"
    shared.mkdir()
    (shared / "other-builds-file").write_text("keep me")
    dead = tree(tmp_path / "scratch", "baseforge-dead", dead_pid(), 1)
    target = dead / "rootfs/dev/shm"
    target.mkdir(parents=True)
    proc_target = dead / "rootfs/proc"
    proc_target.mkdir()
    subprocess.run(["mount", "--bind", shared, target], check=True)
    subprocess.run(["mount", "-t", "proc", "proc", proc_target], check=True)
    try:
        scratch.recover(tmp_path, roots=[tmp_path / "scratch"])
        assert not dead.exists()
        assert (shared / "other-builds-file").read_text() == "keep me"
        assert str(dead) not in Path("/proc/self/mounts").read_text()
    finally:
        for point in (target, proc_target):
            subprocess.run(["umount", "--lazy", point], capture_output=True)


@root_only
def test_a_tree_whose_mount_stays_is_left_and_nothing_across_the_boundary_is_deleted(tmp_path, monkeypatch):
    shared = tmp_path / "other-fs"
    shared.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", shared], check=True)
    try:
        (shared / "precious").write_text("keep me")
        dead = tree(tmp_path, "baseforge-dead", dead_pid(), 1)
        target = dead / "rootfs/mnt"
        target.mkdir(parents=True)
        subprocess.run(["mount", "--bind", shared, target], check=True)
        real_run = subprocess.run

        def umount_fails(argv, **kw):  # a mount that cannot be taken away (busy, or another namespace's)
            return subprocess.CompletedProcess(argv, 32) if argv[0] == "umount" else real_run(argv, **kw)

        monkeypatch.setattr(scratch.subprocess, "run", umount_fails)
        why = scratch.remove_tree(dead)
        assert why and "still mounted" in why
        assert (shared / "precious").read_text() == "keep me" and (dead / "sub/file").exists()
        monkeypatch.undo()
        assert scratch.remove_tree(dead) is None and not dead.exists()
        assert (shared / "precious").read_text() == "keep me"
    finally:
        subprocess.run(["umount", "--lazy", "--recursive", shared], capture_output=True)


def test_owned_dir_carries_a_marker_and_is_removed_after_the_block(tmp_path):
    with scratch.owned_dir(tmp_path, "baseforge-") as path:
        marker = json.loads((path / scratch.MARKER).read_text())
        assert marker["pid"] == os.getpid() and scratch.owner_alive(path / scratch.MARKER)
        assert (path.stat().st_mode & 0o777) == 0o755
    assert not path.exists()


@root_only
def test_what_a_bootstrap_command_mounts_goes_with_it_even_when_it_is_killed(tmp_path):
    from baseforge.faults import ToolError
    from baseforge.run import prefixed, run

    target = tmp_path / "tree/proc"
    target.mkdir(parents=True)
    # mounts proc in the tree (as mmdebstrap does in root mode), shows it is there, then dies by SIGKILL
    # (in a shell of its own: the first process of a PID namespace cannot SIGKILL itself)
    script = f"mount -t proc proc {target} && grep -c ' {target} ' /proc/self/mounts > {tmp_path}/seen && kill -KILL $$"
    with prefixed(scratch.isolation(), own_group=True), pytest.raises(ToolError) as exc:
        run(["sh", "-c", f"sh -c {shlex.quote(script)}"], capture=True)
    assert exc.value.returncode in (-9, 128 + 9) and (tmp_path / "seen").read_text() == "1\n"
    assert str(target) not in Path("/proc/self/mounts").read_text()
    assert not any(target.iterdir())  # nothing mounted there for us, and nothing left to unmount


def test_any_work_directory_a_dead_job_left_under_build_goes_while_other_snakemakes_run(tmp_path):
    # the app, packages, buildah and OCI blob directories carry a marker, like a bootstrap's: a dead owner's
    # go even while a live Snakemake works here (build not idle); a live owner's, and what is nested, stay
    live = started(subprocess.Popen(["sleep", "60"]), "sleep")
    try:
        build = tmp_path / "build"
        dead = [tree(build / "apps", ".app-x1", dead_pid(), 1), tree(build / "apps", ".buildah-x2", dead_pid(), 1),
                tree(build / "oci/d", ".amd64.oci.tar.blobs.x3", dead_pid(), 1)]
        packages = tree(build / "apps", ".pkgs-x4", dead_pid(), 1)
        nested = tree(packages, "install-x5", dead_pid(), 1)  # removed with its parent, counted once
        alive = tree(build / "apps", ".app-x6", live.pid, scratch.start_time(live.pid))
        stale = scratch.stale_scratch([], build, build_idle=False)
        assert sorted(stale) == sorted([*dead, packages]) and nested not in stale
        scratch.recover(tmp_path, roots=[])
        assert not any(p.exists() for p in [*dead, packages]) and alive.exists()
    finally:
        live.kill()
        live.wait()


def test_an_apps_sandbox_scratch_is_marked(monkeypatch, tmp_path):
    from baseforge import sandbox

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with sandbox.scratch() as box:
        assert box.parent == tmp_path and box.name.startswith("baseforge-app-")
        assert json.loads((box / scratch.MARKER).read_text())["pid"] == os.getpid()
        assert (box.stat().st_mode & 0o777) == 0o700
    assert not box.exists()


@root_only
def test_another_users_private_scratch_is_left_alone_without_failing():
    # a 0700 tree of root's (an app build's sandbox scratch) in the shared /tmp, seen by an ordinary user
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="bf-shared-", dir="/tmp"))  # (pytest's tmp_path is root's only)
    try:
        base.chmod(0o755)
        private = tree(base, "baseforge-app-private", dead_pid(), 1)
        private.chmod(0o700)
        (base / "work/build").mkdir(parents=True)
        code = (f"from pathlib import Path; from baseforge import scratch; "
                f"print(scratch.recover(Path({str(base / 'work')!r}), roots=[Path({str(base)!r})]))")
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
                              capture_output=True, text=True, cwd="/",
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
        assert proc.returncode == 0 and proc.stdout == "[]\n", proc.stderr[-2000:]
        assert private.exists()
    finally:
        shutil.rmtree(base)
