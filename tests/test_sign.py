"""registry.sign: pushes signed with a GPG key made here, verified by skopeo with a containers-policy.json
(signedBy) against the real registry on 127.0.0.1: the signed image passes, unsigned and tampered ones don't."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from baseforge import config, sign
from baseforge.errors import BaseforgeError
from baseforge.oci import write_image
from baseforge.publish import push
from baseforge.spec import ImageMeta

PASSPHRASE = "correct horse battery staple 14"


@pytest.fixture(scope="module")
def gpg_key(tmp_path_factory):
    """A GnuPG home with a passphrase-protected signing key; yields (home, fingerprint, passphrase file)."""
    home = Path(tmp_path_factory.mktemp("gpg")) / "h"
    home.mkdir(mode=0o700)
    secret = home.parent / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase-file", str(secret),
                    "--quick-gen-key", "baseforge test <test@baseforge.invalid>", "ed25519", "sign", "never"],
                   env=env, check=True, capture_output=True)
    out = subprocess.run(["gpg", "--with-colons", "--list-secret-keys"], env=env, check=True, capture_output=True, text=True)
    fpr = next(line.split(":")[9] for line in out.stdout.splitlines() if line.startswith("fpr:"))
    public = home.parent / "public.gpg"
    public.write_bytes(subprocess.run(["gpg", "--export", fpr], env=env, check=True, capture_output=True).stdout)
    yield home, fpr, secret, public
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False)


def image(path: Path, text: str) -> Path:
    layer = path.with_suffix(".layer.tar")
    with tarfile.open(layer, "w") as tf:
        ti = tarfile.TarInfo("hello.txt")
        ti.size, ti.mtime = len(text), 1700000000
        tf.addfile(ti, io.BytesIO(text.encode()))
    meta = ImageMeta(title=text, version="1", created=1700000000, arch="amd64", tags=(f"x/{text}:1",))
    write_image(path, [layer], meta)
    return path


def verify(registry: str, ref: str, policy: Path, registries_d: Path, dest: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", "copy", "--policy", str(policy), "--registries.d", str(registries_d),
                           "--src-tls-verify=false", f"docker://{registry}/{ref}", f"dir:{dest}"],
                          capture_output=True, text=True)


def consumer_setup(tmp_path: Path, registry: str, public: Path, lookaside: Path) -> tuple[Path, Path]:
    """A consumer's containers-policy.json (signedBy the key, for the registry) and registries.d (the lookaside)."""
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "reject"}], "transports": {
        "docker": {registry: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(public)}]},
        "dir": {"": [{"type": "insecureAcceptAnything"}]}}}))
    consumer = tmp_path / "registries.d"
    consumer.mkdir()
    (consumer / "r.yaml").write_text(json.dumps({"docker": {registry: {"lookaside": lookaside.as_uri()}}}))
    return policy, consumer


def test_signed_pushes_pass_the_policy_unsigned_and_tampered_ones_do_not(registry, gpg_key, tmp_path, caplog):
    home, fpr, secret, public = gpg_key
    lookaside = tmp_path / "signatures"
    signed = {"url": registry, "tls_verify": False,
              "sign": {"gpg": fpr, "gnupg_home": str(home), "passphrase_file": str(secret), "lookaside": str(lookaside)}}
    caplog.set_level(logging.DEBUG)
    record = push(str(image(tmp_path / "a.oci.tar", "signed")), signed, ["bfsign/app:1"], str(tmp_path / "a.json"))
    assert record["signed"]["gpg"] == fpr
    push(str(image(tmp_path / "b.oci.tar", "unsigned")), {"url": registry, "tls_verify": False}, ["bfsign/other:1"],
         str(tmp_path / "b.json"))
    # the secret never shows: not in the log (which has every argv), not in the record
    assert PASSPHRASE not in caplog.text and PASSPHRASE not in (tmp_path / "a.json").read_text()
    assert "--sign-passphrase-file" in caplog.text

    policy, consumer = consumer_setup(tmp_path, registry, public, lookaside)

    ok = verify(registry, "bfsign/app:1", policy, consumer, tmp_path / "out-a")
    assert ok.returncode == 0, ok.stderr
    unsigned = verify(registry, "bfsign/other:1", policy, consumer, tmp_path / "out-b")
    assert unsigned.returncode != 0 and "signature" in unsigned.stderr.lower()

    # tampered: the signed image's signature put beside another digest, and a signature with a flipped byte
    sigs = sorted(lookaside.rglob("signature-1"))
    assert len(sigs) == 1 and "bfsign/app@sha256=" in str(sigs[0].relative_to(lookaside))
    other = json.loads((tmp_path / "b.json").read_text())["digest"].replace(":", "=")
    (lookaside / f"bfsign/other@{other}").mkdir(parents=True)
    (lookaside / f"bfsign/other@{other}/signature-1").write_bytes(sigs[0].read_bytes())
    moved = verify(registry, "bfsign/other:1", policy, consumer, tmp_path / "out-c")
    assert moved.returncode != 0
    data = bytearray(sigs[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    sigs[0].write_bytes(bytes(data))
    flipped = verify(registry, "bfsign/app:1", policy, consumer, tmp_path / "out-d")
    assert flipped.returncode != 0


def test_sign_flags_and_plan_checks(tmp_path):
    flags = sign.flags({"gpg": "ABCDEF0123456789", "sigstore_key": "k.key", "passphrase_file": "p"}, tmp_path)
    assert flags[:4] == ["--registries.d", str(tmp_path), "--sign-by", "ABCDEF0123456789"]
    assert "--sign-by-sigstore-private-key" in flags and flags[-2] == "--sign-passphrase-file"
    entry = sign.registries_d("127.0.0.1:5000", tmp_path, True)["docker"]["127.0.0.1:5000"]
    assert entry == {"lookaside-staging": tmp_path.resolve().as_uri(), "use-sigstore-attachments": True}
    cfg = {"epoch": 1, "mirrors": {"archive": "http://mirror.invalid/debian"}, "images": {"debian": {"releases": ["bookworm"]}},
           "registry": {"url": "127.0.0.1:5000", "sign": {"gpg": "ABCDEF0123456789", "passphrase_file": "missing"}}}
    with pytest.raises(BaseforgeError, match=r"registry.sign.passphrase_file"):
        config.plan(cfg, workdir=tmp_path, resolve_epochs=False)
    cfg["registry"]["sign"] = {"passphrase": "x"}
    with pytest.raises(BaseforgeError, match=r"registry.sign"):
        config.plan(cfg, workdir=tmp_path, resolve_epochs=False)


def test_a_multi_arch_index_and_each_of_its_manifests_are_signed(registry, gpg_key, tmp_path):
    from baseforge.oci import write_index
    from baseforge.ociread import read

    home, fpr, secret, public = gpg_key
    archives = []
    for arch in ("amd64", "arm64"):
        archives.append(image(tmp_path / f"{arch}.oci.tar", f"multi-{arch}"))
    # image() writes amd64 images: give arm64 its own platform
    layer = tmp_path / "arm64.oci.layer.tar"
    archives[1] = tmp_path / "arm64.oci.tar"
    write_image(archives[1], [layer], ImageMeta(title="m", version="1", created=1700000000, arch="arm64", tags=("x/m:1",)))
    index = write_index(tmp_path / "index.oci.tar", archives,
                        ImageMeta(title="m", version="1", created=1700000000, arch="amd64", tags=("x/m:1",)))
    lookaside = tmp_path / "signatures"
    push(str(tmp_path / "index.oci.tar"), {"url": registry, "tls_verify": False, "sign": {
        "gpg": fpr, "gnupg_home": str(home), "passphrase_file": str(secret), "lookaside": str(lookaside)}},
        ["bfsign/multi:1"], str(tmp_path / "rec.json"))
    signed = {p.parent.name.split("@", 1)[1].replace("=", ":") for p in lookaside.rglob("signature-1")}
    instances = {read(a).manifest_digest for a in archives}
    assert signed == {index} | instances


def test_sigstore_keys_are_refused_at_plan_time_where_skopeo_cannot_sign_with_them(registry, tmp_path, caplog):
    """Debian's skopeo 1.9 has --sign-by-sigstore-private-key but is built with sigstore disabled: the plan
    says so before any job runs, and a push would indeed fail."""
    secret, key = tmp_path / "passphrase", tmp_path / "cosign.key"
    secret.write_text(PASSPHRASE)
    key.write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    target = {"url": registry, "tls_verify": False, "sign": {"sigstore_key": str(key), "passphrase_file": str(secret)}}
    cfg = {"epoch": 1, "mirrors": {"archive": "http://mirror.invalid/debian"}, "images": {"debian": {"releases": ["bookworm"]}},
           "registry": target}
    if sign.sigstore_supported():
        config.plan(cfg, workdir=tmp_path, resolve_epochs=False)
        return
    with pytest.raises(BaseforgeError, match=r"registry.sign.sigstore_key: the installed skopeo cannot"):
        config.plan(cfg, workdir=tmp_path, resolve_epochs=False)
    with caplog.at_level(logging.INFO, logger="baseforge"), pytest.raises(BaseforgeError, match=r"^skopeo exited with code [1-9]"):
        push(str(image(tmp_path / "s.oci.tar", "sigstore")), target, ["bfsig/app:1"], str(tmp_path / "s.json"))
    assert re.search(r"\$ skopeo copy .*--sign-by-sigstore-private-key", caplog.text)  # the argv is in the log


def test_every_tag_verifies_and_a_repush_keeps_one_signature_per_tag(registry, gpg_key, tmp_path):
    """A simple signature names one tag, and signedBy accepts it for that tag only: an image pushed as
    :bookworm and :latest (an index, so each architecture's manifest too) verifies under both, also after
    it is pushed again; the lookaside then holds one signature per tag, not one more per push."""
    from baseforge.oci import write_index

    home, fpr, secret, public = gpg_key
    archives = [image(tmp_path / "amd64.oci.tar", "tags-amd64")]
    layer = tmp_path / "amd64.oci.layer.tar"
    archives.append(tmp_path / "arm64.oci.tar")
    write_image(archives[1], [layer], ImageMeta(title="t", version="1", created=1700000000, arch="arm64", tags=("x/t:1",)))
    write_index(tmp_path / "index.oci.tar", archives, ImageMeta(title="t", version="1", created=1700000000,
                                                                  arch="amd64", tags=("x/t:1",)))
    lookaside = tmp_path / "signatures"
    target = {"url": registry, "tls_verify": False, "sign": {"gpg": fpr, "gnupg_home": str(home),
                                                             "passphrase_file": str(secret), "lookaside": str(lookaside)}}
    policy, consumer = consumer_setup(tmp_path, registry, public, lookaside)
    tags = ["bfsign/tags:bookworm", "bfsign/tags:latest"]
    for attempt in range(2):
        push(str(tmp_path / "index.oci.tar"), target, tags, str(tmp_path / "rec.json"))
        for tag in tags:
            ok = verify(registry, tag, policy, consumer, tmp_path / f"out-{attempt}-{tag.rpartition(':')[2]}")
            assert ok.returncode == 0, (attempt, tag, ok.stderr)
        folders = sorted(p for p in lookaside.rglob("*") if p.is_dir() and "@" in p.name)
        assert len(folders) == 3  # the index and both architectures' manifests
        for folder in folders:
            assert sorted(p.name for p in folder.iterdir()) == ["signature-1", "signature-2"], (attempt, folder)


def test_lookaside_folders_follow_skopeos_layout(tmp_path):
    """<lookaside>/<repository path without the host, with the registry's path prefix>@sha256=<hex>."""
    d = "sha256:" + "ab" * 32
    found = sign.lookaside_dirs(tmp_path, "127.0.0.1:5000/team/", "ns/app:1", [d])
    assert found == [tmp_path / f"team/ns/app@sha256={'ab' * 32}"]
    assert sign.lookaside_dirs(tmp_path, "reg.example:443", "app:latest", [d]) == [tmp_path / f"app@sha256={'ab' * 32}"]
    kept = sign.Kept()
    folder = tmp_path / "f"
    folder.mkdir()
    for data in (b"tag-1", b"tag-2"):  # skopeo leaves only the last copy's signature-1 (and deletes the rest)
        (folder / "signature-1").write_bytes(data)
        kept.add([folder])
    (folder / "signature-3").write_bytes(b"stale")
    kept.write()
    assert [(folder / f"signature-{i}").read_bytes() for i in (1, 2)] == [b"tag-1", b"tag-2"]
    assert not (folder / "signature-3").exists()  # a stale one after them goes
