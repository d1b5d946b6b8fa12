"""Apps on apps: what each app is built on (an image or another app of this workflow), and the order to plan them in.

An app names its base in ``base:`` (declarative) or in its Dockerfile's ``FROM`` lines. A reference that
is the tag of another app makes that app a dependency, to any depth; :func:`order` gives the apps with
every base before the apps built on it, and refuses a cycle at plan time, naming the field and the cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import dockerfile
from .errors import BaseforgeError


def repo(namespace: str, name: str) -> str:
    """The repository of an image or app: ``<namespace>/<name>`` (``<name>`` without a namespace)."""
    return f"{namespace}/{name}" if namespace else name


def with_tag(ref: str) -> str:
    """``repo`` -> ``repo:latest`` (what docker means by a reference without a tag); others unchanged."""
    name = ref.split("@", 1)[0]
    return ref if ":" in name.rpartition("/")[2] or "@" in ref else f"{ref}:latest"


def candidates(ref: str, namespace: str) -> set[str]:
    """The full tags ``ref`` may mean: as written, and under this workflow's namespace. A digest
    (``name:tag@sha256:…``) is checked against the built image when the app is built (baseforge.buildah);
    ``name@sha256:…`` means the repository's ``latest``."""
    ref = dockerfile.split_digest(ref)[0]
    refs = {ref, with_tag(ref)}
    if namespace:
        refs |= {f"{namespace}/{r}" for r in list(refs)}
    return refs


def base_field(name: str, spec: dict[str, Any]) -> str:
    return f"apps.{name}.dockerfile" if "dockerfile" in spec else f"apps.{name}.base"


def base_refs(name: str, spec: dict[str, Any], workdir: Path) -> list[str]:
    """The references an app's base is named by (none for scratch, or a Dockerfile that is missing:
    the plan names that problem itself)."""
    if "dockerfile" in spec:
        path = workdir / spec["dockerfile"] / "Dockerfile"
        return list(dockerfile.parse(path, base_field(name, spec)).images) if path.is_file() else []
    return [spec["base"]] if spec.get("base", "scratch") != "scratch" else []


def app_tags(apps: dict[str, Any], namespace: str) -> dict[str, str]:
    """Full tag -> the app that carries it."""
    prefix = f"{namespace}/" if namespace else ""
    return {f"{prefix}{name}:{t}": name for name, spec in apps.items() for t in spec.get("tags", ["latest"])}


def app_of(ref: str, tags: dict[str, str], namespace: str) -> str | None:
    """The app ``ref`` names, or None when it names no app."""
    return next((tags[c] for c in sorted(candidates(ref, namespace)) if c in tags), None)


def order(apps: dict[str, Any], namespace: str, workdir: Path) -> list[str]:
    """App names with every base app before the apps built on it (else config order); a cycle is an error."""
    tags = app_tags(apps, namespace)
    deps = {name: [d for d in (app_of(r, tags, namespace) for r in base_refs(name, spec, workdir)) if d]
            for name, spec in apps.items()}
    done: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            cycle = path[path.index(name):] + [name]
            raise BaseforgeError(f"config {base_field(cycle[0], apps[cycle[0]])}: apps are built on each other in a cycle: "
                                 f"{' -> '.join(cycle)}",
                                 hint="an app's base must be an image, scratch, or an app that is not built on it")
        state[name] = "active"
        for dep in deps[name]:
            visit(dep, path + [name])
        state[name] = "done"
        done.append(name)

    for name in apps:
        visit(name, [])
    return done
