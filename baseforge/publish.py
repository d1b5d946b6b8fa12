"""Publish OCI archives to a registry with skopeo (credentials from the usual docker config / env)."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

from . import sign
from .errors import BaseforgeError
from .run import log, run, write_json


def archive_digest(archive: Path) -> str:
    """Digest of what index.json of an OCI archive points at (the manifest or image index pushed)."""
    with tarfile.open(archive) as tf:
        index = json.load(tf.extractfile("index.json"))
    return index["manifests"][0]["digest"]


def tls_flags(registry: dict[str, Any], flag: str = "") -> list[str]:
    """skopeo's TLS switch for ``registry``: ``--tls-verify=false``, or ``--<flag>-tls-verify=false`` (src, dest)."""
    return [] if registry.get("tls_verify", True) else [f"--{flag + '-' if flag else ''}tls-verify=false"]


def remote_digest(ref: str, registry: dict[str, Any]) -> str | None:
    """Digest of the manifest at ``ref`` (docker://…), or None if it is not there."""
    proc = run(["skopeo", "inspect", "--raw", *tls_flags(registry), ref], capture=True, check=False)
    if proc.returncode != 0:
        return None
    return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()


def remote_config_digest(ref: str, registry: dict[str, Any]) -> str | None:
    """The image ID (config digest) of the single-arch manifest at ``ref``, or None."""
    proc = run(["skopeo", "inspect", "--raw", *tls_flags(registry), ref], capture=True, check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout).get("config", {}).get("digest")


def push(archive: str | None, registry: dict[str, Any], tags: list[str], record: str,
         engine_record: str | None = None) -> dict[str, Any]:
    """Push ``archive`` (an image or a multi-arch index), or else the engine's image of ``engine_record``,
    under every tag; a tag that already holds the same digest (image ID for engine images) is skipped,
    unless ``registry.sign`` is set: then every copy is signed (baseforge.sign)."""
    if archive:
        source, digest, remote = f"oci-archive:{archive}", archive_digest(Path(archive)), remote_digest
        flags = ["--all", "--preserve-digests"]
    else:
        from .engine import host

        digest = json.loads(Path(engine_record).read_text())["image_id"]
        source, remote, flags = f"docker-daemon:{digest}", remote_config_digest, ["--src-daemon-host", host()]
    pushed, skipped, kept = [], [], sign.Kept()
    lookaside = sign.lookaside(registry)
    for tag in tags:
        ref = f"docker://{registry['url'].rstrip('/')}/{tag}"
        if not registry.get("sign") and remote(ref, registry) == digest:
            skipped.append(tag)
            log.info("%s already holds %s: nothing to push", ref, digest)
            continue
        with sign.signing(registry) as (sign_flags, env):
            run(["skopeo", "copy", *flags, *sign_flags, *tls_flags(registry, "dest"), source, ref], env=env)
        if remote(ref, registry) != digest:
            raise BaseforgeError(f"after pushing, {ref} does not hold {digest}",
                                 hint="the registry rewrote the manifest; check its storage and media type support")
        if lookaside is not None:  # one signature per tag (baseforge.sign.Kept)
            digests = sign.manifest_digests(Path(archive)) if archive else [digest]
            kept.add(sign.lookaside_dirs(lookaside, registry["url"], tag, digests))
        pushed.append(tag)
    kept.write()
    result = {"digest": digest, "registry": registry["url"], "tags": tags, "pushed": pushed, "unchanged": skipped,
              **({"signed": sign.summary(registry)} if registry.get("sign") else {})}
    write_json(record, result)
    return result
