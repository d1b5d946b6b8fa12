"""Dockerfile apps, built by buildah as reproducibly as their Dockerfile allows.

buildah (Debian's package) builds in a private, throw-away storage (``--root``/``--runroot``, the vfs
driver) that holds nothing but the base: the exact archive this workflow built, pulled from its file and
tagged as every name the Dockerfile's ``FROM`` uses, so nothing is ever pulled from a registry
(``--pull=never``). ``--timestamp $SOURCE_DATE_EPOCH`` sets the config's ``created`` and the mtime of every
file in the new layers. The result is then written like the OCI writer writes (sorted entries, owner 0,
mtimes = the epoch, canonical JSON, ``manifest.json`` beside ``index.json`` so ``docker load`` takes it),
with the base's own compressed layer blobs: the base's layers are byte for byte the base's. The config is
buildah's, unchanged, so the image ID is the one buildah computed.

What stays in the Dockerfile's hands: apt lists and logs, ``ldconfig``'s aux-cache, downloaded files, the
clock, anything random (README "Reproducible Dockerfile apps").
"""

from __future__ import annotations

import contextlib
import gzip
import io
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import paths, scratch, trust
from .app import copy_context, installed
from .appgraph import with_tag
from .dockerfile import split_digest
from .manifest import write_sbom
from .ocilayout import A_REF_NAME, BLOB_DIRS, MEDIA_INDEX, MEDIA_MANIFEST, blob_path, digest, dumps, tarinfo
from .ociread import check_pinned, read
from .run import atomic_file, prefixed, run, step, write_json
from .spec import ImageMeta


def storage(root: Path) -> list[str]:
    """buildah's global options for a private store under ``root``."""
    return ["buildah", "--root", str(root / "storage"), "--runroot", str(root / "run"), "--storage-driver", "vfs"]


def qualified(ref: str) -> str:
    """The name buildah resolves ``FROM ref`` to (docker.io for a name without a registry, ``:latest``)."""
    ref = with_tag(ref)
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if "/" in ref else f"docker.io/library/{ref}"


def build_argv(root: Path, context: Path, tag: str, epoch: int) -> list[str]:
    return [*storage(root), "build", "--timestamp", str(epoch), "--pull=never", "--isolation", "chroot",
            "--layers=false", "--no-cache", "-t", tag, "-f", str(context / "Dockerfile"), str(context)]


def build_dockerfile_app(app: dict[str, Any], base_archive: str | None, archive: str, info: str, sbom: str,
                         archives: dict[str, str] | None = None) -> dict[str, Any]:
    """Rule app_build: ``buildah build`` the app's Dockerfile on the archives of the images it names (its
    base, and every other image its stages read; ``archives``: reference -> archive, by default each
    reference's base in build/); write its OCI archive and its SBOM (the dpkg status of its tree)."""
    meta = ImageMeta.from_dict(app["meta"])
    out = Path(archive)
    # (buildah dies with the job, so a killed job's .buildah-* tree is free to go at the next run)
    with scratch.owned_dir(out.resolve().parent, ".buildah-") as root, prefixed(scratch.dies_with_job()):
        for path, refs in _by_archive(app, archives).items():
            with step(f"buildah: {path} as {', '.join(refs)}"):
                image_id = run([*storage(root), "pull", "-q", f"oci-archive:{Path(path).resolve()}"],
                               capture=True).stdout.decode().strip().splitlines()[-1]
                for ref in refs:
                    check_pinned(ref, Path(path), f"app {app['name']} ({app['context']}/Dockerfile)")
                    run([*storage(root), "tag", image_id, qualified(split_digest(ref)[0])])
        name = f"localhost/baseforge-build/{app['name']}:latest"
        with step(f"buildah build {app['context']} (--timestamp {meta.created})"):
            # COPY keeps a file's mode: the context as git has it, not as the invoking user's umask left it
            context = copy_context(Path(app["context"]), root / "context")
            run(build_argv(root, context.resolve(), name, meta.created))
        pushed = root / "pushed.tar"
        run([*storage(root), "push", "-q", name, f"oci-archive:{pushed}"])
        trust.check_built_labels(read(pushed).config, meta, f"app {app['name']}")
        result = rewrite(pushed, Path(base_archive) if base_archive else None, out, meta)
        _cleanup(root)
    write_json(info, result)
    write_sbom(installed(out), Path(sbom), name=meta.title, created=meta.created,
               namespace_seed=f"apps/{app['name']}:{result['image_id']}")
    return result


def _by_archive(app: dict[str, Any], archives: dict[str, str] | None) -> dict[str, list[str]]:
    """Archive of each image the Dockerfile names -> the references it is named by."""
    found: dict[str, list[str]] = {}
    for ref, path in app.get("from_refs", []):
        found.setdefault((archives or {}).get(ref) or paths.base(path), []).append(ref)
    return found


def _cleanup(root: Path) -> None:
    """vfs layers are plain trees (some read-only): make them removable before the temporary dir goes."""
    for path in root.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
    shutil.rmtree(root / "storage", ignore_errors=True)


def rewrite(pushed: Path, base: Path | None, out: Path, meta: ImageMeta) -> dict[str, Any]:
    """buildah's oci-archive as the OCI writer writes archives, with the base's compressed layers."""
    image = read(pushed)
    config_digest = image.image_id
    diff_ids = image.config["rootfs"]["diff_ids"]
    reuse: dict[str, dict[str, Any]] = {}
    if base is not None:
        b = read(base)
        reuse = dict(zip(b.config["rootfs"]["diff_ids"], b.manifest["layers"]))
    with tarfile.open(pushed) as src, contextlib.ExitStack() as stack:
        base_tar = stack.enter_context(tarfile.open(base)) if base is not None else None
        blobs: dict[str, tuple[tarfile.TarFile, str]] = {}
        layers = []
        for diff_id, desc in zip(diff_ids, image.manifest["layers"]):
            if diff_id in reuse:
                desc = reuse[diff_id]
                blobs[desc["digest"]] = (base_tar, blob_path(desc["digest"]))
            else:
                blobs[desc["digest"]] = (src, blob_path(desc["digest"]))
            layers.append({"mediaType": desc["mediaType"], "digest": desc["digest"], "size": desc["size"]})
        config = src.extractfile(blob_path(config_digest)).read()
        manifest = dumps({"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "layers": layers,
                          "config": {"mediaType": image.manifest["config"]["mediaType"], "digest": config_digest,
                                     "size": len(config)}})
        files: dict[str, Any] = {blob_path(d): s for d, s in blobs.items()}
        files[blob_path(config_digest)] = config
        files[blob_path(digest(manifest))] = manifest
        files["oci-layout"] = dumps({"imageLayoutVersion": "1.0.0"})
        files["index.json"] = dumps({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [
            {"mediaType": MEDIA_MANIFEST, "digest": digest(manifest), "size": len(manifest),
             "annotations": {A_REF_NAME: meta.tags[0].rpartition(":")[2]}}]})
        files["manifest.json"] = dumps([{"Config": blob_path(config_digest), "RepoTags": list(meta.tags),
                                         "Layers": [blob_path(lay["digest"]) for lay in layers]}])
        _write(out, files, meta.created)
    sizes = _raw_sizes(out, layers)
    return {"image_id": config_digest, "manifest_digest": digest(manifest), "layers": [lay["digest"] for lay in layers],
            "diff_ids": diff_ids, "size": sum(sizes), "platform": f"{image.config.get('os')}/{image.config.get('architecture')}"}


def _write(out: Path, files: dict[str, Any], mtime: int) -> None:
    with atomic_file(out) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
        for name in BLOB_DIRS:
            tf.addfile(tarinfo(name, mtime, type=tarfile.DIRTYPE, mode=0o755))
        for name in sorted(files):
            source = files[name]
            if isinstance(source, bytes):
                tf.addfile(tarinfo(name, mtime, size=len(source)), io.BytesIO(source))
            else:
                archive, member = source
                m = archive.getmember(member)
                tf.addfile(tarinfo(name, mtime, size=m.size), archive.extractfile(m))


def _raw_sizes(archive: Path, layers: list[dict[str, Any]]) -> Iterator[int]:
    with tarfile.open(archive) as tf:
        for lay in layers:
            f = tf.extractfile(blob_path(lay["digest"]))
            stream = gzip.GzipFile(fileobj=f) if lay["mediaType"].endswith("gzip") else f
            size = 0
            while chunk := stream.read(1 << 20):
                size += len(chunk)
            yield size
