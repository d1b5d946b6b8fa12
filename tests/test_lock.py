"""Lock files: a locked cell rebuilds bit for bit from its lock, offline, from a snapshot archive, or fails
clearly; `lock --check` sees the mirror move and `lock --update` rebuilds only the cells that changed.

The real parts: a signed apt archive built here (apt-ftparchive + gpg) served on 127.0.0.1, the real
`python3 -m baseforge lock` and `snakemake`, mmdebstrap, and a private Docker Engine. The cells are
``custom``-variant mmdebstrap bootstraps of two tiny packages (chrootless: no dpkg in the image).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from fixtures import aptlock, repos

from baseforge import config, lockfile
from baseforge.errors import BaseforgeError
from baseforge.lockbuild import _key, _snapshots, proxy
from baseforge.spec import CellSpec, Source

ROOT = Path(__file__).resolve().parent.parent
FIX = "fix/stable/default/amd64"
OTHER = "other/stable/default/amd64"

LOCK = """\
# baseforge lock of a/b/c/amd64: ...
epoch\t1717243200
suite\tstable\t2024-06-01T12:00:00Z\t{s}
index\tstable\tmain/binary-amd64/Packages.gz\t{s}\t575
package\tzed\t1:2.0~rc1\tall\tstable\t{s}\t10\tpool/main/z/zed_2.0~rc1_all.deb
package\tabc\t1.0\tamd64\tstable\t{s}\t642\tpool/main/a/abc_1.0_amd64.deb
""".format(s="a" * 64)
#: the same, as a lock of a bookworm cell with curl
BOOKWORM = LOCK.replace("stable", "bookworm").replace("zed", "curl") + "".join(
    f"suite\t{s}\t2024-06-01T12:00:00Z\t{'b' * 64}\n" for s in ("bookworm-updates", "bookworm-security"))


# --- the format, the plan (no root, no network) ---------------------------------------------------------


def test_lock_text_is_sorted_and_round_trips():
    lock = lockfile.parse(LOCK)
    text = lock.text()
    assert lockfile.parse(text).text() == text
    assert [line.split("\t")[1] for line in text.splitlines() if line.startswith("package")] == ["abc", "zed"]
    assert lock.packages[0].cache_name == "zed_1%3a2.0~rc1_all.deb"
    assert lock.suite("stable").snapshot_timestamp == "20240601T120000Z"


def test_lock_key_follows_packages_and_epoch_not_the_release():
    lock = lockfile.parse(LOCK)
    moved = lockfile.parse(LOCK.replace("2024-06-01T12:00:00Z", "2024-07-01T12:00:00Z"))
    assert moved.key == lock.key and moved.text() != lock.text()
    assert lockfile.parse(LOCK.replace("\t1.0\t", "\t1.1\t")).key != lock.key
    assert lockfile.parse(LOCK.replace("1717243200", "1")).key != lock.key
    assert lockfile.changes(lock, lockfile.parse(LOCK.replace("\t1.0\t", "\t1.1\t"))) == ["abc: 1.0 -> 1.1"]


def test_a_broken_lock_names_the_line_and_the_fix():
    with pytest.raises(BaseforgeError, match=r"(?s)x.lock line 3: .*lock --update"):
        lockfile.parse(LOCK.replace("suite\tstable", "suit\tstable"), "x.lock")


def test_a_locked_cell_takes_epoch_and_raw_key_from_its_lock_and_does_not_layer(tmp_path):
    cfg = {"epoch": "release", "mirrors": {"archive": "http://m.invalid/debian", "security": "http://m.invalid/s",
                                               "snapshot": "http://snap.invalid/archive"}, "package_cache": None,
           "images": {"debian": {"releases": ["bookworm"], "variants": ["default", {"name": "big", "packages": ["curl"]}]}}}
    before = config.plan(cfg, tmp_path, resolve_epochs=False).images
    assert before["debian/bookworm/big/amd64"].parent_raw == "minbase"
    assert "lock" not in before["debian/bookworm/default/amd64"].cell.to_dict()  # unlocked params unchanged
    file = lockfile.path(tmp_path, "debian/bookworm/big/amd64")
    file.parent.mkdir(parents=True)
    file.write_text(BOOKWORM)
    img = config.plan(cfg, tmp_path, resolve_epochs=False).images["debian/bookworm/big/amd64"]
    assert img.cell.epoch == img.meta.created == 1717243200 and img.parent_raw is None
    assert img.cell.lock == "config/locks/debian/bookworm/big/amd64.lock" and img.cell.lock_key == lockfile.parse(BOOKWORM).key
    assert img.raw_key.endswith(f"-lock{img.cell.lock_key[:12]}") and img.cell.snapshot == "http://snap.invalid/archive"
    assert CellSpec.from_dict(img.cell.to_dict()) == img.cell
    # a lock that no longer fits its cell's config is refused by the plan, before any job runs
    with pytest.raises(BaseforgeError, match=r"its epoch is 1717243200, the config says 1700000000"):
        config.plan({**cfg, "epoch": 1_700_000_000}, tmp_path, resolve_epochs=False)
    debootstrap = {**cfg, "images": {"debian": {**cfg["images"]["debian"], "bootstrapper": "debootstrap"}}}
    with pytest.raises(BaseforgeError, match=r"debootstrap cells cannot be locked yet"):
        config.plan(debootstrap, tmp_path, resolve_epochs=False)
    with pytest.raises(BaseforgeError, match=r"https://m.invalid/debian is not http://"):
        config.plan({**cfg, "mirrors": {**cfg["mirrors"], "archive": "https://m.invalid/debian"}}, tmp_path, resolve_epochs=False)
    cfg["images"]["debian"]["variants"][1]["packages"] = ["curl", "wget"]
    with pytest.raises(BaseforgeError, match=r"(?s)big/amd64.lock no longer fits .*wget are not locked.*lock --update debian/bookworm/big/amd64"):
        config.plan(cfg, tmp_path, resolve_epochs=False)


def test_proxy_routes_and_snapshot_urls():
    assert _key("http://H:80/debian//pool/a/x_1.0%2bdeb12u1_amd64.deb") == ("h:80", "/debian/pool/a/x_1.0+deb12u1_amd64.deb")
    cell = CellSpec("d", "debian", "bookworm", "default", "amd64", "mmdebstrap", snapshot="http://s.invalid/archive/")
    suite = lockfile.Suite("bookworm-security", "2024-06-01T12:00:00Z", "0" * 64)
    urls = _snapshots(cell, "http://m.invalid/debian-security", suite)
    assert urls[:2] == ["http://s.invalid/archive/debian-security/20240601T120000Z",
                        "http://s.invalid/archive/debian-security/20240601T150000Z"]
    assert _snapshots(CellSpec("d", "debian", "bookworm", "default", "amd64", "mmdebstrap"), "http://m.invalid/debian", suite) == []
    assert Source("http://m.invalid/debian", "bookworm").url.startswith("http://")


def test_the_proxy_answers_only_with_the_gathered_files(tmp_path):
    deb = tmp_path / "x.deb"
    deb.write_bytes(b"locked bytes")
    routes = {_key("http://mirror.invalid/debian/pool/main/x_1.0+b1_amd64.deb"): deb}
    with proxy(routes) as url:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": url}))
        with opener.open("http://mirror.invalid/debian/pool/main/x_1.0%2bb1_amd64.deb", timeout=10) as resp:
            assert resp.read() == b"locked bytes"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            opener.open("http://mirror.invalid/debian/pool/main/y_1.0_amd64.deb", timeout=10)


# --- the whole routine, for real ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys():
    # apt verifies signatures as the _apt user: the keyring must be readable by it (pytest's tmp is 0700)
    where = Path(tempfile.mkdtemp(prefix="bf-lockkeys-"))
    where.chmod(0o755)
    made = {"good": repos.make_key(where, "lock"), "other": repos.make_key(where, "other")}
    yield made
    for k in made.values():
        repos.sh("gpgconf", "--homedir", k.home, "--kill", "gpg-agent")
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture(scope="module")
def key(keys):
    return keys["good"]


def cfg(url: str, key: Path, snapshot: str | None = None) -> str:
    def image(packages, **extra):
        return {"distro": "debian", "releases": ["stable"], "updates": False, "keyrings": [str(key)], "cmd": ["sh"],
                "options": {"mode": "chrootless"}, **extra,
                "variants": [{"name": "default", "bootstrap_variant": "custom", "packages": packages}]}
    return yaml.safe_dump({
        "namespace": "bflock", "mirrors": {"archive": f"{url}/debian", **({"snapshot": snapshot} if snapshot else {})},
        "images": {"fix": image(["fixture-base", "fixture-hello"], epoch="release",
                                checks=["grep -q 'fixture-hello 1.0' /usr/share/fixture-hello/version"]),
                   "other": image(["fixture-base"], epoch=1_700_000_000)},
        "apps": {"hi": {"base": "fix:stable", "context": "apps/hi", "add": {"hi.txt": "/hi.txt"}, "cmd": ["cat", "/hi.txt"],
                        "expect": "hi from the app"}},
    })


def baseforge(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["python3", "-m", "baseforge", *args], cwd=work, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def workdir(workflow, where: Path, config_text: str, locks: Path | None = None, cache: Path | None = None) -> Path:
    work = workflow.make(where, config_text)
    (work / "apps/hi").mkdir(parents=True, exist_ok=True)
    (work / "apps/hi/hi.txt").write_text("hi from the app\n")
    if locks:
        shutil.copytree(locks, work / "config/locks")
    if cache:
        shutil.copytree(cache, work / ".baseforge/cache")
    return work


def built(work: Path, cell: str) -> tuple[str, str]:
    """(rootfs sha256, sha256 of the OCI archive: same bytes, same image ID and manifest digest)."""
    info = json.loads((work / f"build/rootfs/{cell}/rootfs.json").read_text())
    return info["sha256"], hashlib.sha256((work / f"build/oci/{cell}.oci.tar").read_bytes()).hexdigest()


def dry_run(workflow, work: Path, engine: str, *targets: str) -> set[tuple[str, str]]:
    """(rule, first output) of every job a dry run of ``targets`` (default: all) lists."""
    out = workflow.run(work, "-n", *targets, env={"DOCKER_HOST": engine}).stdout
    return {(rule, (re.search(r"^    output: ([^,\n]+)", body, re.MULTILINE) or [None, ""])[1])
            for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", out, re.MULTILINE)}


@pytest.mark.root  # fixture repositories on 127.0.0.1, mmdebstrap/dnf as root (like test_distros)
def test_lock_build_offline_snapshot_missing_and_update(tmp_path, workflow, engine, key):
    archive = aptlock.Archive(tmp_path / "archive", key)
    archive.publish({"fixture-base": "1.0", "fixture-hello": "1.0"})
    snapshots = tmp_path / "snapshots"
    # 1. lock and build (the whole workflow: engine, app, smoke tests); a second lock is byte-identical
    with aptlock.serve(archive.root) as url:
        port = int(url.rsplit(":", 1)[1])
        first = workdir(workflow, tmp_path / "first", cfg(url, key.keyring))
        proc = baseforge(first, "lock")
        assert proc.returncode == 0, proc.stderr
        lock_text = lockfile.path(first, FIX).read_text()
        assert re.search(r"^package\tfixture-hello\t1\.0\tamd64\tstable\t[0-9a-f]{64}\t\d+\tpool/main/fixture-hello_1\.0_amd64\.deb$",
                         lock_text, re.MULTILINE) and "epoch\t1717243200\n" in lock_text
        assert baseforge(first, "lock", "--update").returncode == 0
        assert lockfile.path(first, FIX).read_text() == lock_text
        check = baseforge(first, "lock", "--check")
        assert check.returncode == 0 and f"{FIX}: up to date" in check.stdout, check.stdout + check.stderr
        workflow.run(first)
        want = built(first, FIX)
        with tarfile.open(first / f"build/rootfs/{FIX}/rootfs.tar") as tf:
            # the image names the configured mirror, and keeps nothing of the locked build's apt proxy
            assert tf.extractfile("etc/apt/sources.list").read().decode() == f"deb {url}/debian stable main\n"
            assert not [n for n in tf.getnames() if "baseforge" in n]
            assert tf.extractfile("usr/share/fixture-hello/version").read() == b"fixture-hello 1.0\n"
        image_id = json.loads((first / f"build/engine/{FIX}.json").read_text())["image_id"]
        assert "PASS" in (first / "build/smoke/apps/hi.ok").read_text()
        # 2. the mirror moves on: fixture-hello 2.0 replaces 1.0 (a snapshot service keeps the old state)
        archive.snapshot(snapshots, "20240601T120000Z")
        archive.publish({"fixture-hello": "2.0"}, date="Mon, 01 Jul 2024 12:00:00 UTC")
        # 3. lock --check says exactly what moved
        check = baseforge(first, "lock", "--check")
        assert check.returncode == 1, check.stdout + check.stderr
        assert re.findall(r"^  ([^ :]+): (\S+) -> (\S+)$", check.stdout, re.MULTILINE) == [("fixture-hello", "1.0", "2.0")]
        assert f"{FIX}: the mirror has moved" in check.stdout
    # 3. ... and the unchanged lock rebuilds byte-identical from the package cache, the mirror's port closed
    offline = workdir(workflow, tmp_path / "offline", cfg(url, key.keyring), first / "config/locks", first / ".baseforge/cache")
    workflow.run(offline, f"build/oci/{FIX}.oci.tar")
    assert built(offline, FIX) == want
    with aptlock.serve(archive.root, port), aptlock.serve(snapshots) as snap:
        # 4. no package cache, a mirror that moved on, and a snapshot archive that kept the old version
        fresh = workdir(workflow, tmp_path / "snap", cfg(url, key.keyring, f"{snap}/archive"), first / "config/locks")
        tampered = fresh / ".baseforge/cache/debs/fixture-hello_1.0_amd64.deb"  # is not trusted, and is repaired
        tampered.parent.mkdir(parents=True)
        tampered.write_bytes(b"not the locked package")
        workflow.run(fresh, f"build/oci/{FIX}.oci.tar")
        assert built(fresh, FIX) == want
        assert hashlib.sha256(tampered.read_bytes()).hexdigest() == next(
            p.sha256 for p in lockfile.read(lockfile.path(first, FIX)).packages if p.name == "fixture-hello")
        # 5. neither: one clear error before the bootstrap, and nothing at any output path
        none = workdir(workflow, tmp_path / "none", cfg(url, key.keyring), first / "config/locks")
        proc = workflow.run(none, f"build/oci/{FIX}.oci.tar", check=False)
        assert proc.returncode != 0
        # the job's paragraph (baseforge.faults): step and raw bootstrap, then the cause
        assert re.search(rf"baseforge: bootstrap fix/stable/amd64/\S+ failed: cell {FIX}: no source serves 1 locked package\(s\): fixture-hello 1\.0 \(amd64\); "
                         rf"and 2 signed index file\(s\): stable InRelease, stable main/binary-amd64/Packages.gz\. "
                         rf"For fixture-hello 1\.0 \(amd64\) the sources tried were: \S+/\.baseforge/cache/debs/fixture-hello_1\.0_amd64\.deb: "
                         rf"not there \(or another sha256\); "
                         rf"{re.escape(url)}/debian/pool/main/fixture-hello_1\.0_amd64\.deb: HTTP 404 File not found; "
                         rf"no snapshot archive \(mirrors\.snapshot is not set\)", proc.stderr), proc.stderr
        assert "mirrors.snapshot" in proc.stderr and "package cache" in proc.stderr
        (log,) = (none / "logs/bootstrap/fix/stable/amd64").glob("*.log")
        assert "$ mmdebstrap" not in log.read_text()  # failed before the bootstrapper ran
        assert not [p for p in (none / "build").rglob("*") if p.is_file()]
        # 6. lock --update, then the job list: that cell and its app, nothing of the other cell
        assert baseforge(first, "lock", "--update").returncode == 0
    assert "fixture-hello\t2.0" in lockfile.path(first, FIX).read_text()
    jobs = dry_run(workflow, first, engine)
    outputs = {o for _, o in jobs}
    assert ("bootstrap", next(o for o in outputs if o.startswith("build/raw/fix/"))) in jobs
    assert {"bootstrap", "pack", "image", "load", "smoketest", "app_image", "app_load", "smoketest_app"} <= {r for r, _ in jobs}
    assert not [o for o in outputs if "/other/" in o], jobs
    assert image_id.startswith("sha256:")


def rocky(url: str, key: Path) -> str:
    return yaml.safe_dump({"namespace": "bflockrpm", "epoch": 1_700_000_000, "images": {"rocky": {
        "releases": ["9"], "keyrings": [str(key)], "cmd": ["sh"], "options": {"mirror": f"{url}/rocky"},
        "variants": [{"name": "default", "packages": ["fixture-shell"]}]}}})


@pytest.mark.root  # fixture repositories on 127.0.0.1, mmdebstrap/dnf as root (like test_distros)
def test_rpm_lock_build_offline_missing_and_signatures(tmp_path, workflow, keys):
    """dnf cells: the same lock format (exact NEVRAs), the same offline rebuild and error; signatures checked."""
    cell, target = "rocky/9/default/amd64", "build/oci/rocky/9/default/amd64.oci.tar"
    mirror = repos.rpm_repo(tmp_path / "rpm", keys["good"], "rocky", "9.4", "rocky/9/BaseOS/x86_64/os",
                            empty=("rocky/9/AppStream/x86_64/os",))
    with aptlock.serve(mirror) as url:
        first = workflow.make(tmp_path / "first", rocky(url, keys["good"].armored))
        proc = baseforge(first, "lock")
        assert proc.returncode == 0, proc.stderr[-3000:]
        text = lockfile.path(first, cell).read_text()
        assert re.search(r"^package\tfixture-shell\t1\.0-1\tx86_64\tBaseOS\t[0-9a-f]{64}\t\d+\tPackages/fixture-shell-1\.0-1\.x86_64\.rpm$",
                         text, re.MULTILINE), text
        assert "\nsuite\tAppStream\t" in text and "\nsuite\tBaseOS\t" in text
        workflow.run(first, target)
        want = built(first, cell)
        # the same lock with another key: dnf refuses the packages (their signatures are checked)
        other = workflow.make(tmp_path / "other", rocky(url, keys["other"].armored))
        shutil.copytree(first / "config/locks", other / "config/locks")
        proc = workflow.run(other, target, check=False)
        assert proc.returncode != 0 and not (other / target).exists()
        assert "GPG check FAILED" in "".join(p.read_text() for p in (other / "logs/bootstrap").rglob("*.log"))
    # the mirror's port closed: the rpm cache serves the lock, byte-identical
    offline = workflow.make(tmp_path / "offline", rocky(url, keys["good"].armored))
    shutil.copytree(first / "config/locks", offline / "config/locks")
    shutil.copytree(first / ".baseforge/cache", offline / ".baseforge/cache")
    workflow.run(offline, target)
    assert built(offline, cell) == want
    # neither: the error names the package and the sources tried, and nothing is left at an output path
    none = workflow.make(tmp_path / "none", rocky(url, keys["good"].armored))
    shutil.copytree(first / "config/locks", none / "config/locks")
    proc = workflow.run(none, target, check=False)
    assert re.search(rf"baseforge: bootstrap rocky/9/amd64/\S+ failed: cell {cell}: no source serves 2 locked package\(s\): fixture-release 9\.4-1 \(noarch\), "
                     rf"fixture-shell 1\.0-1 \(x86_64\)\. For fixture-release 9\.4-1 \(noarch\) the sources tried were: "
                     rf"\S+/rpms/fixture-release-9\.4-1\.noarch\.rpm: not there \(or another sha256\); "
                     rf"{re.escape(url)}/rocky/9/BaseOS/x86_64/os/Packages/fixture-release-9\.4-1\.noarch\.rpm: ", proc.stderr), proc.stderr
    assert not [p for p in (none / "build").rglob("*") if p.is_file()]
