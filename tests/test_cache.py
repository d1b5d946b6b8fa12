"""Caches: Snakemake's between-workflow output cache (bootstrap, pack, image) and the .deb package cache."""

from __future__ import annotations

import json
import os
import tarfile
import threading
from pathlib import Path

import pytest

from baseforge import pkgcache
from baseforge.bootstrap import get
from baseforge.spec import CellSpec, Source

BUSYBOX = """namespace: bfcache
epoch: 1700000000
images:
  busybox:
    releases: [bookworm]
    cmd: [sh]
  tiny:                         # the same spec under another name: it differs only in the wildcard
    distro: busybox
    releases: [bookworm]
    cmd: [sh]
"""


@pytest.mark.e2e
def test_a_fresh_clone_takes_every_artifact_from_the_cache(tmp_path, engine, workflow):
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {"SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    # the default package cache: a path inside the clone, which must not make the clones' entries differ
    first = workflow.make(tmp_path / "first", BUSYBOX)
    workflow.run(first, "--cache", env=env)
    stored = sorted(p.name for p in cache.iterdir())
    bootstraps = [p for p in stored if len(p) == len("0" * 64 + ".tar")]
    # two cells that differ only in a wildcard have an entry each, for every cached rule
    assert len(bootstraps) == 2
    assert sum(p.endswith("_tar.tar") for p in stored) == 2 and sum(p.endswith("_archive.tar") for p in stored) == 2
    assert sum(p.endswith("_manifest.tsv") for p in stored) == 2 and sum(p.endswith("_info.json") for p in stored) == 4

    second = workflow.make(tmp_path / "second", BUSYBOX)
    proc = workflow.run(second, "--cache", env=env)
    assert sorted(p.name for p in cache.iterdir()) == stored, "the second clone stored new entries: a cache miss"
    for rule in ("bootstrap", "pack", "image", "smoketest"):  # a job fetched from the cache writes no log
        assert not [p for p in second.glob(f"logs/{rule}/**/*.log") if p.stat().st_size], f"a {rule} job ran"
    for out in ("build/raw/busybox/bookworm/amd64/minbase.tar", "build/rootfs/tiny/bookworm/default/amd64/rootfs.tar",
                "build/oci/busybox/bookworm/default/amd64.oci.tar", "build/smoke/busybox/bookworm/default/amd64.ok"):
        assert (second / out).is_symlink() and Path(os.readlink(second / out)).parent == cache, out
    # the engine steps ran: the record is this clone's, and the cached PASS is for the very image it loaded
    record = json.loads((second / "build/engine/busybox/bookworm/default/amd64.json").read_text())
    assert (second / "build/smoke/busybox/bookworm/default/amd64.ok").read_text().startswith(f"image\t{record['image_id']}\n")
    assert "from cache" in proc.stderr
    # and a rerun of either clone has nothing to do
    assert "Nothing to be done" in workflow.run(second, "--cache", "-n", env=env).stdout
    # other checks for the same image are not in the cache: they run
    third = workflow.make(tmp_path / "third", BUSYBOX.replace("    cmd: [sh]\n  tiny", "    cmd: [sh]\n    checks: [\"true\"]\n  tiny"))
    workflow.run(third, "--cache", env=env)
    assert (third / "logs/smoketest/busybox/bookworm/default/amd64.log").stat().st_size
    assert "PASS\ttrue" in (third / "build/smoke/busybox/bookworm/default/amd64.ok").read_text()
    assert not [p for p in third.glob("logs/bootstrap/**/*.log") if p.stat().st_size]


def test_package_cache_merge_is_atomic_and_safe_in_parallel(tmp_path):
    cache = tmp_path / "debs"
    cache.mkdir()
    jobs = []
    for j in range(4):
        incoming = tmp_path / f"job{j}"
        incoming.mkdir()
        for i in range(30):
            (incoming / f"pkg{i}_1.0_amd64.deb").write_bytes(bytes([i]) * 100_000)
        (incoming / "partial").mkdir()  # apt's partial/ and lock are not .deb files: never merged
        (incoming / "lock").write_bytes(b"")
        jobs.append(incoming)
    added = []
    threads = [threading.Thread(target=lambda d=d: added.append(pkgcache.merge(d, cache))) for d in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"pkg{i}_1.0_amd64.deb" for i in range(30))
    assert all((cache / f"pkg{i}_1.0_amd64.deb").read_bytes() == bytes([i]) * 100_000 for i in range(30))
    assert sum(added) >= 30  # a race may copy a file twice (same bytes); none is lost or half-written
    assert not list(tmp_path.glob(".debs.incoming/*")), "no staging leftovers"
    assert pkgcache.merge(jobs[0], cache) == 0


def test_mmdebstrap_is_given_the_package_cache_as_an_absolute_path(tmp_path, monkeypatch):
    """The rule passes it relative to the work directory (so clones share cache entries); the job resolves it."""
    seen = {}
    monkeypatch.chdir(tmp_path)
    # mmdebstrap runs through chrootless.build (native here: the qemu-mode argv as is)
    monkeypatch.setattr("baseforge.chrootless.run", lambda argv, env=None: seen.setdefault("argv", argv))
    monkeypatch.setattr("baseforge.bootstrap.mmdebstrap.pkgcache.merge", lambda incoming, cache: seen.setdefault("cache", cache))
    cell = CellSpec(image="debian", distro="debian", release="bookworm", variant="default", arch="amd64",
                    bootstrapper="mmdebstrap", sources=(Source("http://m.invalid/debian", "bookworm"),),
                    package_cache=".baseforge/cache/debs")
    (tmp_path / "w").mkdir()
    get("mmdebstrap").bootstrap(cell, tmp_path / "out.tar", tmp_path / "w")
    assert f"--setup-hook=sync-in {tmp_path}/.baseforge/cache/debs /var/cache/apt/archives/" in seen["argv"]
    assert seen["cache"] == tmp_path / ".baseforge/cache/debs" and seen["cache"].is_dir()
    assert "--dpkgopt=force-unsafe-io" in seen["argv"]


@pytest.mark.e2e
def test_a_warm_package_cache_downloads_no_packages_and_stays_out_of_the_image(tmp_path, caplog, monkeypatch):
    """Two real minbase bootstraps with one package cache: the second fetches only the indices. What each
    fetched is counted by an HTTP proxy on 127.0.0.1 that apt goes through (not the host's network counters)."""
    import logging

    from fixtures.proxy import CountingProxy

    from baseforge.bootstrap import build_raw
    from baseforge.config import plan

    caplog.set_level(logging.INFO, logger="baseforge")
    cfg = {"epoch": 1700000000, "package_cache": str(tmp_path / "debs"), "images": {"debian": {"releases": ["bookworm"]}}}
    cell = plan(cfg, tmp_path, resolve_epochs=False).images["debian/bookworm/default/amd64"].cell
    debs_fetched, received = [], []
    for n in (1, 2):
        with CountingProxy() as proxy:
            monkeypatch.setenv("http_proxy", proxy.url)
            build_raw(cell, tmp_path / f"raw{n}.tar")
        debs_fetched.append(proxy.bytes(".deb"))
        received.append(proxy.bytes())
    debs = list((tmp_path / "debs").glob("*.deb"))
    size = sum(p.stat().st_size for p in debs)
    assert len(debs) > 50 and not list((tmp_path / "debs").glob("*.part"))
    messages = [r.getMessage() for r in caplog.records if "new .deb files" in r.getMessage()]
    assert messages[0].endswith(f"{len(debs)} new .deb files") and messages[1].endswith(": 0 new .deb files")
    # the first bootstrap fetched every package through the proxy, the second none (only the indices)
    assert debs_fetched[0] >= size and debs_fetched[1] == 0, (debs_fetched, size)
    assert 0 < received[1] <= received[0] - size, (received, size)  # the second: the indices only
    for n in (1, 2):
        with tarfile.open(tmp_path / f"raw{n}.tar") as tf:
            names = tf.getnames()
        assert not [m for m in names if m.endswith(".deb")], "a .deb of the package cache is in the rootfs"
        assert not [m for m in names if m.endswith("dpkg.cfg.d/99mmdebstrap")]


def tar_members(path: Path, *names: str) -> tuple[set[str], dict[str, str]]:
    """Every member name of a rootfs tar, and the text of ``names``."""
    with tarfile.open(path) as tf:
        texts = {n: tf.extractfile(f"./{n}").read().decode() for n in names}
        return set(tf.getnames()), texts


@pytest.mark.e2e
def test_a_variant_layered_on_its_release_bootstrap_equals_one_from_scratch(tmp_path):
    """The curl variant built on top of the default bootstrap installs what a bootstrap from scratch with
    --include=curl installs (same dpkg status, dependencies marked automatic), keeps the parent's files and
    is reproducible."""
    from baseforge.bootstrap import build_raw
    from baseforge.config import plan

    variants = ["default", {"name": "web", "packages": ["curl"]}]
    cfg = {"epoch": 1700000000, "package_cache": str(tmp_path / "debs"),
           "images": {"debian": {"releases": ["bookworm"], "variants": variants}}}
    images = plan(cfg, tmp_path, resolve_epochs=False).images
    base, web = images["debian/bookworm/default/amd64"], images["debian/bookworm/web/amd64"]
    assert web.parent_raw == base.raw_key
    build_raw(base.cell, tmp_path / "base.tar")
    build_raw(web.cell, tmp_path / "layered.tar", parent=tmp_path / "base.tar")
    build_raw(web.cell, tmp_path / "again.tar", parent=tmp_path / "base.tar")
    build_raw(web.cell, tmp_path / "scratch.tar")  # the same cell, no parent
    # reproducible: the same parent, packages and epoch give the same bytes
    assert (tmp_path / "again.tar").read_bytes() == (tmp_path / "layered.tar").read_bytes()

    state = ("var/lib/dpkg/status", "var/lib/apt/extended_states")
    base_names, _ = tar_members(tmp_path / "base.tar")
    names, layered = tar_members(tmp_path / "layered.tar", *state)
    scratch_names, scratch = tar_members(tmp_path / "scratch.tar", *state)
    assert layered["var/lib/dpkg/status"] == scratch["var/lib/dpkg/status"]
    assert "Package: curl\n" in layered["var/lib/dpkg/status"]

    def auto(text: str) -> set[str]:
        return {block.split("\n")[0] for block in text.split("\n\n") if "Auto-Installed: 1" in block}

    assert "Package: libcurl4" in auto(layered["var/lib/apt/extended_states"])
    assert auto(layered["var/lib/apt/extended_states"]) == auto(scratch["var/lib/apt/extended_states"])
    leftovers = {n for n in names ^ scratch_names if not n.startswith("./var/lib/dpkg/") or not n.endswith("-old")}
    assert not leftovers and base_names - {"./var/lib/dpkg/status-old"} <= names
    assert not [n for n in names if n.endswith((".deb", "dpkg.cfg.d/99mmdebstrap"))]
