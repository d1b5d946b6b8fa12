"""Locks of cells whose bootstrapper picks Debian packages from the signed indices itself (busybox,
distroless): the same lock format, the same routine (lock, --check, offline, snapshot, clear failure,
--update rebuilds only what changed) as mmdebstrap cells (tests/test_lock.py).

The real parts: the signed apt archive of tests/fixtures/aptlock.py (with a ``busybox-static`` package
holding the host's static busybox) served on 127.0.0.1, `python3 -m baseforge lock`, `snakemake` up to
the rootfs (no engine needed), mmdebstrap for the unlocked busybox cell, apt-get update for the resolver.
"""

from __future__ import annotations

import hashlib
import re
import shutil

import pytest
import yaml
from fixtures import aptlock
from test_lock import baseforge, dry_run, key, keys  # noqa: F401  (key, keys: test_lock's module fixtures)

from baseforge import config, lockfile
from baseforge.errors import BaseforgeError

BUSYBOX = "busybox/stable/default/amd64"
DISTROLESS = "distroless/stable/s/amd64"
CELLS = (BUSYBOX, DISTROLESS)

BUSYBOX_LOCK = """\
# baseforge lock of busybox/stable/default/amd64: ...
epoch\t1717243200
suite\tstable\t2024-06-01T12:00:00Z\t{s}
package\tbusybox-static\t1:1.35.0-4\tamd64\tstable\t{s}\t642\tpool/main/b/busybox/busybox-static_1.35.0-4_amd64.deb
""".format(s="a" * 64)


def cfg(url: str, key, snapshot: str | None = None) -> str:
    common = {"releases": ["stable"], "keyrings": [str(key)], "epoch": "release"}
    return yaml.safe_dump({
        "namespace": "bflockidx",
        "mirrors": {"archive": f"{url}/debian", **({"snapshot": snapshot} if snapshot else {})},
        "images": {"busybox": {**common, "cmd": ["sh"]},
                   "distroless": {**common, "distro": "debian", "updates": False,
                                  "variants": [{"name": "s", "distroless": ["fixture-hello"]}]}},
    })


def rootfs(work) -> dict[str, str]:
    """The sha256 of each cell's normalized rootfs."""
    return {c: hashlib.sha256((work / f"build/rootfs/{c}/rootfs.tar").read_bytes()).hexdigest() for c in CELLS}


def targets() -> list[str]:
    return [f"build/rootfs/{c}/rootfs.tar" for c in CELLS]


def test_a_busybox_lock_pins_the_cell_without_a_proxy(tmp_path):
    """The plan: a busybox cell takes epoch and raw key from its lock; its mirror may be https (no proxy)."""
    conf = yaml.safe_load(cfg("https://m.invalid", "/k.gpg"))
    file = lockfile.path(tmp_path, BUSYBOX)
    file.parent.mkdir(parents=True)
    file.write_text(BUSYBOX_LOCK)
    img = config.plan(conf, tmp_path, resolve_epochs=False).images[BUSYBOX]
    assert img.cell.epoch == img.meta.created == 1717243200 and img.epoch_source == f"lock config/locks/{BUSYBOX}.lock"
    assert img.raw_key.endswith(f"-lock{lockfile.parse(BUSYBOX_LOCK).key[:12]}")
    assert config.plan(conf, tmp_path, resolve_epochs=False).images[DISTROLESS].cell.lock is None


@pytest.mark.root  # fixture repositories on 127.0.0.1, mmdebstrap as root (like test_distros)
def test_busybox_and_distroless_lock_build_offline_snapshot_missing_and_update(tmp_path, workflow, engine, key):
    archive = aptlock.Archive(tmp_path / "archive", key)
    archive.publish({"busybox-static": "1.0", "fixture-hello": "1.0"})
    snapshots = tmp_path / "snapshots"
    with aptlock.serve(archive.root) as url:
        port = int(url.rsplit(":", 1)[1])
        # unlocked first: a locked build is the same bytes as the unlocked build of the same day
        plain = workflow.make(tmp_path / "plain", cfg(url, key.keyring))
        workflow.run(plain, *targets())
        first = workflow.make(tmp_path / "first", cfg(url, key.keyring))
        proc = baseforge(first, "lock")
        assert proc.returncode == 0, proc.stderr
        assert "not locked" not in proc.stdout, proc.stdout
        texts = {c: lockfile.path(first, c).read_text() for c in CELLS}
        assert re.search(r"^package\tbusybox-static\t1\.0\tamd64\tstable\t[0-9a-f]{64}\t\d+\tpool/main/busybox-static_1\.0_amd64\.deb$",
                         texts[BUSYBOX], re.MULTILINE), texts[BUSYBOX]
        assert "epoch\t1717243200\n" in texts[BUSYBOX] and "\nindex\t" not in texts[BUSYBOX]
        assert [line.split("\t")[1] for line in texts[DISTROLESS].splitlines() if line.startswith("package")] == ["fixture-hello"]
        assert baseforge(first, "lock", "--update").returncode == 0
        assert {c: lockfile.path(first, c).read_text() for c in CELLS} == texts  # byte-identical
        check = baseforge(first, "lock", "--check")
        assert check.returncode == 0 and all(f"{c}: up to date" in check.stdout for c in CELLS), check.stdout
        workflow.run(first, *targets())
        assert (want := rootfs(first)) == rootfs(plain)
        # the mirror moves on (a snapshot service keeps the old state); --check says exactly what moved
        archive.snapshot(snapshots, "20240601T120000Z")
        archive.publish({"busybox-static": "2.0", "fixture-hello": "2.0"}, date="Mon, 01 Jul 2024 12:00:00 UTC")
        check = baseforge(first, "lock", "--check")
        assert check.returncode == 1, check.stdout + check.stderr
        assert re.findall(r"^  ([^ :]+): (\S+) -> (\S+)$", check.stdout, re.MULTILINE) == [
            ("busybox-static", "1.0", "2.0"), ("fixture-hello", "1.0", "2.0")]
    # the mirror's port closed: the package cache serves the locks, byte-identical
    offline = workflow.make(tmp_path / "offline", cfg(url, key.keyring))
    shutil.copytree(first / "config/locks", offline / "config/locks")
    shutil.copytree(first / ".baseforge/cache", offline / ".baseforge/cache")
    workflow.run(offline, *targets())
    assert rootfs(offline) == want
    with aptlock.serve(archive.root, port), aptlock.serve(snapshots) as snap:
        # no package cache, a mirror that moved on, a snapshot archive that kept the old versions
        fresh = workflow.make(tmp_path / "snap", cfg(url, key.keyring, f"{snap}/archive"))
        shutil.copytree(first / "config/locks", fresh / "config/locks")
        workflow.run(fresh, *targets())
        assert rootfs(fresh) == want
        # neither: one clear error before anything is unpacked, and nothing at any output path
        none = workflow.make(tmp_path / "none", cfg(url, key.keyring))
        shutil.copytree(first / "config/locks", none / "config/locks")
        proc = workflow.run(none, targets()[0], check=False)
        assert proc.returncode != 0
        assert re.search(rf"cell {BUSYBOX}: no source serves 1 locked package\(s\): busybox-static 1\.0 \(amd64\)\. "
                         rf"For busybox-static 1\.0 \(amd64\) the sources tried were: \S+/busybox-static_1\.0_amd64\.deb: "
                         rf"not there \(or another sha256\); {re.escape(url)}/debian/pool/main/busybox-static_1\.0_amd64\.deb: "
                         rf"HTTP 404 File not found; no snapshot archive \(mirrors\.snapshot is not set\)", proc.stderr), proc.stderr
        assert not [p for p in (none / "build").rglob("*") if p.is_file()]
        # the lock is an input of the DAG: --update of the busybox cell rebuilds it, not the distroless cell
        assert baseforge(first, "lock", "--update", BUSYBOX).returncode == 0
    assert "busybox-static\t2.0" in lockfile.path(first, BUSYBOX).read_text()
    assert lockfile.path(first, DISTROLESS).read_text() == texts[DISTROLESS]
    jobs = dry_run(workflow, first, engine, *targets())
    assert ("bootstrap", next(o for _, o in jobs if o.startswith("build/raw/busybox/"))) in jobs
    assert not [o for _, o in jobs if "/distroless/" in o], jobs


def test_an_app_lock_pins_its_packages_and_an_unlocked_app_keeps_its_params(tmp_path):
    from baseforge import lock

    conf = {"epoch": 1717243200, "mirrors": {"archive": "http://m.invalid/debian", "security": "http://m.invalid/s"},
            "images": {"debian": {"releases": ["bookworm"]}},
            "apps": {"greeter": {"base": "debian:bookworm", "packages": ["hello"]},
                     "top": {"base": "greeter", "packages": ["jq"]}}}
    plan = config.plan(conf, tmp_path, resolve_epochs=False)
    assert "lock" not in plan.apps["greeter"].to_dict()  # unlocked: the app_image params of before
    # an app is resolved on its root cell with the packages of the apps between them, then installs its own
    img, install, why = lock._lockables(plan)["apps/top"]
    assert (img.cell.id, img.cell.packages, install, why) == ("debian/bookworm/default/amd64", ("hello",), ("jq",), "")
    text = BUSYBOX_LOCK.replace("busybox-static", "hello").replace("stable", "bookworm") + "".join(
        f"suite\t{s}\t2024-06-01T12:00:00Z\t{'b' * 64}\n" for s in ("bookworm-updates", "bookworm-security"))
    file = lockfile.path(tmp_path, "apps/greeter")
    file.parent.mkdir(parents=True)
    file.write_text(text)
    app = config.plan(conf, tmp_path, resolve_epochs=False).apps["greeter"]
    assert (app.lock, app.lock_key) == ("config/locks/apps/greeter.lock", lockfile.parse(text).key)
    assert app.to_dict()["lock_key"] == app.lock_key
    with pytest.raises(BaseforgeError, match=r"apps/greeter.lock no longer fits config for apps.greeter: .*https://m.invalid/debian is not http://"):
        config.plan({**conf, "mirrors": {**conf["mirrors"], "archive": "https://m.invalid/debian"}}, tmp_path, resolve_epochs=False)


def test_a_locked_app_that_no_source_serves_fails_before_apt_runs(tmp_path, monkeypatch):
    from baseforge import app_packages
    from baseforge.spec import CellSpec, Source

    monkeypatch.chdir(tmp_path)
    text = BUSYBOX_LOCK.replace("busybox-static", "hello")
    file = lockfile.path(tmp_path, "apps/greeter")
    file.parent.mkdir(parents=True)
    file.write_text(text)
    cell = CellSpec("debian/stable/default/amd64", "debian", "stable", "default", "amd64", "mmdebstrap",
                    sources=(Source("http://127.0.0.1:9/debian", "stable"),), packages=("hello",), package_cache="debs",
                    lock="config/locks/apps/greeter.lock", lock_key=lockfile.parse(text).key)
    ran = []
    monkeypatch.setattr(app_packages, "run", lambda *a, **kw: ran.append(a))
    with pytest.raises(BaseforgeError, match=r"app greeter: no source serves 1 locked package\(s\): hello 1:1\.35\.0-4 \(amd64\); "
                                             r"and 1 signed index file\(s\): stable InRelease\. .*127\.0\.0\.1:9/debian/pool/main/b/busybox/"):
        app_packages._install_locked(cell, tmp_path / "raw.tar", tmp_path / "flat.tar", tmp_path)
    assert ran == []
