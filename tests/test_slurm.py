"""Cluster execution on a real SLURM: `snakemake --profile profiles/slurm` run by an ordinary user.

The test starts its own single-node SLURM (tests/slurm/slurm.sh) and runs the workflow as the unprivileged
user `bfuser` from a venv in /tmp (/usr/bin/python3; bfuser cannot read the pyenv Python under /root) with
baseforge installed from a copy of this repository, in a work directory bfuser owns. bootstrap, pack and
image must run as SLURM jobs of bfuser (rootless: mmdebstrap --mode=unshare), the engine rules on this
host, and the rootfs.tar bytes must equal those of the same cells built by root, locally.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import docker
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slurm, pytest.mark.root]

ROOT = Path(__file__).resolve().parent.parent
SLURM_SH = ROOT / "tests/slurm/slurm.sh"
USER = os.environ.get("SLURM_TEST_USER", "bfuser")
VENV = Path(os.environ.get("SNAKEMAKE_VENV", "/tmp/baseforge-slurm-venv"))
SNAKEMAKE_VERSION = "9.27.1"
ENGINE_GROUP = "bfengine"  # the socket group of the test's own engine (a site would set BASEFORGE_ENGINE_GROUP)
# A fixed epoch: both builds must not depend on asking a mirror for its Release date.
CONFIG = """
namespace: bfslurm
epoch: 1700000000
package_cache: .baseforge/cache/debs
images:
  debian:
    releases: [bookworm]
    variants: [default, {name: web, packages: [hello]}]   # web: layered on default, rootless too
    checks: [apt-get --version]
  busybox:
    releases: [bookworm]
    cmd: [sh]
    checks: ["busybox --help >/dev/null"]
"""
CELLS = ("debian/bookworm/default/amd64", "debian/bookworm/web/amd64", "busybox/bookworm/default/amd64")
CLUSTER_RULES = {"bootstrap", "pack", "image"}
ENGINE_RULES = {"load", "smoketest", "summary", "sbom", "all"}


def sh(*argv, check=True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def slurm():
    """A running single-node SLURM: install (idempotent), start, yield its environment, stop."""
    if os.geteuid() != 0:
        pytest.fail("the SLURM test starts slurmctld/slurmd/slurmdbd and must run as root")
    install = sh(SLURM_SH, "install", check=False)
    if install.returncode != 0:
        pytest.fail(f"tests/slurm/slurm.sh install failed:\n{install.stderr[-3000:]}")
    state = Path(tempfile.mkdtemp(prefix="bf-slurm-", dir="/tmp"))  # world-searchable parents for bfuser
    state.chmod(0o755)
    start = sh(SLURM_SH, "start", state, check=False)
    if start.returncode != 0:
        sh(SLURM_SH, "stop", state, check=False)
        pytest.fail(f"SLURM could not be started (tests/slurm/slurm.sh start {state}):\n{start.stderr[-4000:]}")
    env = dict(re.findall(r"^export (\w+)=(.*)$", start.stdout, re.MULTILINE))
    try:
        yield env
    finally:
        stop = sh(SLURM_SH, "stop", state, check=False)
        if stop.returncode == 0:
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster_engine(tmp_path_factory):
    """A private engine whose socket group is ENGINE_GROUP, as a site lets its cluster users in
    (BASEFORGE_ENGINE_GROUP): every other engine here is root only, so the test starts its own.
    DOCKER_HOST names it for the module (the local root build loads into it too)."""
    from baseforge import daemon

    try:
        grp.getgrnam(ENGINE_GROUP)
        made_group = False
    except KeyError:
        made_group = bool(sh("groupadd", "--system", ENGINE_GROUP))
    run_dir = Path(tempfile.mkdtemp(prefix="bf-", dir="/tmp"))  # short: unix socket paths are limited
    before = os.environ.get("DOCKER_HOST")
    data = tmp_path_factory.mktemp("cluster-engine")
    url = daemon.start(data, run_dir, group=ENGINE_GROUP)
    os.environ["DOCKER_HOST"] = url
    try:
        yield url
    finally:
        daemon.stop(run_dir, data)
        shutil.rmtree(run_dir, ignore_errors=True)
        if made_group:  # leave the host as it was
            sh("groupdel", ENGINE_GROUP, check=False)
        if before is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = before


def ensure_user_setup(engine_url: str) -> list[list[str]]:
    """bfuser: subordinate ids for mmdebstrap --mode=unshare, and the engine socket through its group.

    Returns the commands that undo what was changed on the host (run them in reverse order afterwards)."""
    undo: list[list[str]] = []
    for path in ("/etc/subuid", "/etc/subgid"):
        text = Path(path).read_text() if Path(path).exists() else ""
        if not any(line.split(":")[0] == USER for line in text.splitlines()):
            flag = "--add-subuids" if path.endswith("uid") else "--add-subgids"
            sh("usermod", flag, "200000-265535", USER)
            undo.append(["usermod", flag.replace("--add-", "--del-"), "200000-265535", USER])
    sock = Path(engine_url.removeprefix("unix://"))
    group = grp.getgrgid(sock.stat().st_gid).gr_name
    assert group == ENGINE_GROUP, f"the engine socket {sock} belongs to group {group}, not {ENGINE_GROUP}"
    if USER not in grp.getgrnam(group).gr_mem:
        sh("usermod", "-aG", group, USER)
        undo.append(["gpasswd", "-d", USER, group])
    if not sock.stat().st_mode & stat.S_IWGRP:
        pytest.fail(f"the engine socket {sock} is not group-writable")
    for parent in sock.parents:  # e.g. a private engine's mkdtemp folder (0700)
        mode = stat.S_IMODE(parent.stat().st_mode)
        if parent != Path("/") and not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
            undo.append(["chmod", f"{mode:o}", str(parent)])
    return undo


def safe_root_dir(path: Path) -> bool:
    """Is ``path`` a real directory that only root can change? (A predictable /tmp path someone else made,
    or made writable, could hold code root would run.)"""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022


def ensure_venv() -> None:
    """/tmp venv with snakemake, the SLURM plugin and baseforge installed (not editable) from a copy."""
    pip = [VENV / "bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if not all(safe_root_dir(d) for d in (VENV, VENV / "bin")):  # never run what someone else put there
        if VENV.is_symlink() or VENV.is_file():
            VENV.unlink()
        shutil.rmtree(VENV, ignore_errors=True)
    if not (VENV / "bin/snakemake").exists() or sh(VENV / "bin/python", "-c", "import snakemake_executor_plugin_slurm",
                                                    check=False).returncode:
        sh("/usr/bin/python3", "-m", "venv", VENV)
        sh(*pip, f"snakemake=={SNAKEMAKE_VERSION}", "snakemake-executor-plugin-slurm")
    # baseforge's dependencies, as pyproject.toml lists them (snakemake is pinned above)
    deps = [d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
            if not d.startswith("snakemake")]
    if sh(VENV / "bin/python", "-m", "pip", "install", "-q", "--dry-run", "--no-index", *deps, check=False).returncode:
        sh(*pip, *deps)
    with tempfile.TemporaryDirectory(prefix="bf-src-") as src:
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src)
        shutil.copytree(ROOT / "baseforge", Path(src) / "baseforge", ignore=shutil.ignore_patterns("__pycache__"))
        sh(*pip, "--no-deps", "--force-reinstall", src)
    sh("chmod", "-R", "a+rX", VENV)


def as_user(env: dict, *argv, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run argv as bfuser with a clean environment (nothing of root's pyenv) plus ``env``."""
    home = pwd.getpwnam(USER).pw_dir
    base = {"PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": home, "LANG": "C.UTF-8"}
    envargs = [f"{k}={v}" for k, v in {**base, **env}.items()]
    return subprocess.run(["runuser", "-u", USER, "--", "env", "-i", *envargs, *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def cluster_run(slurm, cluster_engine, workflow, tmp_path_factory):
    """The matrix built through SLURM by bfuser, and the same matrix built locally by root."""
    undo = ensure_user_setup(cluster_engine)
    try:
        yield from _cluster_run(cluster_engine, workflow, tmp_path_factory, slurm)
    finally:
        for argv in reversed(undo):  # leave the host as it was: group membership, subids, directory modes
            sh(*argv, check=False)


def _cluster_run(engine, workflow, tmp_path_factory, slurm):
    ensure_venv()
    top = Path(tempfile.mkdtemp(prefix="bf-slurm-work-", dir="/tmp"))
    top.chmod(0o755)
    work = workflow.make(top / "work", CONFIG)
    shutil.copytree(ROOT / "profiles", work / "profiles")
    (top / "cache").mkdir()
    sh("chown", "-R", f"{USER}:", top)
    env = {
        "SLURM_CONF": slurm["SLURM_CONF"],
        "DOCKER_HOST": engine,
        "SNAKEMAKE_OUTPUT_CACHE": str(top / "cache"),
        "BASEFORGE_SLURM_ACCOUNT": slurm["SLURM_TEST_ACCOUNT"],
        "BASEFORGE_SLURM_PARTITION": slurm["SLURM_TEST_PARTITION"],
    }
    t0 = time.monotonic()
    # the plugin waits 40 s before its first status check by default; this cluster answers at once
    proc = as_user(env, "snakemake", "--profile", "profiles/slurm", "--slurm-init-seconds-before-status-checks", "2",
                   cwd=work)
    slurm_seconds = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    (top / "snakemake.log").write_text(log)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake --profile profiles/slurm as {USER} failed ({proc.returncode}):\n{log[-8000:]}")

    local = workflow.make(tmp_path_factory.mktemp("slurm-local"), CONFIG)
    t0 = time.monotonic()
    workflow.run(local)
    local_seconds = time.monotonic() - t0
    sys.stderr.write(f"\ntest_slurm: same matrix ({len(CELLS)} cells): local as root {local_seconds:.0f}s, "
                     f"through SLURM as {USER} {slurm_seconds:.0f}s\n")
    yield type("Run", (), {"work": work, "local": local, "log": log, "env": env, "top": top,
                           "seconds": {"local": local_seconds, "slurm": slurm_seconds}})
    if not os.environ.get("BASEFORGE_KEEP"):  # BASEFORGE_KEEP=1: keep the work directory to look at
        shutil.rmtree(top, ignore_errors=True)


def slurm_jobs(log: str) -> dict[str, str]:
    """SLURM job id -> rule, from the plugin's "submitted with SLURM jobid N (log: …/rule_R/…)" lines."""
    return {jid: rule for jid, rule in re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_([a-z_]+)/", log)}


def sacct(jobid: str, env: dict) -> list[str]:
    """JobID|User|State|NodeList of a finished job (accounting is asynchronous: poll a little)."""
    for _ in range(50):
        line = sh("sacct", "-j", jobid, "-X", "-n", "-P", "--format=JobID,User,State,NodeList", env={**os.environ, **env}).stdout
        if line.strip() and "COMPLETED" in line:
            break
        time.sleep(0.2)
    return line.strip().split("|")


def test_bootstrap_pack_image_ran_as_slurm_jobs_of_the_user(cluster_run, slurm):
    jobs = slurm_jobs(cluster_run.log)
    rules = sorted(jobs.values())
    assert rules.count("bootstrap") == 3 and rules.count("pack") == 3 and rules.count("image") == 3, rules
    assert not set(rules) & ENGINE_RULES, f"engine rules were submitted to SLURM: {rules}"
    for jid in jobs:
        job, user, state, node = sacct(jid, slurm)
        assert (job, user, state) == (jid, USER, "COMPLETED")
        assert node == os.uname().nodename.split(".")[0]


def test_engine_rules_ran_on_the_submit_host(cluster_run):
    local = set(re.findall(r"^localrule (\w+):", cluster_run.log, re.MULTILINE))
    assert {"load", "smoketest", "summary"} <= local, local
    assert not local & CLUSTER_RULES


def test_bootstrap_was_rootless(cluster_run):
    log = (cluster_run.work / "logs/bootstrap/debian/bookworm/amd64").glob("*.log")
    text = "".join(p.read_text() for p in log)
    assert "--mode=unshare" in text and "--mode=root" not in text
    for cell in CELLS:
        tar = cluster_run.work / f"build/rootfs/{cell}/rootfs.tar"
        assert pwd.getpwuid(tar.resolve().stat().st_uid).pw_name == USER


def test_images_are_in_the_engine_and_pass_their_smoke_tests(cluster_run, cluster_engine):
    client = docker.DockerClient(base_url=cluster_engine)
    for cell in CELLS:
        rec = json.loads((cluster_run.work / f"build/engine/{cell}.json").read_text())
        assert client.images.get(rec["image_id"]).id == rec["image_id"]
        report = (cluster_run.work / f"build/smoke/{cell}.ok").read_text().splitlines()
        assert report and all(line.startswith(("image\t", "PASS\t")) for line in report), report
    assert len((cluster_run.work / "results/images.tsv").read_text().splitlines()) == 1 + len(CELLS)


def test_rootfs_bytes_equal_a_local_root_build(cluster_run):
    for cell in CELLS:
        ours = cluster_run.work / f"build/rootfs/{cell}/rootfs.tar"
        theirs = cluster_run.local / f"build/rootfs/{cell}/rootfs.tar"
        assert sha256(ours) == sha256(theirs), cell
        oci = [json.loads((w / f"build/oci/{cell}.json").read_text())["image_id"] for w in (cluster_run.work, cluster_run.local)]
        assert oci[0] == oci[1], cell
    raw = "build/raw/debian/bookworm/amd64"
    assert len(list((cluster_run.local / raw).glob("*.tar"))) == 2  # default, and web layered on it
    for tar in (cluster_run.local / raw).glob("*.tar"):
        assert sha256(cluster_run.work / raw / tar.name) == sha256(tar), f"mmdebstrap unshare vs root: {tar.name}"


def test_cached_rules_were_stored_in_the_between_workflow_cache(cluster_run):
    # the profile names the rules (a bare --cache is not passed on to cluster jobs)
    # one entry per output file: bootstrap 1 (raw tar), pack 3 (tar, manifest, info), sbom 2 (sbom, provenance),
    # image 2 (archive, info), smoketest 1 (report)
    assert len(list((cluster_run.top / "cache").iterdir())) == (1 + 3 + 2 + 2 + 1) * len(CELLS)


def test_doctor_on_a_node(cluster_run, slurm):
    proc = as_user(cluster_run.env, "srun", "-A", slurm["SLURM_TEST_ACCOUNT"], "-p", slurm["SLURM_TEST_PARTITION"],
                   "python3", "-m", "baseforge", "doctor", "--on-node", cwd=cluster_run.work, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^engine\s+-\s+not needed on a cluster node", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(r"^rootless \(subuid/subgid\)\s+ok\s+bfuser", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(r"^cache \S+/build\s+ok", proc.stdout, re.MULTILINE), proc.stdout


def test_a_user_without_subids_gets_a_clear_message_before_mmdebstrap(cluster_run):
    # `nobody` has no /etc/subuid range: the bootstrap must stop before running mmdebstrap, saying what to do
    code = "from baseforge.bootstrap.mmdebstrap import mode\ntry:\n    mode()\nexcept Exception as e:\n    print(e)"
    proc = subprocess.run(["runuser", "-u", "nobody", "--", VENV / "bin/python", "-c", code], cwd="/", check=False,
                          capture_output=True, text=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert "rootless bootstrap (mmdebstrap --mode=unshare) as nobody needs subordinate uids" in proc.stdout, proc
    assert "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 nobody" in proc.stdout
