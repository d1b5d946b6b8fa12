"""Foreign architectures chrootless: when, the command line, the fallback (no root needed), and end to end:
an arm64 cell built chrootless packs to the very bytes of its qemu build, and passes its smoke test."""

from __future__ import annotations

import dataclasses
import logging
import subprocess

import pytest

from baseforge import chrootless
from baseforge.bootstrap.mmdebstrap import Mmdebstrap
from baseforge.distro.debian import Debian
from baseforge.errors import BaseforgeError
from baseforge.spec import CellSpec, Source

CELL = CellSpec(image="debian", distro="debian", release="trixie", variant="default", arch="arm64",
                bootstrapper="mmdebstrap", sources=(Source("http://m.invalid/debian", "trixie"),), epoch=1700000000)


@pytest.fixture
def root(monkeypatch):
    monkeypatch.setattr(chrootless.os, "geteuid", lambda: 0)
    monkeypatch.setattr(chrootless, "host_arch", lambda: "amd64")


def why(layered=False, **changes):
    return chrootless.why_not(dataclasses.replace(CELL, **changes), Debian.releases, layered)


def test_auto_builds_the_tested_sets_of_debian_12_and_later_chrootless(root):
    assert why() is None and why(release="bookworm") is None and why(release="sid") is None
    assert why(base_variant="apt") is None and why(base_variant="essential") is None
    assert "not known to support DPKG_ROOT" in why(release="bullseye")
    assert "not known to support DPKG_ROOT" in why(distro="ubuntu", release="noble")
    assert "extra packages" in why(packages=("curl",)) and "extra packages" in why(base_variant="buildd")
    assert why(arch="amd64") == "native architecture"
    assert why(layered=True) == "a layered variant installs its packages in the chroot"


def test_options_foreign_and_rootless(root, monkeypatch):
    assert why(options={"foreign": "qemu"}) == "options.foreign: qemu"
    assert why(options={"foreign": "chrootless"}, release="bullseye", packages=("curl",)) is None
    with pytest.raises(BaseforgeError, match=r"images.debian.options.foreign: unknown strategy 'fast'"):
        why(options={"foreign": "fast"})
    assert "runs as root" in why(options={"mode": "unshare"})
    monkeypatch.setattr(chrootless.os, "geteuid", lambda: 1000)
    assert "runs as root" in why()


def test_chrootless_argv_changes_the_mode_and_adds_the_fixups_before_the_last_hooks():
    qemu = Mmdebstrap().argv(dataclasses.replace(CELL, package_cache="/cache"), "/o/r.tar", incoming="/w/debs")
    fast = chrootless.argv(qemu)
    assert "--mode=chrootless" in fast and not any(a.startswith("--mode=") and a != "--mode=chrootless" for a in fast)
    hooks = [a for a in fast if a.startswith("--customize-hook=")]
    assert hooks[:len(chrootless.FIXUPS)] == [f"--customize-hook={h}" for h, _ in chrootless.FIXUPS]
    assert [a for a in fast if a not in hooks and a != "--mode=chrootless"] == [a for a in qemu if not a.startswith(("--customize-hook=", "--mode="))]
    assert fast[-2:] == qemu[-2:]


def test_a_failed_chrootless_build_falls_back_to_qemu_and_says_so(root, monkeypatch, tmp_path, caplog):
    calls = []

    def fake_run(argv, env=None):
        calls.append(argv)
        (tmp_path / "r.tar").write_text("partial")
        if "--mode=chrootless" in argv:
            raise BaseforgeError("mmdebstrap exited with code 1")

    monkeypatch.setattr(chrootless, "run", fake_run)
    qemu = ["mmdebstrap", "--mode=root", "--customize-hook=true", "trixie", str(tmp_path / "r.tar")]
    with caplog.at_level(logging.INFO, logger="baseforge"):
        assert chrootless.build(CELL, qemu, {}, tmp_path / "r.tar") == "qemu"
    assert calls == [chrootless.argv(qemu), qemu]
    assert "debian/trixie/default/arm64: the chrootless build failed, building under qemu instead" in caplog.text
    calls.clear()
    with caplog.at_level(logging.INFO, logger="baseforge"):
        assert chrootless.build(dataclasses.replace(CELL, release="bullseye"), qemu, {}, tmp_path / "r.tar") == "qemu"
    assert calls == [qemu] and "building under qemu: debian bullseye is not known" in caplog.text



def test_a_mirror_failure_is_not_retried_under_qemu(root, monkeypatch, tmp_path):
    """apt could not fetch (a mirror mid-sync, no network): qemu would fail the same way, only slower."""
    calls = []

    def fake_run(argv, env=None):
        calls.append(argv)
        raise BaseforgeError("mmdebstrap exited with code 25:\n    E: Failed to fetch http://m.invalid/debian/dists/"
                             "bookworm/main/binary-arm64/Packages.xz  File has unexpected size (1 != 2). Mirror sync in progress?")

    monkeypatch.setattr(chrootless, "run", fake_run)
    qemu = ["mmdebstrap", "--mode=root", "--customize-hook=true", "trixie", str(tmp_path / "r.tar")]
    with pytest.raises(BaseforgeError, match="Failed to fetch"):
        chrootless.build(CELL, qemu, {}, tmp_path / "r.tar")
    assert calls == [chrootless.argv(qemu)]


# --- end to end ----------------------------------------------------------------------------------------

E2E = """
namespace: bfcl
epoch: release
package_cache: {cache}
images:
  fast:
    distro: debian
    releases: [bookworm]
    architectures: [arm64]
    updates: false
  slow:
    distro: debian
    releases: [bookworm]
    architectures: [arm64]
    updates: false
    options: {{foreign: qemu}}
"""


@pytest.mark.e2e
def test_an_arm64_cell_built_chrootless_is_byte_identical_to_its_qemu_build(tmp_path, engine, workflow):
    work = workflow.make(tmp_path / "w", E2E.format(cache=tmp_path / "debs"))
    workflow.run(work, "build/smoke/fast/bookworm/default/arm64.ok", "build/rootfs/slow/bookworm/default/arm64/rootfs.tar")
    fast, slow = (work / f"build/rootfs/{i}/bookworm/default/arm64/rootfs.tar" for i in ("fast", "slow"))
    assert subprocess.run(["cmp", fast, slow]).returncode == 0
    assert "built chrootless" in (work / "logs/bootstrap/fast/bookworm/arm64/minbase.log").read_text()
    assert "building under qemu: options.foreign: qemu" in (work / "logs/bootstrap/slow/bookworm/arm64/minbase.log").read_text()
    report = (work / "build/smoke/fast/bookworm/default/arm64.ok").read_text()
    assert "PASS\tuname -m" in report and "PASS\tos-release" in report


def test_a_32_bit_image_on_its_64_bit_kernel_may_say_the_kernels_machine():
    """i386 on an x86_64 engine (and armhf on aarch64) runs natively, without qemu: uname -m says the kernel's
    machine. Elsewhere (under qemu, or the image's own kernel) only the image's own machine passes."""
    from baseforge.engine import RunResult
    from baseforge.smoketest import checks_for

    def verdicts(expected, kernel, said):
        (_, _, predicate), = checks_for({"uname": expected}, kernel=kernel)
        return [predicate(RunResult(0, s + "\n", "")) for s in said]

    assert verdicts("i686", "x86_64", ["i686", "x86_64"]) == [None, None]
    assert verdicts("armv7l", "aarch64", ["aarch64"]) == [None]
    assert verdicts("i686", "x86_64", ["aarch64"]) == ["expected i686 or x86_64, got 'aarch64'"]
    assert verdicts("aarch64", "x86_64", ["x86_64"]) == ["expected aarch64, got 'x86_64'"]
    assert verdicts("armv7l", "x86_64", ["x86_64"]) == ["expected armv7l, got 'x86_64'"]
