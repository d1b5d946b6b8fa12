"""Config → plan: validate config/config.yaml and expand the matrix into cells, images and apps.

Every error names the config path (``images.debian.releases[1]``) and what is allowed, and is raised
before any job runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import appgraph, appplan, bootstrap, configfile, distro, lockfile, preflight, sign, trust
from .appgraph import repo
from .appplan import AppPlan
from .errors import BaseforgeError
from .secret import redact
from .spec import CellSpec, ImageMeta

SCHEMA = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


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

    def to_dict(self) -> dict[str, Any]:
        return {"cell": self.cell.to_dict(), "meta": self.meta.to_dict(), "family": self.family, "load": self.load,
                "checks": list(self.checks), "os_release": self.os_release, "uname": self.cell.platform.uname,
                "epoch_source": self.epoch_source}


@dataclass
class Plan:
    images: dict[str, ImagePlan]
    apps: dict[str, AppPlan]
    registry: dict[str, Any] | None
    namespace: str


def fmt_path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def validate(config: dict[str, Any], schema_path: Path = SCHEMA) -> None:
    """JSON-Schema check with one readable message (the first, most relevant error)."""
    schema = yaml.safe_load(schema_path.read_text())
    validator = trust.validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    where = fmt_path(error.absolute_path)
    if trust.shows_secret(error.instance):  # a URL that may hold a password is never quoted
        raise BaseforgeError(f"config {where}: is not allowed here (the value is not shown: it may hold a password)",
                             hint=error.schema.get("description") or trust.URL_HINT)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in allowed]
        raise BaseforgeError(f"config {where}: unknown key {', '.join(map(repr, unknown))}{did_you_mean(unknown[0], allowed)}",
                             hint=f"allowed keys here: {', '.join(allowed)}")
    if error.validator == "pattern" and re.search(r"\.(packages|distroless)\[\d+\]$", where):
        raise BaseforgeError(f"config {where}: {error.instance!r} is not a package name",
                             hint=preflight.package_hint(config, list(error.absolute_path)))
    if error.validator == "pattern" and ("tags" in where or "aliases" in where):
        raise BaseforgeError(f"config {where}: {error.message}", hint="a tag is 1-128 of [A-Za-z0-9_.-], not starting with . or -")
    description = error.schema.get("description")
    message = error.message
    if error.validator in ("anyOf", "oneOf"):
        message = f"{error.instance!r} is not allowed here"
    if error.validator == "type":
        wanted = [error.validator_value] if isinstance(error.validator_value, str) else error.validator_value
        message = f"{error.instance!r} is {YAML_TYPES.get(type(error.instance).__name__, 'a value')}, it must be " + \
            " or ".join(TYPE_NAMES.get(t, t) for t in wanted)
    raise BaseforgeError(f"config {where}: {message}", hint=description or "see the config reference in config/README.md")


def did_you_mean(word: Any, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a misspelt ``word``, else ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


#: JSON Schema types, and Python's types of what YAML gave, as a config's reader calls them
TYPE_NAMES = {"array": "a list ([a, b] or one '- item' per line)", "object": "a mapping (key: value)", "string": "a string",
              "boolean": "true or false", "integer": "a whole number", "number": "a number", "null": "null"}
YAML_TYPES = {"list": "a list", "dict": "a mapping", "str": "a string", "bool": "true/false", "int": "a number",
              "float": "a number", "NoneType": "empty (null)"}


def check_choice(value: str, allowed: Any, where: str, what: str) -> None:
    if value not in allowed:
        raise BaseforgeError(f"config {where}: unknown {what} {value!r}{did_you_mean(value, allowed)}",
                             hint=f"allowed: {', '.join(map(str, allowed))}")


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


def plan(config: dict[str, Any], workdir: Path = Path("."), resolve_epochs: bool = True, locks: bool = True) -> Plan:
    """Validate ``config`` and expand it; ``resolve_epochs=False`` skips asking mirrors (for tests);
    ``locks=False`` ignores the cells' lock files (``baseforge lock`` resolves against the mirror)."""
    # installed (not editable), e.g. in a cluster venv, the package has no repository around it: use the
    # schema of the workflow being run
    validate(config, SCHEMA if SCHEMA.exists() else Path(workdir) / "config" / "schema.yaml")
    _check_mirrors(config.get("mirrors", {}))
    trust.check_urls(config)
    trust.check_registry(config.get("registry"))
    namespace = config.get("namespace", "baseforge")
    tag_owner: dict[str, str] = {}

    def claim(tag: str, owner: str, where: str) -> None:
        if tag in tag_owner and tag_owner[tag] != owner:
            app = next((o for o in (owner, tag_owner[tag]) if o.startswith("apps.")), None)
            raise BaseforgeError(f"config {where}: tag {tag} is given to both {tag_owner[tag]} and {owner}",
                                 hint=f"change {app}.tags (or rename the app)" if app else "rename one image, or change its aliases")
        tag_owner[tag] = owner

    images: dict[str, ImagePlan] = {}
    for name, spec in config["images"].items():
        images.update(_image(name, spec, config, workdir if resolve_epochs else None, claim, locks))
    if locks:
        images = lockfile.apply(images, workdir, config.get("mirrors", {}).get(lockfile.SNAPSHOT_KEY))
    images = _layer(images, {name for name, spec in config["images"].items() if spec.get("layer_variants", True)})
    epoch = scratch_epoch(config, images)
    apps: dict[str, AppPlan] = {}
    for name in appgraph.order(config.get("apps", {}), namespace, workdir):  # every base app before its apps
        apps[name] = appplan.plan_app(name, config["apps"][name], images, namespace, workdir, claim, apps, epoch)
    apps = {name: apps[name] for name in config.get("apps", {})}
    if locks:
        apps = lockfile.apply_apps(apps, images, workdir, config.get("mirrors", {}).get(lockfile.SNAPSHOT_KEY))
    sign.check((config.get("registry") or {}).get("sign"), workdir)
    return Plan(images=images, apps=apps, registry=config.get("registry"), namespace=namespace)


def _check_mirrors(mirrors: dict[str, str]) -> None:
    """Every ``mirrors:`` key must be one a preset reads (a plugin's preset brings its own keys)."""
    if not mirrors:
        return
    # the snapshot archive no preset reads: locked cells download from it (lockfile)
    known = {**distro.mirror_keys(), lockfile.SNAPSHOT_KEY: ["locked cells"]}
    for key in mirrors:
        if key not in known:
            raise BaseforgeError(f"config mirrors.{key}: no distro preset reads a mirror called {key!r}",
                                 hint="mirror keys of the presets there are: " + ", ".join(
                                     f"{k} ({', '.join(v)})" for k, v in sorted(known.items())))


def _preset(name: str, spec: dict[str, Any]) -> tuple[distro.Distro, str, list[str]]:
    """The image's distro preset, bootstrapper and architectures, each checked against what is allowed."""
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
    return preset, bname, arches


def _epoch(spec: dict[str, Any], config: dict[str, Any], preset: distro.Distro, release: str,
           sources: tuple, workdir: Path | None, arches: list[str], where: str) -> tuple[int, str]:
    """The release's SOURCE_DATE_EPOCH and where it came from (``workdir`` None: do not ask the mirror),
    once the mirror is seen to have the suite with every architecture (:func:`preflight.check_release`)."""
    epoch = spec.get("epoch", config.get("epoch", "release"))
    url = preset.release_file(release, sources)
    info = preflight.check_release(url, release, arches, where, workdir / ".baseforge/epochs.json",
                                   need_date=epoch == "release") if url and workdir is not None else None
    if epoch != "release":
        return int(epoch), "config"
    return (info["date"] if info else 0), f"Date of {redact(url)}" if url else "none (this distro has no Release file: 0)"


def _tags(preset: distro.Distro, spec: dict[str, Any], release: str, variant: str, latest: bool) -> list[str]:
    """The tags of one (release, variant): the preset's release names and the aliases, ``-<variant>`` added."""
    tags = [t if variant == "default" else f"{t}-{variant}"
            for t in preset.release_tags(release) + spec.get("aliases", {}).get(release, [])]
    if spec.get("latest", True) and latest:
        tags.append("latest")
    return list(dict.fromkeys(tags))


def _image(name: str, spec: dict[str, Any], config: dict[str, Any], workdir: Path | None, claim,
           locks: bool = True) -> dict[str, ImagePlan]:
    """The cells of one image of the config: every release × variant × architecture (``workdir`` None: do
    not ask mirrors; ``locks``: a release whose every cell is locked takes its date from the locks)."""
    where = f"images.{name}"
    preset, bname, arches = _preset(name, spec)
    variants = _variants(spec, preset, where)
    trust.check_image(name, spec, preset, bootstrap.get(bname))
    preflight.check_bootstrap_variants(variants, bootstrap.get(bname), where)
    with preflight.naming(where):
        family = preset.image_family(spec.get("options", {}))
    if family == "debian":
        preflight.check_debian_packages(spec.get("packages", []), f"{where}.packages")
    for v, variant in enumerate(variants):
        if family == "debian" or "distroless" in variant:
            key = "distroless" if "distroless" in variant else "packages"
            preflight.check_debian_packages(variant.get(key, []), f"{where}.variants[{v}].{key}")
    # no components: the preset's default (Debian main, Ubuntu main universe, Rocky BaseOS AppStream)
    options = {**spec.get("options", {}), **({"components": spec["components"]} if "components" in spec else {}),
               "updates": spec.get("updates", True)}
    namespace = config.get("namespace", "baseforge")
    cache = config.get("package_cache", ".baseforge/cache/debs")
    images: dict[str, ImagePlan] = {}
    for r, release in enumerate(spec["releases"]):
        with preflight.naming(where):
            sources = preset.sources(release, config.get("mirrors", {}), options)
        trust.check_sources(sources, f"{where} (a mirror of {release}")
        # every cell of this release is locked: its lock has the date, the mirror need not answer
        locked = locks and workdir is not None and lockfile.all_locked(
            workdir, name, release, [v["name"] for v in variants], arches)
        epoch, epoch_source = _epoch(spec, config, preset, release, sources, None if locked else workdir, arches, where)
        for v, variant in enumerate(variants):
            # bashbrew's habit: latest is the first release's default variant, never a slim one
            tags = _tags(preset, spec, release, variant["name"], latest=r == 0 and variant["name"] == "default")
            packages = tuple(spec.get("packages", [])) + tuple(variant.get("packages", []))
            bvariant = variant.get("bootstrap_variant", "minbase")
            dl = _distroless(variant, preset, f"{where}.variants[{v}]")
            packages, bvariant = dl.get("packages", packages), dl.get("base_variant", bvariant)
            raw_key = bvariant + ("-" + hashlib.sha256(",".join(packages).encode()).hexdigest()[:8] if packages else "")
            for a, arch in enumerate(arches):
                suffix = "" if a == 0 else f"-{arch}"
                full = tuple(f"{repo(namespace, name)}:{t}{suffix}" for t in tags)
                for t in full:
                    claim(t, f"{where} ({release}, {variant['name']}, {arch})", where)
                cell = CellSpec(
                    image=name, distro=preset.name, release=release, variant=variant["name"], arch=arch,
                    bootstrapper=dl.get("bootstrapper", bname), sources=sources, packages=packages,
                    keyrings=tuple(spec.get("keyrings", [])), epoch=int(epoch), base_variant=bvariant,
                    slim=bool(variant.get("slim", False)), package_cache=cache or None,
                    options=spec.get("options", {}), insecure=bool(spec.get("insecure", False)),
                )
                meta = _meta(cell, spec, f"{repo(namespace, name)}:{tags[0]}", full,
                             dl.get("cmd", ["sh"] if family != "debian" else ["bash"]))
                checks = dl.get("checks", [*spec.get("checks", []), *variant.get("checks", [])])
                images[cell.id] = ImagePlan(cell=cell, meta=meta, raw_key=raw_key,
                                            family=dl.get("family", family), load=spec.get("load", "oci"),
                                            checks=tuple(checks),
                                            os_release=preset.expected_os_release(release), native=a == 0,
                                            epoch_source=epoch_source)
    return images


def _meta(cell: CellSpec, spec: dict[str, Any], title: str, tags: tuple[str, ...],
          default_cmd: list[str]) -> ImageMeta:
    """The image config of a cell: title, tags, cmd (``default_cmd`` when the config names none), env,
    labels, and what made it."""
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return ImageMeta(
        title=title, version=cell.release, created=cell.epoch,
        arch=cell.arch, tags=tags, cmd=tuple(spec.get("cmd", default_cmd)),
        env=tuple(f"{k}={val}" for k, val in sorted({"PATH": path, **spec.get("env", {})}.items())),
        labels={**spec.get("labels", {}), **({trust.INSECURE_LABEL: "true"} if spec.get("insecure") else {})},
        base_name="scratch",
        comment=f"baseforge {cell.bootstrapper} {cell.distro} {cell.release} {cell.variant} {cell.arch}",
    )


def _distroless(variant: dict[str, Any], preset: distro.Distro, where: str) -> dict[str, Any]:
    """Cell and image overrides of a ``distroless:`` variant (baseforge/bootstrap/distroless.py), else {}.

    Its image has no shell: no default command, and the image's ``checks`` (which assume one) give way to
    the variant's own."""
    if "distroless" not in variant:
        return {}
    if preset.family != "debian":
        raise BaseforgeError(f"config {where}.distroless: distroless variants are made of Debian packages; "
                             f"{preset.name} is of family {preset.family}", hint="use it on a debian-family image")
    clash = sorted({"packages", "slim", "bootstrap_variant"} & set(variant))
    if clash:
        raise BaseforgeError(f"config {where}: distroless: names the whole package set; {', '.join(clash)} cannot go with it",
                             hint="list every package in distroless: and drop " + ", ".join(clash))
    return {"bootstrapper": "distroless", "packages": tuple(variant["distroless"]), "base_variant": "distroless",
            "family": "none", "cmd": [], "checks": variant.get("checks", [])}


def _layer(images: dict[str, ImagePlan], layered: set[str]) -> dict[str, ImagePlan]:
    """Give each bootstrap that only adds packages to another bootstrap of its release and arch that one as
    parent (the largest such set), when its bootstrapper can layer: mmdebstrap then starts from the parent's
    tar and installs the difference with apt, instead of downloading and installing the whole base again."""
    out = dict(images)
    for path, img in images.items():
        c = img.cell
        if c.image not in layered or c.lock or not c.packages or not bootstrap.get(c.bootstrapper).layers:
            continue
        parents = {p.raw_key: p for p in images.values()
                   if (p.cell.image, p.cell.release, p.cell.arch, p.cell.base_variant) == (c.image, c.release, c.arch, c.base_variant)
                   and set(p.cell.packages) < set(c.packages)}
        if parents:
            best = max(parents.values(), key=lambda p: (len(set(p.cell.packages)), p.raw_key))
            out[path] = dataclasses.replace(img, parent_raw=best.raw_key)
    return out


def scratch_epoch(config: dict[str, Any], images: dict[str, ImagePlan]) -> int:
    """``created`` of a FROM-scratch app: the config's epoch when it is a time, else (``release``) the newest
    epoch of the workflow's images; 0 only when there is neither."""
    epoch = config.get("epoch", "release")
    if epoch != "release":
        return int(epoch)
    return max((img.cell.epoch for img in images.values()), default=0)


def load(path: Path) -> dict[str, Any]:
    """A config file, read strictly (:func:`baseforge.configfile.load`)."""
    return configfile.load(path)
