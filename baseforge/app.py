"""Application images: declarative (written by the OCI writer on a base archive) or Dockerfile (docker build)."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from . import engine, sandbox
from .errors import BaseforgeError
from .oci import write_image
from .run import step, write_json
from .spec import ImageMeta


def _walk(top: Path) -> list[Path]:
    """Everything under ``top``, sorted; a symlink (also to a directory) is an entry, never followed."""
    found = []
    for root, dirs, files in os.walk(top):  # followlinks=False: a linked directory is listed, not entered
        found += [Path(root) / n for n in dirs + files]
    return sorted(found)


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
            else:
                info.size = src.stat().st_size
                info.mode = 0o755 if src.stat().st_mode & 0o111 else 0o644
                with open(src, "rb") as f:
                    tf.addfile(info, f)


def write_app(app: dict[str, Any], base_archive: str | None, archive: str, info: str, threads: int | None = None) -> None:
    """Rule app_image: run the app's build command in a copy of its context, then write its image."""
    meta = ImageMeta.from_dict(app["meta"])
    context = Path(app["context"]) if app.get("context") else None
    with tempfile.TemporaryDirectory(prefix=".app-", dir=Path(archive).resolve().parent) as tmp, sandbox.scratch() as box:
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
        if not any(out.iterdir()) and not add:
            raise BaseforgeError(f"app {app['name']} adds no files", hint="its build: must write under $OUT, or list files in add:")
        layer = Path(tmp) / "layer.tar"
        layer_from_tree(out, add, layer, meta.created, context=work)
        result = write_image(Path(archive), [layer], meta, base=Path(base_archive) if base_archive else None,
                             threads=threads)
    write_json(info, result.to_dict())


def build_dockerfile_app(app: dict[str, Any], base_record: str | None, record: str) -> None:
    """Rule app_build: make the FROM tags point at the exact base we built, then ``docker build``."""
    meta = ImageMeta.from_dict(app["meta"])
    client = engine.connect()
    if base_record:
        base = json.loads(Path(base_record).read_text())
        engine.tag(client, base["image_id"], [t if ":" in t else f"{t}:latest" for t in app.get("base_tags", [])])
    labels = {**meta.labels, "org.opencontainers.image.title": meta.title, "org.opencontainers.image.base.name": meta.base_name}
    with step(f"docker build {app['context']}"):
        image_id = engine.build(client, Path(app["context"]), meta.tags, labels)
    engine.write_record(client, record, image_id, meta.tags, "build")
