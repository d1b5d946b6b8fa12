"""Reading back an image archive this package wrote: its manifest and config (digests checked), and
its layers, to build on it as a base (:func:`base_layers`) or to put it into an index.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import BaseforgeError
from .ocigzip import CHUNK, Layer
from .ocilayout import MEDIA_MANIFEST, blob_path, digest


@dataclass(frozen=True)
class Image:
    """An image read back from an archive, with the exact bytes of its manifest and config."""

    archive: Path
    members: dict[str, str]  # normalized path -> member name in the archive
    manifest_bytes: bytes
    manifest: dict[str, Any]
    config: dict[str, Any]

    @property
    def manifest_digest(self) -> str:
        return digest(self.manifest_bytes)

    @property
    def image_id(self) -> str:
        return self.manifest["config"]["digest"]

    @property
    def platform(self) -> dict[str, str]:
        keys = ("architecture", "os", "variant")
        return {k: self.config[k] for k in keys if self.config.get(k)}

    def source(self, digest: str) -> tuple[Path, str]:
        return self.archive, self.members[blob_path(digest)]


def read(archive: Path) -> Image:
    """Read and check the one image in an OCI layout archive (as written by :func:`baseforge.oci.write_image`)."""
    archive = Path(archive)
    if not archive.is_file():
        raise BaseforgeError(f"image archive not found: {archive}")
    try:
        with tarfile.open(archive, "r:") as tf:
            members = {os.path.normpath(m.name.lstrip("/")): m.name for m in tf.getmembers() if m.isfile()}

            def blob(want: str) -> bytes:
                name = members.get(blob_path(want))
                if name is None:
                    raise BaseforgeError(f"{archive}: blob {want} is missing", hint="rebuild the archive")
                data = tf.extractfile(name).read()
                if digest(data) != want:
                    raise BaseforgeError(f"{archive}: blob {want} does not match its digest", hint="rebuild the archive")
                return data

            if "index.json" not in members:
                raise BaseforgeError(f"{archive} is not an OCI image layout (no index.json)",
                                     hint="write it with baseforge, or `skopeo copy … oci-archive:…`")
            manifests = json.loads(tf.extractfile(members["index.json"]).read())["manifests"]
            if len(manifests) != 1 or manifests[0].get("mediaType") != MEDIA_MANIFEST:
                raise BaseforgeError(f"{archive} does not hold exactly one single-platform image",
                                     hint="give a per-architecture archive written by write_image")
            manifest_bytes = blob(manifests[0]["digest"])
            manifest = json.loads(manifest_bytes)
            config = json.loads(blob(manifest["config"]["digest"]))
    except (tarfile.TarError, ValueError, KeyError, TypeError) as err:
        raise BaseforgeError(f"cannot read image archive {archive}: {err!r}", hint="rebuild it") from None
    return Image(archive, members, manifest_bytes, manifest, config)


def base_layers(image: Image) -> list[Layer]:
    """The base's layers; each is inflated once to learn its size and check it against its diff_id."""
    diff_ids = image.config.get("rootfs", {}).get("diff_ids", [])
    descs = image.manifest["layers"]
    if len(diff_ids) != len(descs):
        raise BaseforgeError(f"{image.archive}: {len(descs)} layers but {len(diff_ids)} diff_ids")
    layers = []
    with tarfile.open(image.archive, "r:") as tf:
        for desc, diff_id in zip(descs, diff_ids):
            raw = hashlib.sha256()
            raw_size = 0
            stream = _inflate(tf.extractfile(image.source(desc["digest"])[1]), desc["mediaType"])
            while chunk := stream.read(CHUNK):
                raw.update(chunk)
                raw_size += len(chunk)
            if "sha256:" + raw.hexdigest() != diff_id:
                raise BaseforgeError(f"{image.archive}: layer {desc['digest']} does not match diff_id {diff_id}",
                                     hint="the base archive is corrupt: rebuild it")
            layers.append(Layer(desc["digest"], desc["size"], diff_id, raw_size))
    return layers


def _inflate(fileobj: IO[bytes], media_type: str) -> IO[bytes]:
    if media_type.endswith("gzip"):
        return gzip.GzipFile(fileobj=fileobj, mode="rb")
    if media_type.endswith(".tar") or media_type.endswith(".tar.rootfs.diff"):
        return fileobj
    raise BaseforgeError(f"cannot reuse a base layer of media type {media_type}", hint="rebuild the base with baseforge")


def check_pinned(ref: str, archive: Path, where: str) -> None:
    """A reference pinned by digest (``name:tag@sha256:…``) must name the manifest in ``archive``: the base
    this workflow built. (Unpinned references are not checked.)"""
    pinned = ref.partition("@")[2]
    if pinned and pinned != read(archive).manifest_digest:
        raise BaseforgeError(f"{where}: {ref} is pinned to {pinned}, but this workflow built "
                             f"{read(archive).manifest_digest} ({archive})",
                             hint="pin the digest the base has now (build/oci/…json, manifest_digest), or drop the @sha256:…")
