"""Faults injected into real runs: each failure is named on the console in one ``baseforge:`` paragraph
(step, cell, the tool's own error lines or the system's, what to do), a failed run ends with the list of
failed jobs, and a killed run leaves nothing the next run (the README's command) does not clean up.

The matrix is one busybox cell (Debian's busybox-static from the real archive): a cold build takes seconds.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from baseforge import faults
from baseforge.bootstrap import scratch_dir
from baseforge.run import run
from baseforge.scratch import MARKER, owner_alive

ROOT = Path(__file__).resolve().parent.parent
RAW = "build/raw/busybox/bookworm/amd64/minbase.tar"
CELL = "busybox/bookworm/amd64/minbase"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")


def config(extra: str = "", epoch: str = "release") -> str:
    return f"namespace: faults\nepoch: {epoch}\npackage_cache: null\n{extra}images:\n  busybox:\n    releases: [bookworm]\n    cmd: [sh]\n"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make(workflow, path: Path, text: str) -> Path:
    work = workflow.make(path, text)
    shutil.copytree(ROOT / "profiles/default", work / "profiles/default")  # a clone has it: rerun-incomplete
    return work


def leftovers(work: Path, ours: tuple[Path, ...] = ()) -> list[str]:
    """Scratch of this work directory that is still there: bootstrap trees, temporary files, mounts (but
    the test's own, ``ours``)."""
    out = [str(p) for p in (work / "build").rglob(".bootstrap-*")] + [str(p) for p in (work / "build").rglob(".*.tmp")]
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    return out + [m for m in mounts if str(work) in m and m not in map(str, ours)]


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size, where): a small tmpfs, unmounted after the test."""
    mounted = []

    def mount(size: str, where: Path) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", where], check=True)
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "--lazy", where], check=False)


# -- the explanation itself (no workflow) ---------------------------------------------------------------


def test_a_failing_tool_shows_its_own_error_lines_and_not_its_command_line(capfd):
    script = "echo 'Get:1 progress' >&2; echo 'E: Unable to locate package nosuch' >&2; exit 100"
    with pytest.raises(faults.ToolError) as exc:
        run(["sh", "-c", script])
    assert str(exc.value).startswith("sh exited with code 100:\n    E: Unable to locate package nosuch\n  hint: a package name")
    assert "exit 100" not in str(exc.value)  # the argv is for the log
    assert "Get:1 progress" in capfd.readouterr().err  # the tool's whole output still reaches the job's log


def test_a_plugin_running_a_tool_itself_gets_the_same_paragraph():
    err = subprocess.CalledProcessError(2, ["/usr/bin/dnf", "--installroot=/x", "install", "nosuch"], output=b"",
                                        stderr=b"Last metadata expiration check\nNo match for argument: nosuch\nError: Unable to find a match: nosuch\n")
    text = faults.paragraph("bootstrap", "rocky/9/amd64/minbase", err)
    assert text.startswith("baseforge: bootstrap rocky/9/amd64/minbase failed: dnf exited with code 2:\n"
                           "    No match for argument: nosuch\n    Error: Unable to find a match: nosuch\n  hint: a package name")
    assert "--installroot" not in text


def test_a_full_file_system_says_where_and_what_is_free(tmp_path):
    err = OSError(28, "No space left on device", str(tmp_path / "build/rootfs.tar"))
    text = faults.paragraph("pack", "debian/bookworm/default/amd64", err, [], "logs/pack.log")
    assert text.startswith(f"baseforge: pack debian/bookworm/default/amd64 failed: No space left on device ({tmp_path}/build/rootfs.tar)\n")
    assert re.search(rf"\n    {re.escape(str(tmp_path))}: [\d.]+ \w+ free of [\d.]+ \w+( \(file system mounted at /.*\))?\n", text), text
    assert "hint: free space there" in text


def test_an_engine_that_drops_the_connection_is_named():
    import requests
    import urllib3

    err = requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")))
    text = faults.paragraph("load", "busybox/bookworm/default/amd64", err)
    assert "baseforge: load busybox/bookworm/default/amd64 failed: the Docker Engine at " in text
    assert "stopped answering" in text and "hint: check that dockerd runs" in text


def test_the_run_summary_lists_this_runs_failures_in_one_line_each(tmp_path):
    faults.record("bootstrap", "a/b", faults.ToolError("mmdebstrap", 1, "E: Unable to locate package x\nE: failed"), tmp_path)
    faults.record("push", "c", OSError(111, "Connection refused"), tmp_path)
    assert faults.summary(0, tmp_path) == (
        "baseforge: 2 jobs failed:\n"
        "  - bootstrap a/b: mmdebstrap exited with code 1: E: Unable to locate package x\n"
        "  - push c: Connection refused\n")
    faults.forget("push", "c", tmp_path)
    assert "push" not in faults.summary(0, tmp_path)


FINDINGS = [
    ("W: GPG error: http://127.0.0.1:8/debian bookworm InRelease: The following signatures were invalid: BADSIG 6ED0E7B82643E131\n"
     "E: The repository 'http://127.0.0.1:8/debian bookworm InRelease' is not signed.",
     "signature verification failed for suite bookworm of the mirror http://127.0.0.1:8/debian",
     "the repository's signature does not verify"),
    ("E: Failed to fetch http://127.0.0.1:8/debian/pool/main/b/busybox/busybox-static_1_amd64.deb  Hash Sum mismatch\n"
     "   Hashes of expected file:\n",
     "http://127.0.0.1:8/debian/pool/main/b/busybox/busybox-static_1_amd64.deb does not match the checksum of the mirror's index",
     "does not match its signed index"),
    ("E: Failed to fetch http://127.0.0.1:8/debian/pool/x.deb  404  Not Found [IP: 127.0.0.1 8]",
     "http://127.0.0.1:8/debian/pool/x.deb: 404 Not Found", "the mirror lacks a file its index names"),
    ("Err:1 http://mirror.example.invalid/debian bookworm InRelease\n  Could not resolve 'mirror.example.invalid'",
     "the host name mirror.example.invalid does not resolve", "a server is not reachable"),
    ('time="2024-01-01T00:00:00Z" level=fatal msg="copying system image: pinging container registry 127.0.0.1:9: '
     'Get \\"https://127.0.0.1:9/v2/\\": dial tcp 127.0.0.1:9: connect: connection refused"',
     "127.0.0.1:9: connection refused", "a server is not reachable"),
    ('time="2024-01-01T00:00:00Z" level=fatal msg="trying to reuse blob sha256:4dcb at destination: checking whether a blob '
     'sha256:4dcb exists in 127.0.0.1:9/faults/busybox: unauthorized: authentication required"',
     "the registry refused access to 127.0.0.1:9/faults/busybox: unauthorized", "credentials"),
    ('time="2024-01-01T00:00:00Z" level=fatal msg="copying image 1/1 from manifest list: writing blob: initiating layer upload '
     'to /v2/faults/busybox/blobs/uploads/ in 127.0.0.1:9: received unexpected HTTP status: 500 Internal Server Error"',
     "the registry 127.0.0.1:9 failed on its side: HTTP 500 Internal Server Error", "HTTP 5xx"),
    ('time="2024-01-01T00:00:00Z" level=fatal msg="creating signature: key \\"0123ABCD\\" not found"',
     'signing failed: key "0123ABCD" not found', "check registry.sign"),
    ('time="2024-01-01T00:00:00Z" level=fatal msg="creating signature: signing data: Bad passphrase"',
     "signing failed: signing data: Bad passphrase", "passphrase_file"),
]


@pytest.mark.parametrize("output, headline, hint", FINDINGS, ids=["signature", "checksum", "404", "dns", "refused", "401", "500", "no-key", "passphrase"])
def test_a_tools_failure_is_headed_by_its_cause_naming_what_it_is_about(output, headline, hint):
    err = faults.ToolError("mmdebstrap", 25, output)
    assert err.message.startswith(f"mmdebstrap exited with code 25: {headline}\n    "), err.message
    assert hint is None or hint in err.hint
    assert faults.one_line("bootstrap", "debian/bookworm/amd64/minbase", err) == \
        f"bootstrap debian/bookworm/amd64/minbase: mmdebstrap exited with code 25: {headline}"


def test_a_failed_jobs_log_is_kept_where_the_summary_says(tmp_path):
    log = tmp_path / "logs/bootstrap/a.log"
    log.parent.mkdir(parents=True)
    log.write_text("$ mmdebstrap --variant=minbase …\nE: Unable to locate package nosuch\n")
    kept = faults.record("bootstrap", "a/b", faults.ToolError("mmdebstrap", 1, "E: Unable to locate package nosuch"),
                         tmp_path / "failures", log=str(log))
    log.unlink()  # Snakemake deletes it when the job runs again
    assert kept.read_text().startswith("$ mmdebstrap --variant=minbase")
    assert faults.summary(0, tmp_path / "failures") == (
        "baseforge: 1 job failed:\n"
        "  - bootstrap a/b: mmdebstrap exited with code 1: E: Unable to locate package nosuch\n"
        f"    log: {kept}\n")
    faults.forget("bootstrap", "a/b", tmp_path / "failures")
    assert not kept.exists()


# -- faults in real runs ----------------------------------------------------------------------------------


def assert_named(proc, *needles: str) -> str:
    """The console's baseforge: paragraph of the failed job holds every needle; returns it."""
    console = proc.stdout + proc.stderr
    assert proc.returncode != 0, console[-3000:]
    paragraphs = re.findall(r"^baseforge: \S+ \S+ failed: .*(?:\n  .*)*", console, re.MULTILINE)
    assert paragraphs, console[-3000:]
    for needle in needles:
        assert any(needle.lower() in p.lower() for p in paragraphs), (needle, paragraphs)
    assert "baseforge: 1 job failed:\n  - " in console, console[-2000:]
    return "\n".join(paragraphs)


@pytest.mark.e2e
def test_a_mirror_on_a_closed_port_is_named(tmp_path, workflow):
    dead = f"http://127.0.0.1:{closed_port()}"
    work = make(workflow, tmp_path / "w", config(f"mirrors: {{archive: {dead}/debian, security: {dead}/debian-security}}\n",
                                                 epoch="1700000000"))
    proc = workflow.run(work, RAW, check=False, env={"BASEFORGE_TMPDIR": str(tmp_path / "scratch")})
    text = assert_named(proc, f"bootstrap {CELL} failed: mmdebstrap exited with code", "connection refused",
                        "hint: a server is not reachable")
    assert "--variant=extract" not in text  # the command line is in the log only
    assert "--variant=extract" in (work / "logs/bootstrap/busybox/bookworm/amd64/minbase.log").read_text()
    assert not leftovers(work) and not list((tmp_path / "scratch").iterdir())


@pytest.mark.e2e
@root_only
def test_a_full_scratch_file_system_is_named_with_what_is_free(tmp_path, workflow, tmpfs):
    scratch = tmpfs("512k", tmp_path / "scratch")
    work = make(workflow, tmp_path / "w", config(epoch="1700000000"))
    proc = workflow.run(work, RAW, check=False, env={"BASEFORGE_TMPDIR": str(scratch)})
    text = assert_named(proc, "no space left on device", f"{scratch}", "free of 512.0 KiB")
    assert "hint: free space there" in text
    assert not leftovers(work) and not list(scratch.iterdir())


@pytest.mark.e2e
@root_only
def test_a_full_build_file_system_during_the_bootstrap_is_named(tmp_path, workflow, tmpfs):
    # (mmdebstrap then sends SIGHUP to its whole process group: it must not be Snakemake's)
    work = make(workflow, tmp_path / "w", config(epoch="1700000000"))
    build = tmpfs("1m", work / "build")
    proc = workflow.run(work, RAW, check=False, env={"BASEFORGE_TMPDIR": str(tmp_path / "scratch")})
    # (mmdebstrap's SIGHUP ends its namespace too: "mmdebstrap was killed by SIGHUP")
    assert_named(proc, f"bootstrap {CELL} failed: mmdebstrap ", "no space left on device",
                 f"free of 1.0 MiB (file system mounted at {build})")
    assert not leftovers(work, ours=(build,)) and not list((tmp_path / "scratch").iterdir())
    locks = work / ".snakemake/locks"
    assert not (locks.is_dir() and list(locks.iterdir()))  # Snakemake ended as it should, not by a signal


@pytest.mark.e2e
@root_only
def test_a_full_build_file_system_during_pack_is_named(tmp_path, workflow, tmpfs):
    work = make(workflow, tmp_path / "w", config(epoch="1700000000"))
    workflow.run(work, RAW)
    rootfs = tmpfs("64k", work / "build/rootfs")
    proc = workflow.run(work, "build/rootfs/busybox/bookworm/default/amd64/rootfs.tar", check=False)
    assert_named(proc, "pack busybox/bookworm/default/amd64 failed: No space left on device",
                 f"free of 64.0 KiB (file system mounted at {rootfs})")
    assert not leftovers(work, ours=(rootfs,))


class DyingEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A Docker Engine API that answers until an image is loaded, then drops the connection mid-stream
    (what a dockerd that dies during `docker load` does to its client)."""

    daemon_threads = True

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def address_string(self):
            return "engine"

        def log_message(self, *args):
            pass

        def reply(self, code: int, body: dict | str) -> None:
            data = (json.dumps(body) if isinstance(body, dict) else body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.endswith("/_ping"):
                self.reply(200, "OK")
            elif self.path.endswith("/version"):
                self.reply(200, {"ApiVersion": "1.43", "Version": "24.0.0", "MinAPIVersion": "1.12"})
            else:
                self.reply(404, {"message": "No such image"})

        def do_HEAD(self):
            self.do_GET()

        def do_POST(self):
            self.rfile.read1(65536)  # the start of the image, then the engine is gone
            self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()


@pytest.mark.e2e
def test_an_engine_that_dies_during_the_load_is_named(tmp_path, workflow):
    work = make(workflow, tmp_path / "w", config(epoch="1700000000"))
    sock_dir = Path(tempfile.mkdtemp(prefix="bf-eng-", dir="/tmp"))  # unix socket paths are short
    server = DyingEngine(str(sock_dir / "docker.sock"), DyingEngine.Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = workflow.run(work, "build/engine/busybox/bookworm/default/amd64.json", check=False,
                            env={"DOCKER_HOST": f"unix://{sock_dir}/docker.sock"})
    finally:
        server.shutdown()
        shutil.rmtree(sock_dir, ignore_errors=True)
    assert_named(proc, "load busybox/bookworm/default/amd64 failed: the Docker Engine at unix://", "stopped answering",
                 "hint: check that dockerd runs")
    assert not (work / "build/engine/busybox/bookworm/default/amd64.json").exists() and not leftovers(work)


def marked_trees(root: Path) -> set[Path]:
    return {p for p in root.glob("baseforge-*") if (p / MARKER).exists()}


@pytest.fixture(scope="module")
def clean_build(tmp_path_factory, engine, workflow):
    """The busybox cell built once without faults: what every recovered run must equal."""
    work = workflow.make(tmp_path_factory.mktemp("clean"), config())
    workflow.run(work)
    return images(work)


def images(work: Path) -> dict[str, tuple[str, str]]:
    return {i["tags"][0]: (i["image_id"], i["rootfs_sha256"]) for i in json.loads((work / "results/images.json").read_text())}


def kill_when(work: Path, log: Path, needle: str, sig: int = signal.SIGKILL, group: bool = True,
              env: dict | None = None) -> bool | int:
    """Start the README's command in ``work``, send ``sig`` to its whole process group (Ctrl-C in a terminal)
    or, without ``group``, to Snakemake alone (`kill`) once ``log`` shows ``needle``: False when the run ended
    before, else its exit code (a SIGKILL: -9)."""
    proc = subprocess.Popen(["snakemake", "--cores", "2"], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, **(env or {})})
    try:
        while proc.poll() is None and not (log.exists() and needle in log.read_text()):
            threading.Event().wait(0.02)
        if proc.poll() is not None:
            return False
        os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
        return proc.wait(120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.e2e
def test_sigkill_during_the_bootstrap_then_the_readme_command_recovers(tmp_path, workflow, clean_build):
    work = make(workflow, tmp_path / "killed", config())
    root = Path(scratch_dir() or tempfile.gettempdir())
    # the log shows the command when mmdebstrap starts (in its private mount namespace, as root)
    assert kill_when(work, work / "logs/bootstrap/busybox/bookworm/amd64/minbase.log", "mmdebstrap --mode=") is not False, \
        "the run ended before its bootstrap started"
    killed = {p for p in marked_trees(root) if not owner_alive(p / MARKER)}
    assert list((work / ".snakemake/locks").iterdir()) and list((work / "build").rglob(".bootstrap-*"))
    out = workflow.run(work)  # the README's command, as is
    assert "removed Snakemake's lock" in out.stderr
    assert images(work) == clean_build
    assert not leftovers(work)
    assert not any(p.exists() for p in killed)
    mounts = Path("/proc/self/mounts").read_text()
    assert not any(str(p) in mounts for p in killed)


@pytest.mark.e2e
@pytest.mark.parametrize("rule, log", [("pack", "pack/busybox/bookworm/default/amd64.log"),
                                       ("image", "image/busybox/bookworm/default/amd64.log"),
                                       ("load", "load/busybox/bookworm/default/amd64.log"),
                                       ("smoketest", "smoketest/busybox/bookworm/default/amd64.log")])
def test_sigkill_in_a_later_step_then_the_readme_command_recovers(tmp_path, workflow, clean_build, rule, log):
    work = make(workflow, tmp_path / "killed", config())
    workflow.run(work, RAW)  # the bootstrap is done; kill the run as soon as the step has started
    kill_when(work, work / "logs" / log, f"▶ rule {rule} ")
    workflow.run(work)
    assert images(work) == clean_build
    assert not leftovers(work)
    assert not subprocess.run(["docker", "ps", "-aq", "--filter", "label=org.baseforge.owner"], capture_output=True, text=True,
                              check=True).stdout  # (a smoke test's container)


@pytest.mark.e2e
@pytest.mark.parametrize("rule, sig, group", [("bootstrap", signal.SIGINT, True), ("image", signal.SIGINT, True),
                                              ("bootstrap", signal.SIGTERM, False), ("load", signal.SIGTERM, False)],
                         ids=["ctrl-c-bootstrap", "ctrl-c-image", "kill-bootstrap", "kill-load"])
def test_ctrl_c_or_sigterm_stops_the_run_leaving_nothing_and_the_readme_command_recovers(tmp_path, workflow, clean_build,
                                                                                        rule, sig, group):
    work = make(workflow, tmp_path / "stopped", config())
    if rule != "bootstrap":
        workflow.run(work, RAW)
    log = {"bootstrap": "bootstrap/busybox/bookworm/amd64/minbase.log", "image": "image/busybox/bookworm/default/amd64.log",
           "load": "load/busybox/bookworm/default/amd64.log"}[rule]
    # (a Ctrl-C as a short job starts used to be swallowed by Snakemake's asyncio runner: the run went on)
    scratch = {"BASEFORGE_TMPDIR": str(tmp_path / "scratch")}
    (tmp_path / "scratch").mkdir()
    code = kill_when(work, work / "logs" / log, "mmdebstrap --mode=" if rule == "bootstrap" else f"▶ rule {rule} ", sig, group,
                     scratch)
    assert code is not False and code != 0, "the run was not stopped"
    locks = work / ".snakemake/locks"
    assert not (locks.is_dir() and list(locks.iterdir()))  # Snakemake ended as it should
    # (Snakemake does not wait for a cancelled job's own clean-up: give it the moment it takes)
    for _ in range(150):
        if not leftovers(work) and not list((tmp_path / "scratch").iterdir()):
            break
        threading.Event().wait(0.1)
    assert not leftovers(work) and not list((tmp_path / "scratch").iterdir())
    workflow.run(work, env=scratch)
    assert images(work) == clean_build and not leftovers(work)
