"""Publish OCI archives to a registry with skopeo (credentials from the usual docker config / env)."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

from .errors import BaseforgeError
from .run import log, run, write_atomic


def archive_digest(archive: Path) -> str:
    """Digest of what index.json of an OCI archive points at (the manifest or image index pushed)."""
    with tarfile.open(archive) as tf:
        index = json.load(tf.extractfile("index.json"))
    return index["manifests"][0]["digest"]


def tls_flags(registry: dict[str, Any], flag: str) -> list[str]:
    return [] if registry.get("tls_verify", True) else [f"--{flag}-tls-verify=false"]


def remote_digest(ref: str, registry: dict[str, Any]) -> str | None:
    """Digest of the manifest at ``ref`` (docker://…), or None if it is not there."""
    tls = [] if registry.get("tls_verify", True) else ["--tls-verify=false"]
    proc = run(["skopeo", "inspect", "--raw", *tls, ref], capture=True, check=False)
    if proc.returncode != 0:
        return None
    return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()


def push(archive: str, registry: dict[str, Any], tags: list[str], record: str) -> dict[str, Any]:
    """Push ``archive`` (an image or a multi-arch index) under every tag; a tag already at the digest is skipped."""
    digest = archive_digest(Path(archive))
    pushed, skipped = [], []
    for tag in tags:
        ref = f"docker://{registry['url'].rstrip('/')}/{tag}"
        if remote_digest(ref, registry) == digest:
            skipped.append(tag)
            log.info("%s already holds %s: nothing to push", ref, digest)
            continue
        run(["skopeo", "copy", "--all", "--preserve-digests", *tls_flags(registry, "dest"), f"oci-archive:{archive}", ref])
        if remote_digest(ref, registry) != digest:
            raise BaseforgeError(f"after pushing, {ref} does not hold {digest}",
                                 hint="the registry rewrote the manifest; check its storage and media type support")
        pushed.append(tag)
    result = {"digest": digest, "registry": registry["url"], "tags": tags, "pushed": pushed, "unchanged": skipped}
    write_atomic(record, json.dumps(result, indent=2) + "\n")
    return result
