"""Deterministic OCI images without a daemon: layer tars in, one loadable archive out (rules image,
app_image, index; the engine's load stream).

An archive written here is at the same time an OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/…``) and a docker-archive (``manifest.json``), like ``docker save`` of Docker 25: it
loads with ``docker load`` (Engine 20.10 and later) and reads with ``skopeo copy oci-archive:…``.

Same inputs give the same bytes: gzip without name or mtime at a fixed level, deflated in 1 MiB blocks
in parallel (:mod:`.ocigzip`), JSON with sorted keys and compact separators, an outer tar with sorted
entries, owner 0:0, no user/group names and every mtime set to the image's ``created``
(:mod:`.ocilayout`). Archives are read back (as a base, or into an index) by :mod:`.ociread`. The image
ID hashes the config, which names layers by their uncompressed digests (diff_ids).
"""

from __future__ import annotations

import logging
import os
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import scratch
from .epoch import rfc3339
from .errors import BaseforgeError
from .ocigzip import CHUNK, Layer, compress_layer
from .ocilayout import (A_BASE_DIGEST, A_BASE_NAME, BLOB_DIRS, MEDIA_CONFIG, MEDIA_INDEX, MEDIA_LAYER, MEDIA_MANIFEST,
                        Source, annotations, blob_path, digest, docker_manifest, dumps, image_labels, nonempty, platform,
                        platform_str, ref_annotations, tarinfo, write_layout)
from .ociread import Image, base_layers, read
from .run import atomic_file
from .spec import ImageMeta

log = logging.getLogger("baseforge")


@dataclass(frozen=True)
class ImageResult:
    """What :func:`write_image` wrote, for records and for the next step."""

    image_id: str  # "sha256:…" of the config blob: the ID docker shows after `docker load`
    manifest_digest: str
    layers: tuple[str, ...]  # compressed layer digests, base layers first
    diff_ids: tuple[str, ...]  # uncompressed layer digests
    size: int  # sum of uncompressed layer sizes, base layers included
    platform: str  # e.g. "linux/arm64/v8"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["layers"], data["diff_ids"] = list(self.layers), list(self.diff_ids)
        return data


def write_image(out: Path, layers: Sequence[Path], meta: ImageMeta, base: Path | None = None,
                level: int = 6, threads: int | None = None) -> ImageResult:
    """Write the image of uncompressed ``layers`` (in order, on top of ``base``) to the archive ``out``.

    ``base`` is an archive written earlier by this function; its layer blobs, diff_ids and history
    are reused as they are. ``None`` means FROM scratch. ``level`` is the gzip level of new layers,
    ``threads`` how many threads compress them (the bytes do not depend on it).
    """
    out, layers = Path(out), [Path(p) for p in layers]
    platform(meta.arch)  # an unknown architecture is the first thing to say
    missing = [str(p) for p in layers if not p.is_file()]
    if missing:
        raise BaseforgeError(f"layer tarball not found: {', '.join(missing)}",
                             hint="build the rootfs first, or check the path")
    if not 0 <= level <= 9:
        raise BaseforgeError(f"gzip level {level} is not in 0..9")
    base_image = read(Path(base)) if base is not None else None
    old, history, sources = _from_base(base_image, base, meta)
    if not old and not layers:
        raise BaseforgeError(f"image {meta.title} has no layers", hint="give at least one layer tarball")

    with atomic_file(out) as tmp, scratch.owned_dir(out.parent, f".{out.name}.blobs.") as blobdir:
        new = []
        for path in layers:
            layer = compress_layer(path, Path(blobdir), level, threads)
            sources[layer.digest] = Path(blobdir) / layer.digest.split(":")[1]
            new.append(layer)
        all_layers = old + new
        history += [_history(meta) for _ in new]
        config = dumps(_config(meta, [lay.diff_id for lay in all_layers], history))
        manifest = dumps(_manifest(meta, config, all_layers, base_image))
        sources[digest(config)] = config
        sources[digest(manifest)] = manifest
        descriptor = {"mediaType": MEDIA_MANIFEST, "digest": digest(manifest), "size": len(manifest),
                      "platform": platform(meta.arch), "annotations": ref_annotations(meta.tags)}
        docker = docker_manifest(digest(config), meta.tags, [lay.digest for lay in all_layers])
        write_layout(tmp, sources, nonempty(descriptor), meta.created, docker)

    result = ImageResult(
        image_id=digest(config),
        manifest_digest=digest(manifest),
        layers=tuple(lay.digest for lay in all_layers),
        diff_ids=tuple(lay.diff_id for lay in all_layers),
        size=sum(lay.raw_size for lay in all_layers),
        platform=platform_str(platform(meta.arch)),
    )
    log.info("wrote %s: %s %s, %d layers, %d bytes", out, result.platform, result.image_id,
             len(result.layers), result.size)
    return result


def _from_base(base_image: Image | None, base: Path | None,
               meta: ImageMeta) -> tuple[list[Layer], list[dict[str, Any]], dict[str, Source]]:
    """The base's layers, history and blob sources (all empty FROM scratch); refuses another platform."""
    if base_image is None:
        return [], [], {}
    if base_image.platform != platform(meta.arch):
        raise BaseforgeError(
            f"base {base} is for {platform_str(base_image.platform)}, not {platform_str(platform(meta.arch))}",
            hint=f"use the {meta.arch} build of the base image")
    old = base_layers(base_image)
    sources: dict[str, Source] = {layer.digest: base_image.source(layer.digest) for layer in old}
    return old, list(base_image.config.get("history", [])), sources


def _manifest(meta: ImageMeta, config: bytes, layers: list[Layer], base_image: Image | None) -> dict[str, Any]:
    notes = annotations(meta)
    if base_image is not None:
        notes[A_BASE_DIGEST] = base_image.manifest_digest
        if meta.base_name:
            notes[A_BASE_NAME] = meta.base_name
    return {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": lay.digest, "size": lay.size} for lay in layers],
        "annotations": nonempty(notes),
    }


def docker_archive(layer: Path, diff_id: str, meta: ImageMeta) -> tuple[str, Iterator[bytes]]:
    """The image ``write_image(out, [layer], meta)`` writes, as a docker-archive stream for ``docker load``,
    and its image ID.

    The layer goes in uncompressed (nothing to gzip here, nor to gunzip in the engine), so the engine can
    get the image while the OCI archive is still being compressed. The image ID is the same: it hashes the
    config, which names layers by ``diff_id`` (the sha256 of ``layer``, which the engine checks).
    """
    layer = Path(layer)
    config = dumps(_config(meta, [diff_id], [_history(meta)]))
    image_id = digest(config)
    manifest = dumps(docker_manifest(image_id, meta.tags, [diff_id]))

    def member(name: str, size: int) -> bytes:
        return tarinfo(name, meta.created, size=size).tobuf(tarfile.PAX_FORMAT)

    def stream() -> Iterator[bytes]:
        for name in BLOB_DIRS:
            yield tarinfo(name, meta.created, type=tarfile.DIRTYPE, mode=0o755).tobuf(tarfile.PAX_FORMAT)
        for name, data in ((blob_path(image_id), config), ("manifest.json", manifest)):
            yield member(name, len(data)) + data + bytes(-len(data) % tarfile.BLOCKSIZE)
        with layer.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            yield member(blob_path(diff_id), size)
            while chunk := f.read(CHUNK):
                yield chunk
        yield bytes(-size % tarfile.BLOCKSIZE) + bytes(2 * tarfile.BLOCKSIZE)

    return image_id, stream()


def write_index(out: Path, archives: Sequence[Path], meta: ImageMeta) -> str:
    """Write one multi-arch OCI layout from per-arch ``archives`` of the same image; return the index digest."""
    out = Path(out)
    if not archives:
        raise BaseforgeError(f"no images to put in the index {out}")
    images = [read(Path(a)) for a in archives]
    seen: dict[str, Path] = {}
    for image in images:
        key = platform_str(image.platform)
        if key in seen:
            raise BaseforgeError(f"{seen[key]} and {image.archive} are both {key}",
                                 hint="give each architecture once")
        seen[key] = image.archive
    images.sort(key=lambda im: platform_str(im.platform))  # independent of the order of the inputs

    sources: dict[str, Source] = {}
    for image in images:
        for desc in [image.manifest["config"], *image.manifest["layers"]]:
            sources.setdefault(desc["digest"], image.source(desc["digest"]))
        sources[image.manifest_digest] = image.manifest_bytes
    index = dumps({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{"mediaType": MEDIA_MANIFEST, "digest": im.manifest_digest, "size": len(im.manifest_bytes),
                       "platform": im.platform} for im in images],
        "annotations": annotations(meta),
    })
    sources[digest(index)] = index
    descriptor = {"mediaType": MEDIA_INDEX, "digest": digest(index), "size": len(index),
                  "annotations": ref_annotations(meta.tags)}
    with atomic_file(out) as tmp:
        write_layout(tmp, sources, nonempty(descriptor), meta.created, None)
    log.info("wrote %s: index %s of %s", out, digest(index), ", ".join(seen))
    return digest(index)


def _config(meta: ImageMeta, diff_ids: list[str], history: list[dict]) -> dict[str, Any]:
    runconfig = nonempty({"Cmd": list(meta.cmd), "Entrypoint": list(meta.entrypoint), "Env": list(meta.env),
                          "WorkingDir": meta.workdir, "User": meta.user,
                          "Labels": {**meta.labels, **image_labels(meta)}})
    return {
        "created": rfc3339(meta.created),
        **platform(meta.arch),
        "config": runconfig,  # always present, even empty: some engines trip over a missing config
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }


def _history(meta: ImageMeta) -> dict[str, str]:
    return {"created": rfc3339(meta.created), "created_by": meta.comment or "baseforge"}
