"""Config → plan, for ``apps:``: what each app is built on (an image or app of the workflow), its image
config and packages, each refusal naming the config path (:func:`baseforge.config.plan` calls
:func:`plan_app` for every app, bases first: :mod:`baseforge.appgraph`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import appgraph, preflight, trust
from .appgraph import repo
from .errors import BaseforgeError
from .spec import ImageMeta

if TYPE_CHECKING:
    from .config import ImagePlan


@dataclass(frozen=True)
class AppPlan:
    name: str
    kind: str  # "dockerfile" | "declarative"
    base: str | None  # the path (cell id) of the base image, None for scratch
    context: str | None
    build: str | None
    add: dict[str, str]
    meta: ImageMeta
    expect: str | None
    checks: tuple[Any, ...] = ()
    base_tags: tuple[str, ...] = ()
    #: packages installed with the base's own package manager (declarative apps)
    packages: tuple[str, ...] = ()
    #: the path (cell id) of the image at the bottom of the base chain (None for scratch)
    root: str | None = None
    network: bool = False  # build: may reach the network

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "base": self.base, "context": self.context, "build": self.build,
                "add": self.add, "meta": self.meta.to_dict(), "expect": self.expect, "checks": list(self.checks),
                "base_tags": list(self.base_tags), "packages": list(self.packages), "root": self.root,
                "network": self.network}


def resolve_base(ref: str, images: dict[str, ImagePlan], namespace: str, where: str,
                 apps: dict[str, AppPlan] | None = None) -> str | None:
    """The path of the image (``debian/bookworm/default/amd64``) or app (``apps/<name>``) ``ref`` names."""
    if ref == "scratch":
        return None
    refs = appgraph.candidates(ref, namespace)
    for path, img in images.items():
        if refs & set(img.meta.tags):
            return path
    for name, app in (apps or {}).items():
        if refs & set(app.meta.tags):
            return f"apps/{name}"
    known = sorted(t for img in images.values() for t in img.meta.tags if img.native)
    known += sorted(t for app in (apps or {}).values() for t in app.meta.tags)
    raise BaseforgeError(f"config {where}: base {ref!r} is not an image or app of this workflow",
                         hint=f"use scratch or one of: {', '.join(known)}")


def base_of(base: str | None, images: dict[str, ImagePlan], apps: dict[str, AppPlan]) -> tuple[ImageMeta | None, str | None]:
    """The base's metadata and the image at the bottom of its chain."""
    if base is None:
        return None, None
    if base.startswith("apps/"):
        app = apps[base.removeprefix("apps/")]
        return app.meta, app.root
    return images[base].meta, base


def app_packages(name: str, spec: dict[str, Any], root: ImagePlan | None) -> tuple[str, ...]:
    """An app's ``packages:``, which the apt of the image at the bottom of its chain installs."""
    packages = tuple(spec.get("packages", []))
    if packages and (root is None or root.family != "debian"):
        what = "scratch" if root is None else f"{root.cell.image} (family {root.family})"
        raise BaseforgeError(f"config apps.{name}.packages: the base chain starts at {what}, which has no apt to install them",
                             hint="build the app on a Debian-family image of this workflow, or drop packages:")
    preflight.check_debian_packages(packages, f"apps.{name}.packages")
    return packages


def plan_app(name: str, spec: dict[str, Any], images: dict[str, ImagePlan], namespace: str, workdir: Path, claim,
             apps: dict[str, AppPlan], epoch: int = 0) -> AppPlan:
    """The plan of app ``name`` (``apps``: those planned so far, its bases among them; ``epoch``: the
    ``created`` of a FROM-scratch app)."""
    where = f"apps.{name}"
    tags = tuple(f"{repo(namespace, name)}:{t}" for t in spec.get("tags", ["latest"]))
    for t in tags:
        claim(t, where, f"{where}.tags")
    base_tags: tuple[str, ...] = ()
    if "dockerfile" in spec:
        kind, context = "dockerfile", spec["dockerfile"]
        trust.check_inside(context, workdir, f"{where}.dockerfile", "the workflow directory")
        dockerfile = workdir / context / "Dockerfile"
        if not dockerfile.is_file():
            raise BaseforgeError(f"config {where}.dockerfile: {dockerfile} does not exist",
                                 hint="point dockerfile: at a directory that holds a Dockerfile")
        refs = appgraph.dockerfile_refs(dockerfile)
        bases = [resolve_base(r, images, namespace, f"{where}.dockerfile (FROM {r})", apps) for r in refs]
        base = next((b for b in bases if b), None)
        if len({b for b in bases if b}) > 1:
            raise BaseforgeError(f"config {where}.dockerfile: stages build FROM several workflow images",
                                 hint="one workflow base per app is supported")
        base_tags = tuple(r for r in refs if r != "scratch")
    else:
        kind, context = "declarative", spec.get("context")
        base = resolve_base(spec["base"], images, namespace, f"{where}.base", apps)
        if context:
            trust.check_inside(context, workdir, f"{where}.context", "the workflow directory")
        if context and not (workdir / context).is_dir():
            raise BaseforgeError(f"config {where}.context: {workdir / context} is not a directory")
        if (spec.get("build") or spec.get("add")) and not context:
            raise BaseforgeError(f"config {where}: build: and add: read from context:, which is missing",
                                 hint="add context: <directory with the app's files>")
        for src, dest in spec.get("add", {}).items():
            trust.check_add(src, dest, workdir / context, f"{where}.add")
            if not (workdir / context / src).exists():
                raise BaseforgeError(f"config {where}.add: {src} does not exist in {context}")
    trust.check_labels(spec.get("labels", {}), f"{where}.labels")
    base_meta, root = base_of(base, images, apps)
    meta = ImageMeta(
        title=tags[0], version=tags[0].rsplit(":", 1)[1], created=base_meta.created if base_meta else epoch,
        arch=base_meta.arch if base_meta else "amd64", tags=tags, cmd=tuple(spec.get("cmd", [])),
        entrypoint=tuple(spec.get("entrypoint", [])),
        env=tuple(f"{k}={v}" for k, v in sorted(spec.get("env", {}).items())) or (base_meta.env if base_meta else ()),
        workdir=spec.get("workdir", ""), labels={**spec.get("labels", {}), **trust.inherited_labels(base_meta)},
        base_name=base_meta.tags[0] if base_meta else "scratch", comment=f"baseforge app {name}",
    )
    return AppPlan(name=name, kind=kind, base=base, context=context, build=spec.get("build"), add=dict(spec.get("add", {})),
                   network=bool(spec.get("network", False)), meta=meta, expect=spec.get("expect"),
                   checks=tuple(spec.get("checks", [])), base_tags=base_tags,
                   packages=app_packages(name, spec, images[root] if root else None), root=root)
