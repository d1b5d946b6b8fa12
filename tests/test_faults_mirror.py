"""Mirror faults against a signed fixture apt repository on 127.0.0.1 (tests/fixtures/repos.py): a tampered
InRelease, a key that does not sign it, a corrupt .deb, a .deb the mirror lacks. Each bootstrap fails with
a paragraph whose first line says the cause and names the mirror and suite, or the URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from baseforge import bootstrap, faults
from baseforge.errors import BaseforgeError
from fixtures import repos
from test_distros import keys, one, ubuntu_image  # noqa: F401 - keys: a fixture

CELL = "ubuntu/noble/amd64/minbase"


@pytest.fixture
def mirror(tmp_path, keys):
    """(root, url) of a fresh signed repository, served while the test runs (the test may break it)."""
    root = repos.apt_repo(tmp_path / "apt", keys["good"], "ubuntu", "noble", "24.04", ("noble", "noble-updates", "noble-security"))
    with repos.serve(root) as url:
        yield root, url


def failure(url: str, key: repos.Key, tmp_path: Path) -> str:
    img = one({"ubuntu": ubuntu_image(url, key.keyring)})
    with pytest.raises(BaseforgeError) as exc:
        bootstrap.build_raw(img.cell, tmp_path / "raw.tar")
    assert not (tmp_path / "raw.tar").exists()
    return faults.paragraph("bootstrap", CELL, exc.value)


def first_line(paragraph: str) -> str:
    return paragraph.splitlines()[0]


@pytest.mark.root
def test_a_tampered_release_file_says_signature_verification_failed_naming_mirror_and_suite(tmp_path, mirror, keys):
    root, url = mirror
    for name in ("InRelease", "Release"):
        path = root / "dists/noble" / name
        path.write_text(path.read_text().replace("Codename: noble", "Codename: noblf"))
    text = failure(url, keys["good"], tmp_path)
    assert first_line(text) == (f"baseforge: bootstrap {CELL} failed: mmdebstrap exited with code 25: "
                                f"signature verification failed for suite noble of the mirror {url}")
    assert "BADSIG" in text and "hint: the repository's signature does not verify: check keyrings: and the mirror" in text


@pytest.mark.root
def test_a_release_signed_by_another_key_says_signature_verification_failed(tmp_path, mirror, keys):
    _, url = mirror
    text = failure(url, keys["other"], tmp_path)
    assert first_line(text).endswith(f"signature verification failed for suite noble of the mirror {url}"), text
    assert "NO_PUBKEY" in text


def corrupt(deb: Path) -> None:
    data = bytearray(deb.read_bytes())
    data[-100] ^= 0xFF
    deb.write_bytes(bytes(data))


@pytest.mark.root
@pytest.mark.parametrize("breakage, says, hint", [
    (corrupt, "does not match the checksum of the mirror's index", "the mirror served a file that does not match its signed index"),
    (Path.unlink, ": 404 Not Found", "the mirror lacks a file its index names"),
], ids=["corrupt", "missing"])
def test_a_corrupt_or_missing_package_names_its_url(tmp_path, mirror, keys, breakage, says, hint):
    root, url = mirror
    (deb,) = (root / "pool/main").glob("*.deb")
    breakage(deb)
    text = failure(url, keys["good"], tmp_path)
    assert first_line(text).endswith(f"{url}/pool/main/{deb.name}{'' if says.startswith(':') else ' '}{says}"), text
    assert f"hint: {hint}" in text


@pytest.mark.e2e
def test_a_mirror_whose_name_does_not_resolve_is_named(tmp_path, workflow):
    from test_faults import RAW, assert_named, config, leftovers, make

    dead = "http://mirror.example.invalid"  # .invalid never resolves (RFC 2606)
    work = make(workflow, tmp_path / "w", config(f"mirrors: {{archive: {dead}/debian, security: {dead}/debian-security}}\n",
                                                 epoch="1700000000"))
    proc = workflow.run(work, RAW, check=False, env={"BASEFORGE_TMPDIR": str(tmp_path / "scratch")})
    assert_named(proc, "bootstrap busybox/bookworm/amd64/minbase failed: mmdebstrap exited with code 25: "
                       "the host name mirror.example.invalid does not resolve", "hint: a server is not reachable")
    assert "  - bootstrap busybox/bookworm/amd64/minbase: mmdebstrap exited with code 25: the host name " \
           "mirror.example.invalid does not resolve\n    log: .baseforge/failures/" in proc.stderr
    assert not leftovers(work) and not list((tmp_path / "scratch").iterdir())
