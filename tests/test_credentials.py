"""Credentials in a mirror URL (``http://user:password@…``): kept out of command lines, logs, errors,
provenance.json, caches and the image's sources; read from a real basic-auth server on 127.0.0.1."""

from __future__ import annotations

import json
import logging

import pytest

from baseforge import config
from baseforge.bootstrap import get as get_bootstrapper
from baseforge.bootstrap.mmdebstrap import Mmdebstrap
from baseforge.errors import BaseforgeError
from baseforge.run import run
from baseforge.secret import auth_conf, redact

EPOCH = 1_700_000_000
M = "http://mirror.invalid"


def plan(images: dict, mirrors: dict | None = None):
    return config.plan({"epoch": EPOCH, "mirrors": mirrors or {}, "package_cache": None, "images": images}, resolve_epochs=False)


def debian(**spec) -> dict:
    return {"debian": {"releases": ["bookworm"], **spec}}


# --- credentials ------------------------------------------------------------------------------------------

SECRET_MIRROR = "http://bob:s3cr%40t@mirror.invalid/debian"


def test_credentials_never_reach_the_command_line_or_the_image_sources(tmp_path):
    img = plan(debian(), {"archive": SECRET_MIRROR, "security": f"{M}/sec"}).images["debian/bookworm/default/amd64"]
    argv = Mmdebstrap().argv(img.cell, tmp_path / "o.tar", auth=tmp_path / "auth.conf")
    assert not any("s3cr" in a or "bob" in a for a in argv)  # ps, the log, and the sources.list mmdebstrap writes
    assert f"deb {M}/debian bookworm main" in argv and f'--aptopt=Dir::Etc::netrc "{tmp_path / "auth.conf"}"' in argv
    assert any("Dir::Etc::netrc/d" in a for a in argv)  # the pointer is removed from the image's apt config
    insecure = plan(debian(insecure=True)).images["debian/bookworm/default/amd64"].cell
    argv = Mmdebstrap().argv(insecure, tmp_path / "o.tar")
    assert '--aptopt=APT::Get::AllowUnauthenticated "true"' in argv and any("/AllowUnauthenticated/d" in a for a in argv)
    assert auth_conf(img.cell.sources) == "machine mirror.invalid/debian login bob password s3cr@t\n"
    with pytest.raises(BaseforgeError, match="debootstrap would put the mirror's user:password"):
        get_bootstrapper("debootstrap").bootstrap(img.cell, tmp_path / "o.tar", tmp_path)


def test_credentials_are_redacted_in_logs_errors_and_provenance(caplog, monkeypatch, tmp_path):
    with caplog.at_level(logging.INFO, logger="baseforge"), pytest.raises(BaseforgeError) as exc:
        run(["sh", "-c", f"echo {SECRET_MIRROR} >&2; exit 3", SECRET_MIRROR], capture=True)
    assert "s3cr" not in caplog.text and "s3cr" not in str(exc.value) and "http://***@mirror.invalid" in caplog.text
    assert redact(f"deb {SECRET_MIRROR} x; https://tok@h/p@x") == "deb http://***@mirror.invalid/debian x; https://***@h/p@x"
    from baseforge import provenance

    img = plan(debian(), {"archive": SECRET_MIRROR, "security": f"{M}/sec"}).images["debian/bookworm/default/amd64"]
    monkeypatch.setattr(provenance, "packages", lambda _: [])
    monkeypatch.setattr(provenance, "write_sbom", lambda *a, **k: None)
    monkeypatch.setattr(provenance, "release_file", lambda url: {"url": redact(url)})
    (tmp_path / "info.json").write_text(json.dumps({"sha256": "0" * 64}))
    provenance.write_provenance(img.to_dict(), "r.tar", tmp_path / "info.json", tmp_path / "s.json", tmp_path / "p.json")
    assert "s3cr" not in (tmp_path / "p.json").read_text() and "***@mirror.invalid" in (tmp_path / "p.json").read_text()
    # spec_sha256 is of the cell without them: a hash of a known text around a password would let one guess it
    import hashlib

    record = json.loads((tmp_path / "p.json").read_text())
    spec = record["spec_sha256"]
    assert "insecure" not in record
    assert spec == hashlib.sha256(redact(json.dumps(img.to_dict()["cell"], sort_keys=True)).encode()).hexdigest()


@pytest.fixture
def basic_auth_server():
    """A Release file on 127.0.0.1 behind HTTP basic auth (bob / s3cr@t)."""
    import base64
    import http.server
    import threading

    good = "Basic " + base64.b64encode(b"bob:s3cr@t").decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.headers.get("Authorization") != good:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="mirror"')
                self.end_headers()
                return
            body = b"Origin: Test\nDate: Sat, 11 Jul 2026 10:16:37 UTC\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def test_a_mirror_with_credentials_is_read_and_they_are_kept_out_of_caches_and_errors(basic_auth_server, tmp_path):
    from baseforge.epoch import release_date

    port = basic_auth_server
    cache = tmp_path / "epochs.json"
    assert release_date(f"http://bob:s3cr%40t@127.0.0.1:{port}/dists/x/Release", cache) == 1783764997
    assert "s3cr" not in cache.read_text() and "bob" not in cache.read_text()
    with pytest.raises(BaseforgeError) as exc:
        release_date(f"http://bob:wrong-pw@127.0.0.1:{port}/dists/y/Release")
    assert "401" in str(exc.value) and "wrong-pw" not in str(exc.value)


@pytest.mark.parametrize("err", [ValueError(f"nonnumeric port: {SECRET_MIRROR}"), OSError(f"cannot reach {SECRET_MIRROR}"),
                                 BaseforgeError(f"failed: {SECRET_MIRROR}", hint=f"try {SECRET_MIRROR}")])
def test_no_failure_paragraph_or_record_shows_a_password(tmp_path, err):
    """Whatever raised it (urllib quotes a URL it cannot read), the console paragraph and the failure record
    under .baseforge/failures show ``***@`` instead of the credentials."""
    from baseforge import faults

    faults.record("bootstrap", "debian/bookworm/default/amd64", err, root=tmp_path)
    shown = faults.paragraph("bootstrap", "debian/bookworm/default/amd64", err, [], None)
    recorded = next(tmp_path.iterdir()).read_text()
    for text in (shown, recorded):
        assert "s3cr" not in text and "bob" not in text and "***@mirror.invalid" in text

