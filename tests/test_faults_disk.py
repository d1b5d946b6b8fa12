"""File system faults beyond a full disk: a read-only build directory (refused before any job, naming it)
and a file system out of inodes (the paragraph says so: bytes are free, inodes are not)."""

from __future__ import annotations

import subprocess

import pytest

from baseforge import faults
from test_faults import RAW, assert_named, config, leftovers, make, root_only, tmpfs  # noqa: F401 - tmpfs: a fixture

ROOTFS = "build/rootfs/busybox/bookworm/default/amd64/rootfs.tar"


@pytest.mark.e2e
@root_only
def test_a_read_only_build_directory_is_refused_before_any_job(tmp_path, workflow, tmpfs):
    work = make(workflow, tmp_path / "w", config(epoch="1700000000"))
    workflow.run(work, RAW)
    rootfs = tmpfs("64k", work / "build/rootfs")
    subprocess.run(["mount", "-o", "remount,ro", rootfs], check=True)
    proc = workflow.run(work, ROOTFS, check=False)
    assert proc.returncode == 1
    assert (f"baseforge: the run cannot write its outputs:\n    {rootfs}: read-only file system\n"
            "  hint: remount it read-write") in proc.stderr, proc.stderr[-2000:]
    assert "Select jobs to execute" not in proc.stdout + proc.stderr


@pytest.mark.e2e
@root_only
def test_a_file_system_out_of_inodes_says_so(tmp_path, workflow):
    work = make(workflow, tmp_path / "w", config(epoch="1700000000"))
    workflow.run(work, RAW)
    rootfs = work / "build/rootfs"
    rootfs.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,nr_inodes=6", "tmpfs", rootfs], check=True)
    try:
        proc = workflow.run(work, ROOTFS, check=False)
        assert_named(proc, "pack busybox/bookworm/default/amd64 failed: No space left on device",
                     f"free of 64.0 MiB, no inodes free of 6 (file system mounted at {rootfs})", "df -i")
        assert not leftovers(work, ours=(rootfs,))
    finally:
        subprocess.run(["umount", "--lazy", rootfs], check=False)


def test_a_read_only_file_system_gets_its_own_hint():
    text = faults.paragraph("pack", "a/b", OSError(30, "Read-only file system", "/srv/build/x"))
    assert text == ("baseforge: pack a/b failed: Read-only file system (/srv/build/x)\n"
                    "  hint: that file system is mounted read-only: build on a writable one (or remount it read-write)\n")
