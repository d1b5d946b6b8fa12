"""End to end: the real `snakemake` on a small matrix, the real Debian archive, a real Docker Engine."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import docker
import pytest

pytestmark = pytest.mark.e2e

CONFIG = """
namespace: bftest
epoch: release
package_cache: {cache}
images:
  debian:
    releases: [bookworm]
    variants: [default, slim]
    checks: [apt-get --version]
  busybox:
    releases: [bookworm]
    cmd: [sh]
    checks: ["busybox --help >/dev/null"]
apps:
{hello}{greeter}"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("debs")


@pytest.fixture(scope="module")
def built(tmp_path_factory, engine, workflow, cache):
    """One full build of the small matrix; yields its work directory."""
    work = workflow.make(tmp_path_factory.mktemp("e2e"), CONFIG.format(cache=cache, hello=workflow.shipped_app("hello"),
                                                                       greeter=workflow.shipped_app("greeter")))
    workflow.run(work)
    return work



def records(work: Path) -> dict[str, dict]:
    return {str(p.relative_to(work / "build/engine").with_suffix("")): json.loads(p.read_text())
            for p in (work / "build/engine").rglob("*.json")}


def test_every_image_is_in_the_engine_with_its_tags(built, engine):
    client = docker.DockerClient(base_url=engine)
    recs = records(built)
    assert set(recs) == {"debian/bookworm/default/amd64", "debian/bookworm/slim/amd64",
                         "busybox/bookworm/default/amd64", "apps/hello", "apps/greeter"}
    for rec in recs.values():
        for tag in rec["tags"]:
            assert client.images.get(tag).id == rec["image_id"], tag
    assert "bftest/debian:12" in recs["debian/bookworm/default/amd64"]["tags"]
    assert "bftest/debian:bookworm-slim" in recs["debian/bookworm/slim/amd64"]["tags"]


def test_loaded_image_id_equals_the_oci_archive_on_disk(built):
    for path, rec in records(built).items():
        if path.startswith("apps/"):
            continue
        oci = json.loads((built / f"build/oci/{path}.json").read_text())
        assert rec["image_id"] == oci["image_id"]


def test_images_run_and_say_what_they_should(built, engine):
    client = docker.DockerClient(base_url=engine)
    out = client.containers.run("bftest/debian:bookworm", ["cat", "/etc/os-release"], remove=True, network_mode="none")
    assert b"VERSION_CODENAME=bookworm" in out
    assert client.containers.run("bftest/hello", remove=True, network_mode="none") == b"Hello from baseforge!\n"
    assert b"Hello, world!" in client.containers.run("bftest/greeter", remove=True, network_mode="none")
    assert b"ok" in client.containers.run("bftest/busybox:bookworm", ["sh", "-c", "echo ok"], remove=True, network_mode="none")
    # slim drops docs but keeps copyright files, like Debian's -slim images
    ls = client.containers.run("bftest/debian:bookworm-slim", ["sh", "-c", "ls /usr/share/doc/bash; ls /usr/share/man | wc -l"],
                               remove=True, network_mode="none").decode().split()
    assert ls == ["copyright", "0"]


def test_smoke_reports_and_summary(built):
    for report in (built / "build/smoke").rglob("*.ok"):
        lines = report.read_text().splitlines()
        assert lines and all(line.startswith(("image\t", "PASS\t")) for line in lines), report
    rows = json.loads((built / "results/images.json").read_text())
    assert len(rows) == 5
    debian = next(r for r in rows if r["image"] == "debian/bookworm/default/amd64")
    slim = next(r for r in rows if r["image"] == "debian/bookworm/slim/amd64")
    assert len(debian["rootfs_sha256"]) == 64 and debian["packages"] > 50 and debian["epoch"] > 1_600_000_000
    assert slim["size"] < debian["size"]
    manifest = (built / "build/rootfs/debian/bookworm/default/amd64/manifest.tsv").read_text()
    assert any(line.startswith("bash\t") for line in manifest.splitlines())
    sbom = json.loads((built / "build/rootfs/debian/bookworm/default/amd64/sbom.spdx.json").read_text())
    assert sbom["spdxVersion"] == "SPDX-2.3" and len(sbom["packages"]) == debian["packages"]


def test_smoke_checks_share_a_container_and_each_failure_is_named(built, tmp_path):
    from baseforge.errors import BaseforgeError
    from baseforge.smoketest import smoketest

    record = built / "build/engine/busybox/bookworm/default/amd64.json"
    plan = {"uname": "x86_64", "checks": ["echo one; echo two >&2", "touch /shared", "test -e /shared", ["printf", "%s", "no newline"]]}
    smoketest(plan, str(record), str(tmp_path / "ok"))
    # the checks ran in one container, in order: the file the second check made is there for the third
    assert (tmp_path / "ok").read_text().splitlines()[1:] == [
        "PASS\tuname -m", "PASS\techo one; echo two >&2", "PASS\ttouch /shared", "PASS\ttest -e /shared", "PASS\tprintf %s 'no newline'"]
    plan = {"uname": "aarch64", "checks": ["echo oops >&2; exit 3", "true"]}
    with pytest.raises(BaseforgeError) as err:
        smoketest(plan, str(record), str(tmp_path / "bad"))
    assert "uname -m: expected aarch64, got 'x86_64'" in str(err.value)
    assert "echo oops >&2; exit 3: exit code 3: oops" in str(err.value) and "true:" not in str(err.value)
    assert not (tmp_path / "bad").exists()


def test_smoke_checks_of_an_image_without_a_shell_get_a_container_each(built, tmp_path):
    from baseforge.smoketest import smoketest

    plan = {"expect": "Hello from baseforge!", "checks": [["/hello"], ["/hello", "ignored"]]}
    smoketest(plan, str(built / "build/engine/apps/hello.json"), str(tmp_path / "ok"))
    assert (tmp_path / "ok").read_text().splitlines()[1:] == [
        "PASS\tdefault command output", "PASS\t/hello", "PASS\t/hello ignored"]


def test_second_run_does_nothing(built, workflow):
    proc = workflow.run(built, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_an_image_gone_from_the_engine_is_loaded_again(built, engine, workflow):
    client = docker.DockerClient(base_url=engine)
    rec = records(built)["busybox/bookworm/default/amd64"]
    client.images.remove(rec["image_id"], force=True)
    record = built / "build/engine/busybox/bookworm/default/amd64.json"
    workflow.run(built, "-n")
    assert record.exists()  # a dry run deletes nothing (it only says what a real run will load again)
    proc = workflow.run(built)
    assert "rule load:" in proc.stdout + proc.stderr and "rule bootstrap:" not in proc.stdout + proc.stderr
    assert client.images.get("bftest/busybox:bookworm").id == rec["image_id"]


def test_bad_config_fails_before_any_job_with_one_message(built, workflow):
    config = built / "config/config.yaml"
    good = config.read_text()
    try:
        config.write_text(good.replace("releases: [bookworm]\n    variants", "releases: [bookworm, bookwurm]\n    variants"))
        proc = workflow.run(built, "-n", check=False)
        assert proc.returncode != 0
        assert "images.debian.releases[1]" in proc.stderr and "bookworm" in proc.stderr
        assert "Traceback" not in proc.stderr
    finally:
        config.write_text(good)


def test_no_engine_says_how_to_point_docker_host_at_one(tmp_path, workflow, cache):
    work = workflow.make(tmp_path, "images:\n  busybox:\n    releases: [bookworm]\npackage_cache: %s\n" % cache)
    proc = workflow.run(work, env={"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}, check=False)
    assert proc.returncode != 0
    assert "no Docker Engine answers" in proc.stderr and "DOCKER_HOST" in proc.stderr
    assert not list((work / "build").rglob("engine/**/*.json"))


def test_two_builds_in_two_directories_are_byte_identical(built, tmp_path, workflow):
    """Reproducibility: same config + packages + epoch ⇒ same rootfs.tar bytes and image digests."""
    cfg = (built / "config/config.yaml").read_text()
    other = workflow.make(tmp_path, cfg)
    target = "build/oci/debian/bookworm/default/amd64.oci.tar"
    # a private package cache, so the second build downloads everything again
    workflow.run(other, target, "--config", f"package_cache={tmp_path / 'debs'}")
    a = built / "build/rootfs/debian/bookworm/default/amd64/rootfs.tar"
    b = other / "build/rootfs/debian/bookworm/default/amd64/rootfs.tar"
    assert subprocess.run(["cmp", a, b]).returncode == 0
    ja = json.loads((built / "build/oci/debian/bookworm/default/amd64.json").read_text())
    jb = json.loads((other / "build/oci/debian/bookworm/default/amd64.json").read_text())
    assert (ja["image_id"], ja["manifest_digest"]) == (jb["image_id"], jb["manifest_digest"])


def test_verify_rebuilds_and_reports_a_changed_byte(built):
    import tarfile

    cell = "busybox/bookworm/default/amd64"
    verify = ["python3", "-m", "baseforge", "verify", cell]
    ok = subprocess.run(verify, cwd=built, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{cell}: rootfs identical" in ok.stdout and "image identical" in ok.stdout
    tar = built / f"build/rootfs/{cell}/rootfs.tar"
    with tarfile.open(tar) as tf:
        offset = tf.getmember("etc/passwd").offset_data
    with open(tar, "r+b") as f:
        f.seek(offset)
        f.write(b"R")  # root:x:… becomes Root:x:…
    bad = subprocess.run(verify, cwd=built, capture_output=True, text=True)
    assert bad.returncode == 1
    assert f"{cell}: rootfs DIFFERS" in bad.stdout and "etc/passwd: recorded" in bad.stdout


def test_classic_debootstrap_and_docker_import(tmp_path, workflow, engine):
    """The classic tar method, selectable per image: debootstrap … && tar -C rootfs -c . | docker import -"""
    work = workflow.make(tmp_path, "namespace: bfclassic\npackage_cache: null\nimages:\n  classic:\n    distro: debian\n"
                                   "    bootstrapper: debootstrap\n    load: import\n    releases: [bookworm]\n")
    workflow.run(work)
    rec = records(work)["classic/bookworm/default/amd64"]
    assert rec["method"] == "import"
    client = docker.DockerClient(base_url=engine)
    image = client.images.get("bfclassic/classic:12")
    assert image.id == rec["image_id"] and image.attrs["Config"]["Cmd"] == ["bash"]
    assert image.labels["org.opencontainers.image.version"] == "bookworm"
    out = client.containers.run(image.id, ["cat", "/etc/os-release"], remove=True, network_mode="none")
    assert b"VERSION_CODENAME=bookworm" in out
    assert "PASS\tos-release" in (work / "build/smoke/classic/bookworm/default/amd64.ok").read_text()
