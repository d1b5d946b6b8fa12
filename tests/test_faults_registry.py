"""Registry faults at push: down (a closed port), authentication required (401), a server error mid push
(500 on the blob upload). Each push fails with its paragraph naming the registry and the cause."""

from __future__ import annotations

import http.server
import threading

import pytest

from test_faults import assert_named, closed_port, config, make


class FakeRegistry(http.server.BaseHTTPRequestHandler):
    """A registry API that asks for credentials (``status`` 401), or answers /v2/ and then fails every blob
    upload (500)."""

    protocol_version = "HTTP/1.1"
    status = 401

    def log_message(self, *args):
        pass

    def reply(self, code: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.status == 401:
            self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                       WWW_Authenticate='Basic realm="fake"', Content_Type="application/json")
        elif self.path == "/v2/":
            self.reply(200, b"{}", Docker_Distribution_API_Version="registry/2.0")
        else:
            self.reply(404 if self.command == "HEAD" else 500)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = answer


def serve(status: int) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Registry", (FakeRegistry,), {"status": status}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.e2e
def test_a_registry_that_is_down_is_named(tmp_path, workflow, engine):
    work = make(workflow, tmp_path / "w", config(f"registry: {{url: '127.0.0.1:{closed_port()}', tls_verify: false}}\n"))
    proc = workflow.run(work, check=False)
    assert_named(proc, "push busybox/bookworm/default failed: skopeo exited with code", "connection refused")


@pytest.mark.e2e
@pytest.mark.parametrize("status, says, hint", [
    (401, "the registry refused access to 127.0.0.1:{port}/faults/busybox: unauthorized", "hint: check the registry URL, and the credentials"),
    (500, "the registry 127.0.0.1:{port} failed on its side: HTTP 500 Internal Server Error", "hint: the server failed on its side"),
], ids=["401", "500"])
def test_a_registry_that_refuses_or_fails_mid_push_is_named(tmp_path, workflow, engine, status, says, hint):
    server = serve(status)
    port = server.server_address[1]
    try:
        work = make(workflow, tmp_path / "w", config(f"registry: {{url: '127.0.0.1:{port}', tls_verify: false}}\n"))
        proc = workflow.run(work, check=False)
    finally:
        server.shutdown()
    assert_named(proc, f"push busybox/bookworm/default failed: skopeo exited with code 1: {says.format(port=port)}", hint)
