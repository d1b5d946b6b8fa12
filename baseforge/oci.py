"""Deterministic OCI images without a daemon: layer tars in, one loadable archive out.

An archive written here is at the same time an OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/…``) and a docker-archive (``manifest.json``), like ``docker save`` of Docker 25: it
loads with ``docker load`` (Engine 20.10 and later) and reads with ``skopeo copy oci-archive:…``.

Same inputs give the same bytes: gzip without name or mtime at a fixed level, deflated in 1 MiB blocks
in parallel (like pigz: the bytes do not depend on the thread count), JSON with sorted keys
and compact separators, an outer tar with sorted entries, owner 0:0, no user/group names and every
mtime set to the image's ``created``. The one thing outside our control is the deflate stream
itself: another zlib implementation (zlib-ng, s390x DFLTCC) may compress the same bytes differently.
That changes layer and manifest digests but never the image ID, which hashes the config, which
names layers by their uncompressed digests (diff_ids).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import gzip
import hashlib
import io
import json
import logging
import os
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Union

from .errors import BaseforgeError
from .run import atomic_file
from .spec import PLATFORMS, ImageMeta

log = logging.getLogger("baseforge")

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

CHUNK = 1 << 20
BLOB_DIRS = ("blobs", "blobs/sha256")  # the directory entries of an archive, before its blobs

#: where a blob's bytes come from: in memory, a file, or a member of an existing archive
Source = Union[bytes, Path, tuple[Path, str]]


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


@dataclass(frozen=True)
class _Layer:
    digest: str
    size: int  # compressed
    diff_id: str
    raw_size: int  # uncompressed


@dataclass(frozen=True)
class _Image:
    """An image read back from an archive, with the exact bytes of its manifest and config."""

    archive: Path
    members: dict[str, str]  # normalized path -> member name in the archive
    manifest_bytes: bytes
    manifest: dict[str, Any]
    config: dict[str, Any]

    @property
    def manifest_digest(self) -> str:
        return _digest(self.manifest_bytes)

    @property
    def platform(self) -> dict[str, str]:
        keys = ("architecture", "os", "variant")
        return {k: self.config[k] for k in keys if self.config.get(k)}

    def source(self, digest: str) -> tuple[Path, str]:
        return self.archive, self.members[_blob_path(digest)]


# -- public API ----------------------------------------------------------------------------------


def write_image(out: Path, layers: Sequence[Path], meta: ImageMeta, base: Path | None = None,
                level: int = 6) -> ImageResult:
    """Write the image of uncompressed ``layers`` (in order, on top of ``base``) to the archive ``out``.

    ``base`` is an archive written earlier by this function; its layer blobs, diff_ids and history
    are reused as they are. ``None`` means FROM scratch. ``level`` is the gzip level of new layers.
    """
    out, layers = Path(out), [Path(p) for p in layers]
    platform = _platform(meta.arch)
    missing = [str(p) for p in layers if not p.is_file()]
    if missing:
        raise BaseforgeError(f"layer tarball not found: {', '.join(missing)}",
                             hint="build the rootfs first, or check the path")
    if not 0 <= level <= 9:
        raise BaseforgeError(f"gzip level {level} is not in 0..9")
    created = _rfc3339(meta.created)

    base_image = _read(Path(base)) if base is not None else None
    old: list[_Layer] = []
    history: list[dict[str, Any]] = []
    sources: dict[str, Source] = {}
    if base_image is not None:
        if base_image.platform != platform:
            raise BaseforgeError(
                f"base {base} is for {_platform_str(base_image.platform)}, not {_platform_str(platform)}",
                hint=f"use the {meta.arch} build of the base image")
        old = _base_layers(base_image)
        history = list(base_image.config.get("history", []))
        sources.update({layer.digest: base_image.source(layer.digest) for layer in old})
    if not old and not layers:
        raise BaseforgeError(f"image {meta.title} has no layers", hint="give at least one layer tarball")

    with atomic_file(out) as tmp, tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.blobs.") as blobdir:
        new = []
        for path in layers:
            layer = _compress_layer(path, Path(blobdir), level)
            sources[layer.digest] = Path(blobdir) / layer.digest.split(":")[1]
            new.append(layer)
        all_layers = old + new
        history += [_history(meta) for _ in new]

        config = _dumps(_config(meta, platform, [lay.diff_id for lay in all_layers], history))
        annotations = {A_CREATED: created, A_TITLE: meta.title, A_VERSION: meta.version}
        if base_image is not None:
            annotations[A_BASE_DIGEST] = base_image.manifest_digest
            if meta.base_name:
                annotations[A_BASE_NAME] = meta.base_name
        manifest = _dumps({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": _digest(config), "size": len(config)},
            "layers": [{"mediaType": MEDIA_LAYER, "digest": lay.digest, "size": lay.size} for lay in all_layers],
            "annotations": _nonempty(annotations),
        })
        sources[_digest(config)] = config
        sources[_digest(manifest)] = manifest

        descriptor = {"mediaType": MEDIA_MANIFEST, "digest": _digest(manifest), "size": len(manifest),
                      "platform": platform, "annotations": _ref_annotations(meta.tags)}
        docker_manifest = _docker_manifest(_digest(config), meta.tags, [lay.digest for lay in all_layers])
        _write_layout(tmp, sources, _nonempty(descriptor), meta.created, docker_manifest)

    result = ImageResult(
        image_id=_digest(config),
        manifest_digest=_digest(manifest),
        layers=tuple(lay.digest for lay in all_layers),
        diff_ids=tuple(lay.diff_id for lay in all_layers),
        size=sum(lay.raw_size for lay in all_layers),
        platform=_platform_str(platform),
    )
    log.info("wrote %s: %s %s, %d layers, %d bytes", out, result.platform, result.image_id,
             len(result.layers), result.size)
    return result


def docker_archive(layer: Path, diff_id: str, meta: ImageMeta) -> tuple[str, Iterator[bytes]]:
    """The image ``write_image(out, [layer], meta)`` writes, as a docker-archive stream for ``docker load``,
    and its image ID.

    The layer goes in uncompressed (nothing to gzip here, nor to gunzip in the engine), so the engine can
    get the image while the OCI archive is still being compressed. The image ID is the same: it hashes the
    config, which names layers by ``diff_id`` (the sha256 of ``layer``, which the engine checks).
    """
    layer = Path(layer)
    config = _dumps(_config(meta, _platform(meta.arch), [diff_id], [_history(meta)]))
    image_id = _digest(config)
    manifest = _dumps(_docker_manifest(image_id, meta.tags, [diff_id]))

    def member(name: str, size: int) -> bytes:
        return _tarinfo(name, meta.created, size=size).tobuf(tarfile.PAX_FORMAT)

    def stream() -> Iterator[bytes]:
        for name in BLOB_DIRS:
            yield _tarinfo(name, meta.created, type=tarfile.DIRTYPE, mode=0o755).tobuf(tarfile.PAX_FORMAT)
        for name, data in ((_blob_path(image_id), config), ("manifest.json", manifest)):
            yield member(name, len(data)) + data + bytes(-len(data) % tarfile.BLOCKSIZE)
        with layer.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            yield member(_blob_path(diff_id), size)
            while chunk := f.read(CHUNK):
                yield chunk
        yield bytes(-size % tarfile.BLOCKSIZE) + bytes(2 * tarfile.BLOCKSIZE)

    return image_id, stream()


def read_image(archive: Path) -> dict[str, Any]:
    """The manifest and config of the single image in ``archive``, with its image ID and manifest digest."""
    image = _read(Path(archive))
    return {"manifest": image.manifest, "config": image.config,
            "image_id": image.manifest["config"]["digest"], "manifest_digest": image.manifest_digest}


def write_index(out: Path, archives: Sequence[Path], meta: ImageMeta) -> str:
    """Write one multi-arch OCI layout from per-arch ``archives`` of the same image; return the index digest."""
    out = Path(out)
    if not archives:
        raise BaseforgeError(f"no images to put in the index {out}")
    images = [_read(Path(a)) for a in archives]
    seen: dict[str, Path] = {}
    for image in images:
        key = _platform_str(image.platform)
        if key in seen:
            raise BaseforgeError(f"{seen[key]} and {image.archive} are both {key}",
                                 hint="give each architecture once")
        seen[key] = image.archive
    images.sort(key=lambda im: _platform_str(im.platform))  # independent of the order of the inputs

    sources: dict[str, Source] = {}
    for image in images:
        for desc in [image.manifest["config"], *image.manifest["layers"]]:
            sources.setdefault(desc["digest"], image.source(desc["digest"]))
        sources[image.manifest_digest] = image.manifest_bytes
    created = _rfc3339(meta.created)
    index = _dumps({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{"mediaType": MEDIA_MANIFEST, "digest": im.manifest_digest, "size": len(im.manifest_bytes),
                       "platform": im.platform} for im in images],
        "annotations": _nonempty({A_CREATED: created, A_TITLE: meta.title, A_VERSION: meta.version}),
    })
    sources[_digest(index)] = index
    descriptor = {"mediaType": MEDIA_INDEX, "digest": _digest(index), "size": len(index),
                  "annotations": _ref_annotations(meta.tags)}
    with atomic_file(out) as tmp:
        _write_layout(tmp, sources, _nonempty(descriptor), meta.created, None)
    log.info("wrote %s: index %s of %s", out, _digest(index), ", ".join(seen))
    return _digest(index)


# -- building blocks -----------------------------------------------------------------------------


def _deflate_blocks(src: IO[bytes], level: int) -> Iterator[tuple[bytes, bytes]]:
    """(input block, its raw deflate data) in order, the blocks compressed in parallel threads.

    Like pigz, each 1 MiB block is a separate deflate run primed with the last 32 KiB of the block before
    it and ended by a sync flush (the last one by a final block), so the concatenation is one valid
    deflate stream. The bytes depend on the input, ``level`` and zlib, not on the number of threads.
    """
    def deflate(block: bytes, primer: bytes, last: bool) -> bytes:
        comp = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY,
                                **({"zdict": primer} if primer else {}))
        return comp.compress(block) + comp.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    workers = max(1, min(8, os.cpu_count() or 1))
    pending: collections.deque = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:  # zlib lets go of the GIL while it works
        primer, block = b"", src.read(CHUNK)
        while True:
            following = src.read(CHUNK) if block else b""
            pending.append((block, pool.submit(deflate, block, primer, not following)))
            if len(pending) > 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
            if not following:
                break
            primer, block = block[-32768:], following
        while pending:
            done, future = pending.popleft()
            yield done, future.result()


def _compress_layer(path: Path, blobdir: Path, level: int) -> _Layer:
    """Gzip ``path`` into ``blobdir`` in one streaming pass (blocks deflated in parallel), hashing both sides.

    The gzip header is written by hand (no name, mtime 0, OS "unknown" like Python's and Go's gzip)
    because zlib's own header carries the OS it was built for.
    """
    diff, blob = hashlib.sha256(), hashlib.sha256()
    crc = raw_size = size = 0
    xfl = 2 if level == 9 else 4 if level == 1 else 0
    with tempfile.NamedTemporaryFile(dir=blobdir, delete=False) as dst, path.open("rb") as src:

        def emit(data: bytes) -> None:
            nonlocal size
            if data:
                blob.update(data)
                dst.write(data)
                size += len(data)

        emit(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([xfl, 255]))
        for chunk, deflated in _deflate_blocks(src, level):
            diff.update(chunk)
            crc = zlib.crc32(chunk, crc)
            raw_size += len(chunk)
            emit(deflated)
        emit(struct.pack("<II", crc, raw_size & 0xFFFFFFFF))
    digest = "sha256:" + blob.hexdigest()
    os.replace(dst.name, blobdir / blob.hexdigest())
    log.info("layer %s: %d -> %d bytes, %s", path.name, raw_size, size, digest)
    return _Layer(digest, size, "sha256:" + diff.hexdigest(), raw_size)


def _base_layers(image: _Image) -> list[_Layer]:
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
            layers.append(_Layer(desc["digest"], desc["size"], diff_id, raw_size))
    return layers


def _inflate(fileobj: IO[bytes], media_type: str) -> IO[bytes]:
    if media_type.endswith("gzip"):
        return gzip.GzipFile(fileobj=fileobj, mode="rb")
    if media_type.endswith(".tar") or media_type.endswith(".tar.rootfs.diff"):
        return fileobj
    raise BaseforgeError(f"cannot reuse a base layer of media type {media_type}", hint="rebuild the base with baseforge")


def _config(meta: ImageMeta, platform: dict[str, str], diff_ids: list[str], history: list[dict]) -> dict[str, Any]:
    created = _rfc3339(meta.created)
    labels = dict(meta.labels)
    labels.update(_nonempty({A_CREATED: created, A_VERSION: meta.version, A_TITLE: meta.title,
                             A_BASE_NAME: meta.base_name}))
    runconfig = _nonempty({"Cmd": list(meta.cmd), "Entrypoint": list(meta.entrypoint), "Env": list(meta.env),
                           "WorkingDir": meta.workdir, "Labels": labels})
    return {
        "created": created,
        **platform,
        "config": runconfig,  # always present, even empty: some engines trip over a missing config
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }


def _tarinfo(name: str, mtime: int, **kw: Any) -> tarfile.TarInfo:
    """An outer-tar entry: mode 0644, owner 0:0 without names, the image's mtime."""
    ti = tarfile.TarInfo(name)
    ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = mtime, 0o644, 0, 0, "", ""
    for key, value in kw.items():
        setattr(ti, key, value)
    return ti


def _docker_manifest(config_digest: str, tags: Sequence[str], layer_digests: Sequence[str]) -> list[dict[str, Any]]:
    """``manifest.json`` of a docker-archive: one image, its config and layer blobs, its tags."""
    return [{"Config": _blob_path(config_digest), "RepoTags": list(tags), "Layers": [_blob_path(d) for d in layer_digests]}]


def _history(meta: ImageMeta) -> dict[str, str]:
    return {"created": _rfc3339(meta.created), "created_by": meta.comment or "baseforge"}


def _write_layout(tmp: Path, sources: dict[str, Source], descriptor: dict[str, Any], mtime: int,
                  docker_manifest: list[dict[str, Any]] | None) -> None:
    """The outer tar: every blob of ``sources``, ``index.json`` naming ``descriptor``, and ``manifest.json``."""
    files: dict[str, Source] = {_blob_path(d): s for d, s in sources.items()}
    files["oci-layout"] = _dumps({"imageLayoutVersion": "1.0.0"})
    files["index.json"] = _dumps({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [descriptor]})
    if docker_manifest is not None:
        files["manifest.json"] = _dumps(docker_manifest)

    def info(name: str, **kw: Any) -> tarfile.TarInfo:
        return _tarinfo(name, mtime, **kw)

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


def _read(archive: Path) -> _Image:
    """Read and check the one image in an OCI layout archive (as written by :func:`write_image`)."""
    if not archive.is_file():
        raise BaseforgeError(f"image archive not found: {archive}")
    try:
        with tarfile.open(archive, "r:") as tf:
            members = {os.path.normpath(m.name.lstrip("/")): m.name for m in tf.getmembers() if m.isfile()}

            def blob(digest: str) -> bytes:
                name = members.get(_blob_path(digest))
                if name is None:
                    raise BaseforgeError(f"{archive}: blob {digest} is missing", hint="rebuild the archive")
                data = tf.extractfile(name).read()
                if _digest(data) != digest:
                    raise BaseforgeError(f"{archive}: blob {digest} does not match its digest", hint="rebuild the archive")
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
    return _Image(archive, members, manifest_bytes, manifest, config)


# -- small helpers -------------------------------------------------------------------------------


def _dumps(obj: Any) -> bytes:
    """Canonical JSON: the same object always gives the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob_path(digest: str) -> str:
    algo, _, hexdigest = digest.partition(":")
    return f"blobs/{algo}/{hexdigest}"


def _rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _nonempty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v}


def _platform(arch: str) -> dict[str, str]:
    if arch not in PLATFORMS:
        raise BaseforgeError(f"unknown architecture {arch!r}", hint=f"use one of {', '.join(PLATFORMS)}")
    p = PLATFORMS[arch]
    return _nonempty({"architecture": p.oci, "os": "linux", "variant": p.variant})


def _platform_str(platform: dict[str, str]) -> str:
    return "/".join(platform[k] for k in ("os", "architecture", "variant") if platform.get(k))


def _ref_annotations(tags: Sequence[str]) -> dict[str, str]:
    """``ref.name`` is the tag part of the first tag ("latest" if it has none); containerd wants the full name."""
    if not tags:
        return {}
    name = tags[0].split("@", 1)[0]
    _, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        tag = "latest"
    return {A_REF_NAME: tag, A_CONTAINERD_NAME: tags[0]}
