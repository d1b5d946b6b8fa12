"""An app's build: runs in bubblewrap as nobody: it cannot write outside its copy of the context and $OUT, read
root's files, reach the network (unless network: true) or see the host's environment. Real bwrap, no mocks."""

from __future__ import annotations

import contextlib
import http.server
import os
import tempfile
import threading
from pathlib import Path

import pytest

from baseforge import sandbox
from baseforge.app import write_app
from baseforge.errors import BaseforgeError

ROOT = Path(__file__).resolve().parent.parent


def build(command: str, env: dict | None = None, network: bool = False) -> dict[str, str]:
    """Run ``command`` sandboxed; what it wrote under $OUT, by name."""
    with sandbox.scratch() as box:
        work, out = box / "context", box / "out"
        work.mkdir()
        out.mkdir()
        sandbox.run_build(command, work, out, env or {}, network=network)
        return {p.name: p.read_text() for p in out.iterdir()}


def test_runs_as_nobody_with_a_clean_environment(monkeypatch):
    monkeypatch.setenv("BF_HOST_SECRET", "leaked")
    out = build('id -u > "$OUT/uid"; env > "$OUT/env"; echo made > "$OUT/file"', env={"APP_VAR": "1", "SOURCE_DATE_EPOCH": "7"})
    assert out["uid"].strip() == "65534" and out["file"] == "made\n"
    names = {line.split("=", 1)[0] for line in out["env"].splitlines()}
    assert "BF_HOST_SECRET" not in out["env"] and {"PATH", "HOME", "OUT", "APP_VAR", "SOURCE_DATE_EPOCH"} <= names
    assert "SOURCE_DATE_EPOCH=7" in out["env"].splitlines()


@pytest.mark.parametrize("target", ["/etc/baseforge-sandbox-test", str(ROOT / "baseforge-sandbox-test"), "/root/x"])
def test_cannot_write_outside_context_and_out(target):
    with pytest.raises(BaseforgeError, match=r"\b(setpriv|bwrap) exited with code [1-9]"):
        build(f"echo evil > {target}")
    assert not Path(target).exists()


@pytest.mark.root
def test_cannot_read_roots_files():
    fd, secret = tempfile.mkstemp(prefix="bf-sandbox-secret-", dir="/var/tmp")  # 0600 (/tmp is the sandbox's own)
    os.write(fd, b"top secret")
    os.close(fd)
    try:
        if os.geteuid() != 0:
            pytest.skip("only a root test run can show that the sandbox user is not the caller")
        out = build(f"cat {secret} > \"$OUT/x\" 2> \"$OUT/err\" || true")
        assert out["x"] == "" and ("Permission denied" in out["err"] or "No such file" in out["err"])  # /var/tmp is hidden
    finally:
        os.unlink(secret)


@pytest.fixture
def web():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def test_no_network_unless_the_app_says_so(web):
    fetch = f"python3 -c \"import urllib.request; urllib.request.urlopen('{web}', timeout=5)\" && echo ok > \"$OUT/net\""
    with pytest.raises(BaseforgeError, match=r"\b(setpriv|bwrap) exited with code [1-9]"):
        build(fetch)
    assert build(fetch, network=True) == {"net": "ok\n"}


def test_the_build_cannot_smuggle_a_host_file_in_through_add(tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "sub/hostname").write_text("mine\n")
    app = {"name": "a", "context": str(ctx), "build": "rm -rf sub && ln -s /etc sub", "add": {"sub/hostname": "/h"},
           "meta": {"title": "a:latest", "version": "latest", "created": 0, "arch": "amd64", "tags": ["a:latest"]}}
    with pytest.raises(BaseforgeError, match="sub/hostname leads outside the context"):
        write_app(app, None, str(tmp_path / "a.oci.tar"), str(tmp_path / "a.json"))
    assert not (tmp_path / "a.oci.tar").exists()


def test_argv_is_offline_and_unprivileged_by_default(tmp_path):
    argv = sandbox.argv("true", tmp_path / "w", tmp_path / "o", {"K": "v"})
    assert "--unshare-all" in argv and "--share-net" not in argv and "--clearenv" in argv
    assert argv[argv.index("--uid") + 1] == "65534" and argv[-4:] == ["--", "sh", "-ec", "true"]
    assert "--share-net" in sandbox.argv("true", tmp_path / "w", tmp_path / "o", {}, network=True)


def test_host_sockets_and_the_workflow_directory_are_out_of_reach(monkeypatch):
    """A unix socket on the read-only host file system still connects (a new network namespace does not cover
    it: the Docker and D-Bus sockets live in /run), and the workflow directory holds the config (a mirror's
    password): both are empty in the sandbox. The control run without hidden() shows the test can fail."""
    import shutil
    import socket

    # outside /tmp (the sandbox's own anyway, and where a clone may live) and the other hidden folders
    wf = Path(tempfile.mkdtemp(prefix="baseforge-sandbox-wf-", dir="/var/lib"))
    sock_path = tempfile.mktemp(prefix="bf-", suffix=".sock", dir="/var/tmp")
    server = socket.socket(socket.AF_UNIX)
    try:
        wf.chmod(0o755)
        (wf / "config.yaml").write_text("mirrors: {archive: http://bob:s3cr@mirror.invalid/debian}\n")
        (wf / "config.yaml").chmod(0o644)
        server.bind(sock_path)
        os.chmod(sock_path, 0o777)
        server.listen(4)
        monkeypatch.chdir(wf)
        probe = (f"python3 -c \"import socket; socket.socket(socket.AF_UNIX).connect('{sock_path}')\" 2>/dev/null "
                 f"&& echo connected >> \"$OUT/r\" || true; cat {wf}/config.yaml >> \"$OUT/r\" 2>/dev/null || true")
        with monkeypatch.context() as m:
            m.setattr(sandbox, "hidden", lambda cwd=None: [])
            assert build(probe)["r"] == "connected\nmirrors: {archive: http://bob:s3cr@mirror.invalid/debian}\n"  # the control
        assert build(probe).get("r", "") == ""
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock_path)
        shutil.rmtree(wf)


@pytest.mark.parametrize("make", ['mkfifo "$OUT/pipe"', 'python3 -c "import socket,os; socket.socket(socket.AF_UNIX).bind(os.environ[\'OUT\'] + \'/pipe\')"'])
def test_a_fifo_or_socket_under_out_is_refused_not_waited_on(tmp_path, make):
    """Reading a fifo the build left would hang the job for ever; a socket has no place in a layer."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    app = {"name": "a", "context": str(ctx), "build": make,
           "meta": {"title": "a:latest", "version": "latest", "created": 0, "arch": "amd64", "tags": ["a:latest"]}}
    with pytest.raises(BaseforgeError, match="app layer: pipe is not a file, directory or symlink"):
        write_app(app, None, str(tmp_path / "a.oci.tar"), str(tmp_path / "a.json"))
    assert not (tmp_path / "a.oci.tar").exists()


def test_a_network_build_still_finds_a_resolv_conf_that_lives_in_run(tmp_path):
    """systemd-resolved links /etc/resolv.conf into /run, which the sandbox hides: the file itself is bound in."""
    stub = tmp_path / "run/systemd/resolve/stub-resolv.conf"
    stub.parent.mkdir(parents=True)
    stub.write_text("nameserver 127.0.0.53\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/resolv.conf").symlink_to(stub)
    assert sandbox.resolver([str(tmp_path / "run")], tmp_path / "etc/resolv.conf") == [str(stub)]
    assert sandbox.resolver([str(tmp_path / "home")], tmp_path / "etc/resolv.conf") == []  # not hidden: nothing to do


def test_the_build_cannot_make_a_user_namespace_of_its_own():
    """A user namespace would give the build capabilities (in it) to reach more of the kernel with."""
    out = build('unshare --user true 2> "$OUT/err" && echo made > "$OUT/ns" || true')
    assert "ns" not in out and out["err"]
