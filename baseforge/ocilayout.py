"""The bytes of an OCI image layout archive: media types, annotation and label keys, canonical JSON and
digests, the platform of an architecture, and the outer tar (every blob, ``oci-layout``, ``index.json``
and the docker-archive ``manifest.json``) with sorted entries, owner 0:0 and one mtime.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

from .epoch import rfc3339
from .errors import BaseforgeError
from .spec import PLATFORMS, ImageMeta

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

A_CREATED = "org.opencontainers.image.created"
A_TITLE = "org.opencontainers.image.title"
A_VERSION = "org.opencontainers.image.version"
A_BASE_NAME = "org.opencontainers.image.base.name"
A_BASE_DIGEST = "org.opencontainers.image.base.digest"
A_REF_NAME = "org.opencontainers.image.ref.name"
A_CONTAINERD_NAME = "io.containerd.image.name"

BLOB_DIRS = ("blobs", "blobs/sha256")  # the directory entries of an archive, before its blobs

#: where a blob's bytes come from: in memory, a file, or a member of an existing archive
Source = Union[bytes, Path, tuple[Path, str]]


def annotations(meta: ImageMeta) -> dict[str, str]:
    """The OCI annotations every manifest and index of ``meta`` carries: created, title, version."""
    return nonempty({A_CREATED: rfc3339(meta.created), A_TITLE: meta.title, A_VERSION: meta.version})


def image_labels(meta: ImageMeta) -> dict[str, str]:
    """The same as labels of the image config (the engine shows these), with the base image's name."""
    return nonempty({**annotations(meta), A_BASE_NAME: meta.base_name})


def dumps(obj: Any) -> bytes:
    """Canonical JSON: the same object always gives the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_path(digest: str) -> str:
    algo, _, hexdigest = digest.partition(":")
    return f"blobs/{algo}/{hexdigest}"


def nonempty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v}


def platform(arch: str) -> dict[str, str]:
    if arch not in PLATFORMS:
        raise BaseforgeError(f"unknown architecture {arch!r}", hint=f"use one of {', '.join(PLATFORMS)}")
    p = PLATFORMS[arch]
    return nonempty({"architecture": p.oci, "os": "linux", "variant": p.variant})


def platform_str(platform: dict[str, str]) -> str:
    return "/".join(platform[k] for k in ("os", "architecture", "variant") if platform.get(k))


def ref_annotations(tags: Sequence[str]) -> dict[str, str]:
    """``ref.name`` is the tag part of the first tag ("latest" if it has none); containerd wants the full name."""
    if not tags:
        return {}
    name = tags[0].split("@", 1)[0]
    _, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        tag = "latest"
    return {A_REF_NAME: tag, A_CONTAINERD_NAME: tags[0]}


def tarinfo(name: str, mtime: int, **kw: Any) -> tarfile.TarInfo:
    """An outer-tar entry: mode 0644, owner 0:0 without names, the image's mtime."""
    ti = tarfile.TarInfo(name)
    ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = mtime, 0o644, 0, 0, "", ""
    for key, value in kw.items():
        setattr(ti, key, value)
    return ti


def docker_manifest(config_digest: str, tags: Sequence[str], layer_digests: Sequence[str]) -> list[dict[str, Any]]:
    """``manifest.json`` of a docker-archive: one image, its config and layer blobs, its tags."""
    return [{"Config": blob_path(config_digest), "RepoTags": list(tags), "Layers": [blob_path(d) for d in layer_digests]}]


def write_layout(tmp: Path, sources: dict[str, Source], descriptor: dict[str, Any], mtime: int,
                 docker: list[dict[str, Any]] | None) -> None:
    """The outer tar: every blob of ``sources``, ``index.json`` naming ``descriptor``, and ``manifest.json``."""
    files: dict[str, Source] = {blob_path(d): s for d, s in sources.items()}
    files["oci-layout"] = dumps({"imageLayoutVersion": "1.0.0"})
    files["index.json"] = dumps({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [descriptor]})
    if docker is not None:
        files["manifest.json"] = dumps(docker)

    def info(name: str, **kw: Any) -> tarfile.TarInfo:
        return tarinfo(name, mtime, **kw)

    with contextlib.ExitStack() as stack, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
        archives: dict[Path, tarfile.TarFile] = {}
        for name in BLOB_DIRS:
            tf.addfile(info(name, type=tarfile.DIRTYPE, mode=0o755))
        for name in sorted(files):
            source = files[name]
            if isinstance(source, bytes):
                tf.addfile(info(name, size=len(source)), io.BytesIO(source))
            elif isinstance(source, Path):
                with source.open("rb") as f:
                    tf.addfile(info(name, size=os.fstat(f.fileno()).st_size), f)
            else:
                archive, member = source
                if archive not in archives:
                    archives[archive] = stack.enter_context(tarfile.open(archive, "r:"))
                m = archives[archive].getmember(member)
                tf.addfile(info(name, size=m.size), archives[archive].extractfile(m))
