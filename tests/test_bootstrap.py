"""Bootstrapper plugins and host facts: argv building, registry, mirror parsing (no root, no network)."""

from __future__ import annotations

import dataclasses
import tarfile
from pathlib import Path

import pytest

from baseforge import bootstrap, distro, mirror
from baseforge.errors import BaseforgeError
from baseforge.spec import CellSpec, Source

CELL = CellSpec(image="debian", distro="debian", release="bookworm", variant="default", arch="arm64",
                bootstrapper="mmdebstrap", sources=(Source("http://m.invalid/debian", "bookworm"),
                                                    Source("http://m.invalid/debian", "bookworm-updates")),
                packages=("curl", "ca-certificates"), keyrings=("/k.gpg",), epoch=1700000000)


def test_registry_lists_and_loads_plugins():
    assert {"mmdebstrap", "debootstrap", "busybox"} <= set(bootstrap.available())
    assert bootstrap.get("mmdebstrap").name == "mmdebstrap"
    with pytest.raises(BaseforgeError, match="(?s)unknown bootstrapper .nope.*mmdebstrap"):
        bootstrap.get("nope")
    assert {"debian", "busybox"} <= set(distro.available())


def test_mmdebstrap_argv():
    argv = bootstrap.get("mmdebstrap").argv(CELL, Path("/o/r.tar"))
    assert argv[0] == "mmdebstrap" and "--variant=minbase" in argv and "--architectures=arm64" in argv
    assert "--include=curl,ca-certificates" in argv and "--keyring=/k.gpg" in argv
    assert argv[-3:] == ["/o/r.tar", "deb http://m.invalid/debian bookworm main", "deb http://m.invalid/debian bookworm-updates main"]
    assert not any("sync-in" in a for a in argv)  # no package cache configured


def test_mmdebstrap_package_cache_hooks():
    cell = CellSpec(**{**CELL.__dict__, "package_cache": "/cache"})
    argv = bootstrap.get("mmdebstrap").argv(cell, Path("/o/r.tar"), incoming=Path("/w/debs"))
    assert "--setup-hook=sync-in /cache /var/cache/apt/archives/" in argv
    assert "--customize-hook=sync-out /var/cache/apt/archives /w/debs" in argv
    assert "--skip=essential/unlink" in argv


def test_mmdebstrap_argv_layered_on_a_parent():
    cell = dataclasses.replace(CELL, package_cache="/cache")
    argv = bootstrap.get("mmdebstrap").argv(cell, Path("/o/r.tar"), incoming=Path("/w/debs"), parent=Path("/p/min base.tar"))
    assert "--variant=custom" in argv and not any(a.startswith(("--include", "--hook-dir")) for a in argv)
    setup = [a for a in argv if a.startswith("--setup-hook")]
    assert setup[0] == "--setup-hook=tar -C \"$1\" --exclude='./dev/*' -xf '/p/min base.tar'"  # first: the cache goes on top
    customize = [a for a in argv if a.startswith("--customize-hook")]
    # apt installs in the chroot (so it marks dependencies automatic), before anything is copied out
    assert customize[0] == '--customize-hook=chroot "$1" apt-get install --yes -- curl ca-certificates'
    assert customize[1:3] == ['--customize-hook=rm -f "$1"/etc/dpkg/dpkg.cfg.d/99mmdebstrap',
                              "--customize-hook=sync-out /var/cache/apt/archives /w/debs"]


def test_debootstrap_argv():
    argv = bootstrap.get("debootstrap").argv(CELL, Path("/w/rootfs"))
    assert argv == ["debootstrap", "--variant=minbase", "--arch=arm64", "--components=main", "--force-check-gpg", "--keyring=/k.gpg",
                    "--include=curl,ca-certificates", "bookworm", "/w/rootfs", "http://m.invalid/debian"]


def test_busybox_rootfs_layout(tmp_path):
    out = tmp_path / "bb.tar"
    bootstrap.get("busybox").write(out, b"\x7fELF fake", ["/bin/sh", "/usr/bin/env", "/sbin/init", "/bin/busybox"], 1700000000)
    with tarfile.open(out) as tf:
        members = {m.name: m for m in tf}
    assert members["bin/sh"].linkname == "busybox"
    assert members["usr/bin/env"].linkname == "../../bin/busybox"
    assert members["sbin/init"].linkname == "../bin/busybox"
    assert members["bin/busybox"].mode == 0o755 and members["tmp"].mode == 0o1777
    assert all(m.mtime == 1700000000 and m.uid == 0 for m in members.values())
    with tarfile.open(out) as tf:
        assert tf.extractfile("etc/passwd").read().startswith(b"root:x:0:0:")


def test_host_sources_deb822_and_one_line(tmp_path):
    apt = tmp_path / "etc/apt/sources.list.d"
    apt.mkdir(parents=True)
    (apt / "debian.sources").write_text(
        "Types: deb\nURIs: http://a.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://src.invalid/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://s.invalid/debian-security/\nSuites: bookworm-security\nComponents: main\n")
    assert mirror.default_mirrors(tmp_path) == {"archive": "http://a.invalid/debian", "security": "http://s.invalid/debian-security"}
    (tmp_path / "etc/apt/sources.list").write_text("# comment\ndeb [arch=amd64] http://old.invalid/debian bookworm main\n")
    assert mirror.default_mirror("archive", tmp_path) == "http://old.invalid/debian"


def test_no_host_mirror_says_how_to_configure_one(tmp_path):
    with pytest.raises(BaseforgeError) as exc:
        mirror.default_mirror("security", tmp_path)
    assert "mirrors:" in str(exc.value) and "security" in str(exc.value)


def test_build_raw_leaves_nothing_on_failure(tmp_path, monkeypatch):
    class Broken(bootstrap.Bootstrapper, name="broken-test"):
        def bootstrap(self, cell, out_tar, workdir):
            Path(out_tar).write_bytes(b"half a tar")
            raise BaseforgeError("interrupted")

    cell = CellSpec(**{**CELL.__dict__, "bootstrapper": "broken-test", "arch": "amd64"})
    monkeypatch.setattr("baseforge.host.host_arch", lambda: "amd64")
    with pytest.raises(BaseforgeError):
        bootstrap.build_raw(cell, tmp_path / "out.tar")
    assert list(tmp_path.iterdir()) == []
    del bootstrap.Bootstrapper.registry["broken-test"]


def test_foreign_arch_without_binfmt_is_a_clear_error(monkeypatch, tmp_path):
    from baseforge import host

    monkeypatch.setattr(host, "BINFMT", tmp_path)
    monkeypatch.setattr(host, "host_arch", lambda: "amd64")
    with pytest.raises(BaseforgeError, match="cannot bootstrap arm64") as exc:
        host.require_binfmt("arm64")
    assert "update-binfmts --enable qemu-aarch64" in str(exc.value)
    host.require_binfmt("amd64")  # native needs nothing


def test_scratch_dir_is_a_big_enough_tmpfs_or_what_the_user_says(monkeypatch):
    monkeypatch.setenv("BASEFORGE_TMPDIR", "/somewhere/else")
    assert bootstrap.scratch_dir() == "/somewhere/else"
    monkeypatch.delenv("BASEFORGE_TMPDIR")
    mounts = Path("/proc/self/mounts").read_text().split("\n")
    shm_is_tmpfs = any(line.split()[1:3] == ["/dev/shm", "tmpfs"] for line in mounts if line)
    assert bootstrap.scratch_dir(min_free=0) == ("/dev/shm" if shm_is_tmpfs else None)
    assert bootstrap.scratch_dir(min_free=1 << 60) is None  # an exabyte free: no tmpfs has that


def test_every_mmdebstrap_run_gets_the_epoch_and_the_scratch_dir(monkeypatch, tmp_path):
    from baseforge.bootstrap.mmdebstrap import environment

    monkeypatch.setenv("BASEFORGE_TMPDIR", str(tmp_path / "scratch"))
    assert environment(CELL) == {"SOURCE_DATE_EPOCH": "1700000000", "TMPDIR": str(tmp_path / "scratch")}
    assert (tmp_path / "scratch").is_dir()


def test_a_bootstrap_job_imports_neither_the_docker_sdk_nor_the_config_schema(tmp_path):
    """A bootstrap job (what scripts/bootstrap.py imports, build_raw, every bootstrapper plugin, the rootless
    check) stays clear of docker, jsonschema, the config and doctor: host facts come from baseforge.host."""
    import subprocess
    import sys

    code = f"""
import os, sys
import baseforge.bootstrap as b, baseforge.run, baseforge.spec
from baseforge.errors import BaseforgeError
from baseforge.host import host_arch
from baseforge.bootstrap import mmdebstrap
plugins = [b.get(n) for n in b.available()]

class Noop(b.Bootstrapper, name="noop-test"):
    def bootstrap(self, cell, out_tar, workdir):
        out_tar.write_bytes(b"")

cell = baseforge.spec.CellSpec("i", "debian", "bookworm", "default", host_arch(), "noop-test")
b.build_raw(cell, {str(tmp_path / "out.tar")!r})
os.geteuid = lambda: 65534  # as an ordinary user: the rootless (subuid) check runs
try:
    mmdebstrap.mode()
except BaseforgeError:
    pass
print(len(plugins), *sorted(m for m in ("docker", "jsonschema", "baseforge.config", "baseforge.doctor") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) >= 6 and out[1:] == [], out
