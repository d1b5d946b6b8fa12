"""Config → plan: validate config/config.yaml and expand the matrix into cells, images and apps.

Every error names the config path (``images.debian.releases[1]``) and what is allowed, and is raised
before any job runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import bootstrap, configfile, distro, preflight
from .errors import BaseforgeError
from .spec import CellSpec, ImageMeta

SCHEMA = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ImagePlan:
    """One image to build: a cell, its image config, and how to load and check it."""

    cell: CellSpec
    meta: ImageMeta
    raw_key: str
    family: str
    load: str = "oci"
    checks: tuple[Any, ...] = ()
    os_release: dict[str, str] = field(default_factory=dict)
    native: bool = True
    epoch_source: str = "config"
    #: raw_key of a smaller bootstrap of the same release and arch that this one is layered on (or None)
    parent_raw: str | None = None

    @property
    def path(self) -> str:
        return self.cell.id

    def to_dict(self) -> dict[str, Any]:
        return {"cell": self.cell.to_dict(), "meta": self.meta.to_dict(), "family": self.family, "load": self.load,
                "checks": list(self.checks), "os_release": self.os_release, "uname": self.cell.platform.uname,
                "epoch_source": self.epoch_source}


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

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "base": self.base, "context": self.context, "build": self.build,
                "add": self.add, "meta": self.meta.to_dict(), "expect": self.expect, "checks": list(self.checks),
                "base_tags": list(self.base_tags)}


@dataclass
class Plan:
    images: dict[str, ImagePlan]
    apps: dict[str, AppPlan]
    registry: dict[str, Any] | None
    namespace: str

    def image(self, path: str) -> ImagePlan:
        return self.images[path]


def fmt_path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def validate(config: dict[str, Any], schema_path: Path = SCHEMA) -> None:
    """JSON-Schema check with one readable message (the first, most relevant error)."""
    schema = yaml.safe_load(schema_path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    where = fmt_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        raise BaseforgeError(f"config {where}: {error.message}", hint=f"allowed keys here: {', '.join(allowed)}")
    if error.validator == "pattern" and re.search(r"\.packages\[\d+\]$", where):
        raise BaseforgeError(f"config {where}: {error.instance!r} is not a package name", hint=preflight.PACKAGE_HINT)
    if error.validator == "pattern" and ("tags" in where or "aliases" in where):
        raise BaseforgeError(f"config {where}: {error.message}", hint="a tag is 1-128 of [A-Za-z0-9_.-], not starting with . or -")
    description = error.schema.get("description")
    raise BaseforgeError(f"config {where}: {error.message}", hint=description or "see the config reference in README.md")


def check_choice(value: str, allowed: Any, where: str, what: str) -> None:
    if value not in allowed:
        raise BaseforgeError(f"config {where}: unknown {what} {value!r}", hint=f"allowed: {', '.join(map(str, allowed))}")


def repo(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def code_hash(*modules: str) -> str:
    """Content hash of baseforge modules (files or packages) and data a rule depends on.

    Snakemake reruns a script rule when the script changes, and its between-workflow cache hashes the
    script and params only; this hash, passed as a param, makes library changes count too.
    """
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for module in sorted(modules):
        path = root / module
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts:
                digest.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:16]


def _variants(spec: dict[str, Any], preset: distro.Distro, where: str) -> list[dict[str, Any]]:
    """Variants as dicts; a bare name must be one the preset knows (``default``, ``slim`` …)."""
    out: list[dict[str, Any]] = []
    for i, v in enumerate(spec.get("variants", ["default"])):
        v = {"name": v} if isinstance(v, str) else dict(v)
        if len(v) == 1:
            check_choice(v["name"], list(preset.variants), f"{where}.variants[{i}]", f"variant of {preset.name}")
            v = {**preset.variants[v["name"]], **v}
        if any(o["name"] == v["name"] for o in out):
            raise BaseforgeError(f"config {where}.variants[{i}]: variant {v['name']!r} is listed twice")
        out.append(v)
    return out


def plan(config: dict[str, Any], workdir: Path = Path("."), resolve_epochs: bool = True) -> Plan:
    """Validate ``config`` and expand it; ``resolve_epochs=False`` skips asking mirrors (for tests)."""
    # installed (not editable), e.g. in a cluster venv, the package has no repository around it: use the
    # schema of the workflow being run
    validate(config, SCHEMA if SCHEMA.exists() else Path(workdir) / "config" / "schema.yaml")
    namespace = config.get("namespace", "baseforge")
    mirrors = config.get("mirrors", {})
    cache = config.get("package_cache", ".baseforge/cache/debs")
    images: dict[str, ImagePlan] = {}
    tag_owner: dict[str, str] = {}

    def claim(tag: str, owner: str, where: str) -> None:
        if tag in tag_owner and tag_owner[tag] != owner:
            app = next((o for o in (owner, tag_owner[tag]) if o.startswith("apps.")), None)
            raise BaseforgeError(f"config {where}: tag {tag} is given to both {tag_owner[tag]} and {owner}",
                                 hint=f"change {app}.tags (or rename the app)" if app else "rename one image, or change its aliases")
        tag_owner[tag] = owner

    for name, spec in config["images"].items():
        where = f"images.{name}"
        dname = spec.get("distro", name)
        check_choice(dname, distro.available(), f"{where}.distro" if "distro" in spec else where, "distro")
        preset = distro.get(dname)
        bname = spec.get("bootstrapper", preset.bootstrappers[0] if preset.bootstrappers else "")
        check_choice(bname, [b for b in preset.bootstrappers if b in bootstrap.available()] or bootstrap.available(),
                     f"{where}.bootstrapper", f"bootstrapper for {dname}")
        arches = spec.get("architectures", ["amd64"])
        for i, arch in enumerate(arches):
            check_choice(arch, preset.architectures, f"{where}.architectures[{i}]", f"architecture for {dname}")
        if len(set(arches)) != len(arches):
            raise BaseforgeError(f"config {where}.architectures: an architecture is listed twice")
        for i, release in enumerate(spec["releases"]):
            if preset.releases:
                check_choice(release, list(preset.releases), f"{where}.releases[{i}]", f"release of {dname}")
        variants = _variants(spec, preset, where)
        with preflight.naming(where):
            family = preset.image_family(spec.get("options", {}))
        preflight.check_image(spec, variants, family, bootstrap.get(bname), where)
        # no components: the preset's default (Debian main, Ubuntu main universe, Rocky BaseOS AppStream)
        options = {**spec.get("options", {}), **({"components": spec["components"]} if "components" in spec else {}),
                   "updates": spec.get("updates", True)}
        for r, release in enumerate(spec["releases"]):
            with preflight.naming(where):
                sources = preset.sources(release, mirrors, options)
            epoch = spec.get("epoch", config.get("epoch", "release"))
            epoch_source = "config"
            url = preset.release_file(release, sources)
            # the suite must be on the mirror, with every architecture (its Release file, which has the date)
            info = preflight.check_release(url, release, arches, where, workdir / ".baseforge/epochs.json",
                                           need_date=epoch == "release") if url and resolve_epochs else None
            if epoch == "release":
                epoch = info["date"] if info else 0
                epoch_source = f"Date of {url}" if url else "none (this distro has no Release file: 0)"
            for v, variant in enumerate(variants):
                tags: list[str] = []
                for t in preset.release_tags(release) + spec.get("aliases", {}).get(release, []):
                    tags.append(t if variant["name"] == "default" else f"{t}-{variant['name']}")
                if spec.get("latest", True) and r == 0 and v == 0:
                    tags.append("latest")
                tags = list(dict.fromkeys(tags))
                packages = tuple(spec.get("packages", [])) + tuple(variant.get("packages", []))
                bvariant = variant.get("bootstrap_variant", "minbase")
                raw_key = bvariant + ("-" + hashlib.sha256(",".join(packages).encode()).hexdigest()[:8] if packages else "")
                for a, arch in enumerate(arches):
                    suffix = "" if a == 0 else f"-{arch}"
                    full = tuple(f"{repo(namespace, name)}:{t}{suffix}" for t in tags)
                    for t in full:
                        claim(t, f"{where} ({release}, {variant['name']}, {arch})", where)
                    cell = CellSpec(
                        image=name, distro=dname, release=release, variant=variant["name"], arch=arch,
                        bootstrapper=bname, sources=sources, packages=packages,
                        keyrings=tuple(spec.get("keyrings", [])), epoch=int(epoch), base_variant=bvariant,
                        slim=bool(variant.get("slim", False)), package_cache=cache or None,
                        options=spec.get("options", {}),
                    )
                    meta = ImageMeta(
                        title=f"{repo(namespace, name)}:{tags[0]}", version=release, created=int(epoch), arch=arch,
                        tags=full, cmd=tuple(spec.get("cmd", ["sh"] if family != "debian" else ["bash"])),
                        env=tuple(f"{k}={val}" for k, val in sorted({"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **spec.get("env", {})}.items())),
                        labels=dict(spec.get("labels", {})), base_name="scratch",
                        comment=f"baseforge {bname} {dname} {release} {variant['name']} {arch}",
                    )
                    images[cell.id] = ImagePlan(cell=cell, meta=meta, raw_key=raw_key, family=family,
                                                load=spec.get("load", "oci"), checks=tuple(spec.get("checks", [])),
                                                os_release=preset.expected_os_release(release), native=a == 0,
                                                epoch_source=epoch_source)
    images = _layer(images, {name for name, spec in config["images"].items() if spec.get("layer_variants", True)})
    apps = {name: _app(name, spec, images, namespace, workdir, claim) for name, spec in config.get("apps", {}).items()}
    return Plan(images=images, apps=apps, registry=config.get("registry"), namespace=namespace)


def _layer(images: dict[str, ImagePlan], layered: set[str]) -> dict[str, ImagePlan]:
    """Give each bootstrap that only adds packages to another bootstrap of its release and arch that one as
    parent (the largest such set), when its bootstrapper can layer: mmdebstrap then starts from the parent's
    tar and installs the difference with apt, instead of downloading and installing the whole base again."""
    out = dict(images)
    for path, img in images.items():
        c = img.cell
        if c.image not in layered or not c.packages or not bootstrap.get(c.bootstrapper).layers:
            continue
        parents = {p.raw_key: p for p in images.values()
                   if (p.cell.image, p.cell.release, p.cell.arch, p.cell.base_variant) == (c.image, c.release, c.arch, c.base_variant)
                   and set(p.cell.packages) < set(c.packages)}
        if parents:
            best = max(parents.values(), key=lambda p: (len(set(p.cell.packages)), p.raw_key))
            out[path] = dataclasses.replace(img, parent_raw=best.raw_key)
    return out


def _resolve_base(ref: str, images: dict[str, ImagePlan], namespace: str, where: str) -> str | None:
    if ref == "scratch":
        return None
    for path, img in images.items():
        if ref in img.meta.tags or (namespace and f"{namespace}/{ref}" in img.meta.tags):
            return path
    known = sorted(t for img in images.values() for t in img.meta.tags if img.native)
    raise BaseforgeError(f"config {where}: base {ref!r} is not an image of this workflow",
                         hint=f"use scratch or one of: {', '.join(known)}")


def _app(name: str, spec: dict[str, Any], images: dict[str, ImagePlan], namespace: str, workdir: Path, claim) -> AppPlan:
    where = f"apps.{name}"
    tags = tuple(f"{repo(namespace, name)}:{t}" for t in spec.get("tags", ["latest"]))
    for t in tags:
        claim(t, where, f"{where}.tags")
    base_tags: tuple[str, ...] = ()
    if "dockerfile" in spec:
        kind, context = "dockerfile", spec["dockerfile"]
        dockerfile = workdir / context / "Dockerfile"
        if not dockerfile.is_file():
            raise BaseforgeError(f"config {where}.dockerfile: {dockerfile} does not exist",
                                 hint="point dockerfile: at a directory that holds a Dockerfile")
        refs = FROM.findall(dockerfile.read_text())
        stages = re.findall(r"^\s*FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text(), re.IGNORECASE | re.MULTILINE)
        bases = [_resolve_base(r, images, namespace, f"{where}.dockerfile (FROM {r})") for r in refs if r not in stages]
        base = next((b for b in bases if b), None)
        if len({b for b in bases if b}) > 1:
            raise BaseforgeError(f"config {where}.dockerfile: stages build FROM several workflow images",
                                 hint="one workflow base per app is supported")
        base_tags = tuple(r for r in refs if r not in stages and r != "scratch")
    else:
        kind, context = "declarative", spec.get("context")
        base = _resolve_base(spec["base"], images, namespace, f"{where}.base")
        if context and not (workdir / context).is_dir():
            raise BaseforgeError(f"config {where}.context: {workdir / context} is not a directory")
        if (spec.get("build") or spec.get("add")) and not context:
            raise BaseforgeError(f"config {where}: build: and add: read from context:, which is missing",
                                 hint="add context: <directory with the app's files>")
        for src in spec.get("add", {}):
            if not (workdir / context / src).exists():
                raise BaseforgeError(f"config {where}.add: {src} does not exist in {context}")
    base_img = images[base] if base else None
    meta = ImageMeta(
        title=tags[0], version=tags[0].rsplit(":", 1)[1], created=base_img.meta.created if base_img else 0,
        arch=base_img.cell.arch if base_img else "amd64", tags=tags, cmd=tuple(spec.get("cmd", [])),
        entrypoint=tuple(spec.get("entrypoint", [])),
        env=tuple(f"{k}={v}" for k, v in sorted(spec.get("env", {}).items())) or (base_img.meta.env if base_img else ()),
        workdir=spec.get("workdir", ""), labels=dict(spec.get("labels", {})),
        base_name=base_img.meta.tags[0] if base_img else "scratch", comment=f"baseforge app {name}",
    )
    return AppPlan(name=name, kind=kind, base=base, context=context, build=spec.get("build"), add=dict(spec.get("add", {})),
                   meta=meta, expect=spec.get("expect"), checks=tuple(spec.get("checks", [])), base_tags=base_tags)


def load(path: Path) -> dict[str, Any]:
    """A config file, read strictly (:func:`baseforge.configfile.load`)."""
    return configfile.load(path)
