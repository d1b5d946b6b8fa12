"""Declarative application images: the app's files (built or added) as a layer, written by the OCI writer on a
base archive, and the SBOM of an app image (the dpkg status of its topmost layer that has one). Packages:
baseforge.app_packages (its code counts in the cache key only of the apps that install packages);
Dockerfile apps: baseforge.buildah."""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import sandbox, scratch
from .errors import BaseforgeError
from .layers import OPAQUE, WHITEOUT
from .manifest import DPKG_STATUS, DPKG_STATUS_D, Package, parse_dpkg_status, write_sbom
from .oci import write_image
from .ociread import check_pinned, read
from .run import step, write_json
from .spec import ImageMeta

log = logging.getLogger("baseforge")


def _walk(top: Path) -> list[Path]:
    """Everything under ``top``, sorted; a symlink (also to a directory) is an entry, never followed."""
    found = []
    for root, dirs, files in os.walk(top):  # followlinks=False: a linked directory is listed, not entered
        found += [Path(root) / n for n in dirs + files]
    return sorted(found)


def checkout_mode(path: Path) -> int:
    """The mode a file is given in an image: git's (0755 when any execute bit is set, else 0644; 0755 for a
    directory), never what the invoking user's umask made of the checkout (0664, 0600 …)."""
    st_mode = path.lstat().st_mode
    return 0o755 if stat.S_ISDIR(st_mode) or st_mode & 0o111 else 0o644


def copy_context(context: Path, dest: Path) -> Path:
    """A copy of ``context`` at ``dest`` with :func:`checkout_mode` modes (symlinks kept as links)."""
    shutil.copytree(context, dest, symlinks=True)
    for p in [dest, *_walk(dest)]:
        if not p.is_symlink():
            p.chmod(checkout_mode(p))
    return dest


def _check_inside(src: Path, context: Path, where: str) -> None:
    """``src`` (an add: source in the context copy, after the build ran) must not reach out of the context
    through a symlinked directory: the layer would hold the build host's file."""
    if not src.parent.resolve().is_relative_to(context.resolve()):
        raise BaseforgeError(f"{where}: {src.relative_to(context)} leads outside the context through a symlink",
                             hint="the build must not replace context directories with links out of it")


def layer_from_tree(tree: Path, add: dict[Path, str], out: Path, epoch: int, context: Path | None = None) -> None:
    """A deterministic layer tar: every file under ``tree`` at /, plus ``add`` (source in ``context`` -> image path).

    Symlinks are stored as symlinks, never followed, so nothing outside ``tree`` and ``context`` is read."""
    entries: dict[str, Path] = {}
    for p in _walk(tree):
        entries[str(p.relative_to(tree))] = p
    for src, dest in add.items():
        _check_inside(src, context or src.parent, "add")
        dest = dest.strip("/")
        entries[dest] = src
        if src.is_dir() and not src.is_symlink():
            for p in _walk(src):
                entries[f"{dest}/{p.relative_to(src)}"] = p
    # parents of every entry, as directories
    for name in list(entries):
        parts = name.split("/")
        for i in range(1, len(parts)):
            entries.setdefault("/".join(parts[:i]), None)  # type: ignore[arg-type]
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(entries, key=lambda n: n.split("/")):
            src = entries[name]
            info = tarfile.TarInfo(name)
            info.mtime = epoch
            if src is not None and src.is_symlink():
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, str(src.readlink()), 0o777
                tf.addfile(info)
            elif src is None or src.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif not stat.S_ISREG(src.lstat().st_mode):  # a fifo would hang the job, a socket or device has no place
                raise BaseforgeError(f"app layer: {name} is not a file, directory or symlink",
                                     hint="the build must write only files, directories and symlinks under $OUT")
            else:
                info.size, info.mode = src.stat().st_size, checkout_mode(src)
                with open(src, "rb") as f:
                    tf.addfile(info, f)


def write_app(app: dict[str, Any], base_archive: str | None, archive: str, info: str, below: list[Path] | None = None,
              threads: int | None = None) -> None:
    """Run the app's build command in a copy of its context, then write its image.

    ``below``: layers that go between the base and the app's files (its packages, baseforge.app_packages)."""
    meta = ImageMeta.from_dict(app["meta"])
    context = Path(app["context"]) if app.get("context") else None
    with scratch.owned_dir(Path(archive).resolve().parent, ".app-") as tmp, sandbox.scratch() as box:
        work, out = box / "context", box / "out"
        out.mkdir()
        if context:
            shutil.copytree(context, work, symlinks=True)
        else:
            work.mkdir()
        if app.get("build"):
            with step(f"build app {app['name']} (sandboxed): {app['build']}"):
                env = {**dict(e.split("=", 1) for e in meta.env), "SOURCE_DATE_EPOCH": str(meta.created)}
                sandbox.run_build(app["build"], work, out, env, network=bool(app.get("network")))
        add = {work / src: dest for src, dest in app.get("add", {}).items()}
        layers = list(below or [])
        if any(out.iterdir()) or add:
            layers.append(Path(tmp) / "layer.tar")
            layer_from_tree(out, add, layers[-1], meta.created, context=work)
        elif not layers:
            raise BaseforgeError(f"app {app['name']} adds no files",
                                 hint="its build: must write under $OUT, or list files in add: or packages:")
        result = write_image(Path(archive), layers, meta, base=Path(base_archive) if base_archive else None,
                             threads=threads)
    write_json(info, result.to_dict())


def check_pins(app: dict[str, Any], base_archive: str | None) -> None:
    """A ``base:`` pinned by digest must be the base this workflow built (baseforge.ociread.check_pinned)."""
    for ref, _ in app.get("from_refs", []) if base_archive else []:
        check_pinned(ref, Path(base_archive), f"config apps.{app['name']}.base")


def _layers(archive: Path) -> Iterator[tarfile.TarFile]:
    """The layers of the image in ``archive``, top first, each opened as a stream."""
    manifest = read(archive).manifest
    with tarfile.open(archive, "r:") as outer:
        for desc in reversed(manifest["layers"]):
            blob = outer.extractfile("blobs/" + desc["digest"].replace(":", "/"))
            stream = gzip.GzipFile(fileobj=blob, mode="rb") if desc["mediaType"].endswith("gzip") else blob
            with tarfile.open(fileobj=stream, mode="r|") as tf:
                yield tf


def _name(member: tarfile.TarInfo) -> str:
    return "/".join(p for p in member.name.split("/") if p not in ("", "."))


def installed(archive: Path) -> list[Package]:
    """The dpkg packages of the image in ``archive``: the status file of the topmost layer that has one, else
    (a distroless base) the records in ``status.d/`` that the layers leave, whiteouts applied."""
    folder, base = DPKG_STATUS.rpartition("/")[::2]
    for tf in _layers(archive):
        for m in tf:
            if _name(m) == f"{folder}/{WHITEOUT}{base}":
                return []
            if _name(m) == DPKG_STATUS and m.isreg():
                return parse_dpkg_status(tf.extractfile(m).read().decode("utf-8", errors="replace"))
    records: dict[str, str | None] = {}  # status.d/<pkg> -> its paragraph (None: deleted by an upper layer)
    top = DPKG_STATUS_D.rstrip("/")
    for tf in _layers(archive):
        gone = False
        for m in tf:
            name = _name(m)
            if not name.startswith(DPKG_STATUS_D):
                gone = gone or name in (f"{top.rpartition('/')[0]}/{WHITEOUT}status.d", f"{top}/{OPAQUE}")
                continue
            entry = name.removeprefix(DPKG_STATUS_D)
            if entry == OPAQUE:
                gone = True
            elif entry.startswith(WHITEOUT):
                records.setdefault(entry.removeprefix(WHITEOUT), None)
            elif m.isreg() and not entry.endswith(".md5sums"):
                records.setdefault(entry, tf.extractfile(m).read().decode("utf-8", errors="replace").strip("\n"))
        if gone:  # this layer replaced status.d: nothing below counts
            break
    paragraphs = [records[k] for k in sorted(records) if records[k]]
    return parse_dpkg_status("\n\n".join(paragraphs) + "\n") if paragraphs else []


def write_declarative(app: dict[str, Any], base_archive: str | None, archive: str, info: str, sbom: str,
                      below: list[Path] | None = None, threads: int | None = None) -> None:
    """Rule app_image (an app without packages; with them, baseforge.app_packages): its image, then its SBOM."""
    meta = ImageMeta.from_dict(app["meta"])
    check_pins(app, base_archive)
    write_app(app, base_archive, archive, info, below=below, threads=threads)
    image_id = json.loads(Path(info).read_text())["image_id"]
    pkgs = installed(Path(archive))
    write_sbom(pkgs, Path(sbom), name=meta.title, created=meta.created, namespace_seed=f"apps/{app['name']}:{image_id}")
    log.info("%s: %d packages in its SBOM", meta.title, len(pkgs))
