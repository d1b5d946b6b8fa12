"""Config → plan, for ``apps:``: what each app is built on (an image or app of the workflow), its image
config and packages, each refusal naming the config path (:func:`baseforge.config.plan` calls
:func:`plan_app` for every app, bases first: :mod:`baseforge.appgraph`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import appgraph, dockerfile, preflight, trust
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
    #: every image reference the app is built from (its base:, or its Dockerfile's FROM and COPY --from
    #: images) with the path (cell id or apps/<name>) it names; ``base`` is the one its last stage starts from
    from_refs: tuple[tuple[str, str], ...] = ()
    #: packages installed with the base's own package manager (declarative apps)
    packages: tuple[str, ...] = ()
    #: the path (cell id) of the image at the bottom of the base chain (None for scratch)
    root: str | None = None
    network: bool = False  # build: may reach the network
    #: locked packages (baseforge.lockfile.apply_apps): the lock's path, its content key, the snapshot archive
    lock: str | None = None
    lock_key: str | None = None
    snapshot: str | None = None
    #: without checks: and expect:, the /etc/os-release the app must still have (its chain's bottom image's)
    os_release: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # an unlocked app's dict (the app_image params, its cache key) stays what it was before locks
        locked = {"lock": self.lock, "lock_key": self.lock_key, "snapshot": self.snapshot} if self.lock else {}
        return {"name": self.name, "kind": self.kind, "base": self.base, "context": self.context, "build": self.build,
                "add": self.add, "meta": self.meta.to_dict(), "expect": self.expect, "checks": list(self.checks),
                "from_refs": [list(r) for r in self.from_refs], "packages": list(self.packages), "root": self.root,
                "network": self.network, **locked, **({"os_release": self.os_release} if self.os_release else {})}


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
        what = ("scratch" if root is None else f"{root.cell.id}, a distroless variant (no apt, no dpkg)"
                if root.cell.bootstrapper == "distroless" else f"{root.cell.id} (family {root.family})")
        raise BaseforgeError(f"config apps.{name}.packages: the base chain starts at {what}, which has no apt to install them",
                             hint="build the app on a Debian-family image of this workflow, or drop packages:")
    preflight.check_debian_packages(packages, f"apps.{name}.packages")
    return packages


def merged_env(base: tuple[str, ...], env: dict[str, str]) -> tuple[str, ...]:
    """The base's environment with the app's ``env:`` added and overriding, as a Dockerfile's ``ENV`` does
    (the base's order, then the app's new names sorted)."""
    out = dict(e.split("=", 1) for e in base)
    out.update(sorted(env.items()))
    return tuple(f"{k}={v}" for k, v in out.items())


def smoke_checks(name: str, spec: dict[str, Any], packages: tuple[str, ...],
                 root: ImagePlan | None) -> tuple[tuple[Any, ...], dict[str, str]]:
    """The app's smoke test: its ``checks:`` (and ``expect:``); with neither, that its packages are
    installed (``dpkg-query -W``), else that its ``/etc/os-release`` is still the one of the image at the
    bottom of its chain; a FROM-scratch app with neither is refused (there is nothing to test)."""
    if spec.get("checks") or spec.get("expect") is not None:
        return tuple(spec.get("checks", [])), {}
    if packages:  # jq=1.6-2, jq/bookworm-backports -> jq; jq:arm64 stays (dpkg-query reads it)
        return (["dpkg-query", "-W", *(re.split(r"[=/]", p, maxsplit=1)[0] for p in packages)],), {}
    if root is not None and root.os_release:
        return (), dict(root.os_release)
    raise BaseforgeError(f"config apps.{name}: nothing to smoke-test: the app has neither expect: nor checks:",
                         hint="add expect: <text its default command prints> or checks: [<command that exits 0>]")


def app_meta(name: str, spec: dict[str, Any], tags: tuple[str, ...], base: ImageMeta | None, epoch: int) -> ImageMeta:
    """The app's image config: what the app says, else what its base has, as a Dockerfile's image inherits
    (``cmd``, ``entrypoint``, ``workdir``, ``user``; ``env`` adds to the base's; a new ``entrypoint`` drops the
    base's ``cmd``, as Docker does)."""
    inherit = base or ImageMeta(title="scratch", version="", created=epoch, arch="amd64")
    keep_cmd = "entrypoint" not in spec
    return ImageMeta(
        title=tags[0], version=tags[0].rsplit(":", 1)[1], created=inherit.created, arch=inherit.arch, tags=tags,
        cmd=tuple(spec["cmd"]) if "cmd" in spec else (inherit.cmd if keep_cmd else ()),
        entrypoint=tuple(spec.get("entrypoint", inherit.entrypoint)),
        env=merged_env(inherit.env, spec.get("env", {})), workdir=spec.get("workdir", inherit.workdir),
        user=spec.get("user", inherit.user), labels={**spec.get("labels", {}), **trust.inherited_labels(base)},
        base_name=base.tags[0] if base else "scratch", comment=f"baseforge app {name}",
    )


def plan_app(name: str, spec: dict[str, Any], images: dict[str, ImagePlan], namespace: str, workdir: Path, claim,
             apps: dict[str, AppPlan], epoch: int = 0) -> AppPlan:
    """The plan of app ``name`` (``apps``: those planned so far, its bases among them; ``epoch``: the
    ``created`` of a FROM-scratch app)."""
    where = f"apps.{name}"
    tags = tuple(f"{repo(namespace, name)}:{t}" for t in spec.get("tags", ["latest"]))
    for t in tags:
        claim(t, where, f"{where}.tags")
    if "dockerfile" in spec:
        kind, context = "dockerfile", spec["dockerfile"]
        trust.check_inside(context, workdir, f"{where}.dockerfile", "the workflow directory")
        dockerfile_path = workdir / context / "Dockerfile"
        if not dockerfile_path.is_file():
            raise BaseforgeError(f"config {where}.dockerfile: {dockerfile_path} does not exist",
                                 hint="point dockerfile: at a directory that holds a Dockerfile")
        parsed = dockerfile.parse(dockerfile_path, f"{where}.dockerfile")
        from_refs = tuple((r, resolve_base(r, images, namespace, f"{where}.dockerfile ({parsed.named_in[r]} {r})", apps))
                          for r in parsed.images)
        base = dict(from_refs)[parsed.final] if parsed.final else None
    else:
        kind, context = "declarative", spec.get("context")
        base = resolve_base(spec["base"], images, namespace, f"{where}.base", apps)
        from_refs = ((spec["base"], base),) if base else ()
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
    meta = app_meta(name, spec, tags, base_meta, epoch)
    packages = app_packages(name, spec, images[root] if root else None)
    checks, os_release = smoke_checks(name, spec, packages, images[root] if root else None)
    return AppPlan(name=name, kind=kind, base=base, context=context, build=spec.get("build"), add=dict(spec.get("add", {})),
                   network=bool(spec.get("network", False)), meta=meta, expect=spec.get("expect"), checks=checks,
                   os_release=os_release, from_refs=from_refs, packages=packages, root=root)
