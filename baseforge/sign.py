"""Signing what is pushed: skopeo signs every manifest and index it copies with the key of ``registry.sign``.

Two kinds, as containers/image (skopeo, podman, CRI-O) defines and verifies them:

- ``gpg: <fingerprint>`` (with ``gnupg_home``): a "simple signing" GPG signature of the manifest digest
  and the image's name. skopeo writes it to a lookaside directory (``lookaside:``, default
  ``build/signatures``) that is published beside the registry (any static web server); a consumer's
  ``registries.d`` names that URL as ``lookaside:``.
- ``sigstore_key: <path>`` (a cosign-format private key): a sigstore signature, stored in the registry
  itself as an attachment (the ``sha256-<digest>.sig`` tag), found with ``use-sigstore-attachments``.

The key material stays in the GnuPG home or key file; argv carries only the fingerprint and paths, and a
passphrase only ever travels as a file (``passphrase_file``), never on a command line or in a log.
"""

from __future__ import annotations

import contextlib
import functools
import json
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .errors import BaseforgeError
from .oci import write_image
from .paths import SIGNATURES
from .run import run
from .spec import ImageMeta

DEFAULT_LOOKASIDE = SIGNATURES


def check(sign: dict[str, Any] | None, workdir: Path) -> None:
    """Plan-time checks of ``registry.sign``: the files it names exist, and skopeo can sign that way."""
    if not sign:
        return
    if not sign.get("gpg") and not sign.get("sigstore_key"):
        raise BaseforgeError("config registry.sign: names no key", hint="give gpg: <key fingerprint> and/or sigstore_key: <path>")
    for key in ("gnupg_home", "sigstore_key", "passphrase_file"):
        if sign.get(key) and not (workdir / sign[key]).exists():
            raise BaseforgeError(f"config registry.sign.{key}: {workdir / sign[key]} does not exist",
                                 hint="give the path of an existing file (directory for gnupg_home)")
    if sign.get("sigstore_key") and not sigstore_supported():
        raise BaseforgeError("config registry.sign.sigstore_key: the installed skopeo cannot make sigstore signatures "
                             "(Debian builds it with sigstore disabled)",
                             hint="sign with gpg: instead, or install a skopeo built with sigstore support")


@functools.cache
def sigstore_supported() -> bool:
    """Whether this skopeo makes sigstore signatures: Debian's has the flag but answers "sigstore disabled".
    Asked by signing a one-byte image into a scratch ``dir:`` with a key that does not exist."""
    with tempfile.TemporaryDirectory(prefix="bf-sigstore-probe-") as tmp:
        layer = Path(tmp) / "layer.tar"
        with tarfile.open(layer, "w"):
            pass
        write_image(Path(tmp) / "probe.oci.tar", [layer], ImageMeta(title="probe", version="0", created=0, arch="amd64"))
        (Path(tmp) / "passphrase").write_text("probe\n")  # else skopeo asks for one on the terminal
        proc = run(["skopeo", "copy", "--sign-by-sigstore-private-key", f"{tmp}/no.key", "--sign-passphrase-file",
                    f"{tmp}/passphrase", "--sign-identity", "localhost/probe:latest", f"oci-archive:{tmp}/probe.oci.tar",
                    f"dir:{tmp}/out"], capture=True, check=False)
    return b"sigstore disabled" not in proc.stderr


def registries_d(registry_url: str, lookaside: Path | None, sigstore: bool) -> dict[str, Any]:
    """The containers-registries.d(5) entry that tells skopeo where to write this registry's signatures."""
    entry: dict[str, Any] = {}
    if lookaside is not None:
        entry["lookaside-staging"] = lookaside.resolve().as_uri()
    if sigstore:
        entry["use-sigstore-attachments"] = True
    return {"docker": {registry_url.rstrip("/"): entry}}


def flags(sign: dict[str, Any], config_dir: Path) -> list[str]:
    """skopeo copy's signing flags (pure: tests check them)."""
    argv = ["--registries.d", str(config_dir)]
    if sign.get("gpg"):
        argv += ["--sign-by", sign["gpg"]]
    if sign.get("sigstore_key"):
        argv += ["--sign-by-sigstore-private-key", str(Path(sign["sigstore_key"]).resolve())]
    if sign.get("passphrase_file"):
        argv += ["--sign-passphrase-file", str(Path(sign["passphrase_file"]).resolve())]
    return argv


@contextlib.contextmanager
def signing(registry: dict[str, Any]) -> Iterator[tuple[list[str], dict[str, str]]]:
    """(extra skopeo copy argv, extra environment) that sign what is copied to ``registry``; nothing when
    ``registry.sign`` is not set."""
    sign = registry.get("sign")
    if not sign:
        yield [], {}
        return
    folder = lookaside(registry)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    env = {"GNUPGHOME": str(Path(sign["gnupg_home"]).resolve())} if sign.get("gnupg_home") else {}
    with tempfile.TemporaryDirectory(prefix="bf-registries.d-") as tmp:
        (Path(tmp) / "baseforge.yaml").write_text(
            yaml.safe_dump(registries_d(registry["url"], folder, bool(sign.get("sigstore_key")))))
        yield flags(sign, Path(tmp)), env


def lookaside(registry: dict[str, Any]) -> Path | None:
    """The folder GPG signatures are written to, or None when nothing is signed with GPG."""
    sign = registry.get("sign") or {}
    return Path(sign.get("lookaside", DEFAULT_LOOKASIDE)) if sign.get("gpg") else None


def summary(registry: dict[str, Any]) -> dict[str, Any]:
    """What the push record says about signing (names, never secrets)."""
    sign = registry.get("sign") or {}
    out: dict[str, Any] = {}
    if sign.get("gpg"):
        out["gpg"] = sign["gpg"]
        out["lookaside"] = str(Path(sign.get("lookaside", DEFAULT_LOOKASIDE)))
    if sign.get("sigstore_key"):
        out["sigstore"] = "registry attachment (sha256-<digest>.sig)"
    return out



# --- one GPG signature per tag -----------------------------------------------------------------------------
# A simple-signing signature names one tag (its docker-reference), and a consumer's signedBy requirement
# accepts it only for that tag. skopeo writes the signatures of one copy to the lookaside as signature-1..N
# and deletes the rest, so pushing tag after tag would leave only the last tag's: each copy's signatures are
# kept here, and the lookaside gets all of them at the end.


def manifest_digests(archive: Path) -> list[str]:
    """The digest of what ``archive``'s index.json points at, and of every manifest an image index lists."""
    with tarfile.open(archive) as tf:
        top = json.load(tf.extractfile("index.json"))["manifests"][0]
        out = [top["digest"]]
        if top.get("mediaType", "").endswith("index.v1+json"):
            index = json.load(tf.extractfile("blobs/" + top["digest"].replace(":", "/")))
            out += [m["digest"] for m in index.get("manifests", [])]
    return out


def lookaside_dirs(lookaside: Path, registry_url: str, tag: str, digests: list[str]) -> list[Path]:
    """Where skopeo writes the signatures of ``tag``'s manifests: ``<lookaside>/<repository path>@sha256=<hex>``
    (the repository path without the registry's host, with its path prefix)."""
    repo_path = f"{registry_url.rstrip('/')}/{tag}".split("/", 1)[1].rpartition(":")[0]
    return [lookaside / f"{repo_path}@{d.replace(':', '=')}" for d in digests]


def _signatures(folder: Path) -> list[bytes]:
    out, i = [], 1
    while (folder / f"signature-{i}").is_file():
        out.append((folder / f"signature-{i}").read_bytes())
        i += 1
    return out


class Kept:
    """The signatures of every copy of one push job, per lookaside folder, written back together."""

    def __init__(self) -> None:
        self.folders: dict[Path, list[bytes]] = {}

    def add(self, folders: list[Path]) -> None:
        """Keep what the copy that just ran wrote to ``folders``."""
        for folder in folders:
            self.folders.setdefault(folder, []).extend(_signatures(folder))

    def write(self) -> None:
        """Every kept signature of each folder as signature-1..N (and nothing after)."""
        for folder, signatures in self.folders.items():
            for i, data in enumerate(signatures, 1):
                (folder / f"signature-{i}").write_bytes(data)
            i = len(signatures) + 1
            while (folder / f"signature-{i}").exists():
                (folder / f"signature-{i}").unlink()
                i += 1
