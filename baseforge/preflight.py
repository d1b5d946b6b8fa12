"""Config checks beyond the schema, before any job: what the mirror serves, what the tools accept.

- the suite exists on the mirror, and serves each architecture (its Release file, which the epoch lookup
  fetches anyway: :func:`baseforge.epoch.release_info`);
- the bootstrap variant is one the bootstrapper knows (its ``variants``);
- a package name the schema refuses (no spaces, no shell characters, never an option) is told the syntax
  of the image's package manager (:func:`package_hint`);
- a preset's own refusal names the image it is about (:func:`naming`).

Each refusal names the config path and what is allowed.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import distro
from .epoch import MissingRelease, release_info
from .errors import BaseforgeError
from .secret import redact

log = logging.getLogger("baseforge")

#: what a refused package name is told (the syntax itself is config/schema.yaml's ``package`` pattern)
PACKAGE_HINT = ("one package per list item; a name has lowercase letters, digits, + - . (Debian policy), "
                "optionally :arch, =version or /suite")
OTHER_PACKAGE_HINT = "one package per list item; a name has letters, digits and _ + . ~ : @ -, optionally =version"


#: Debian policy §5.6.1 (lowercase), with apt's optional :arch, =version and /suite
DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?(/[a-z0-9.-]+)?")


def check_debian_packages(names: Sequence[str], where: str) -> None:
    """Package names an apt (or the distroless resolver) will be given follow Debian's syntax: the schema's
    pattern admits every family's names (rpm's and apk's capitals, ``so:`` provides), apt's are narrower."""
    for i, name in enumerate(names):
        if not DEBIAN_PACKAGE.fullmatch(name):
            raise BaseforgeError(f"config {where}[{i}]: {name!r} is not a package name", hint=PACKAGE_HINT)


def package_hint(config: dict[str, Any], path: Sequence[Any]) -> str:
    """The hint for a package name the schema refused at config ``path`` (``["images", name, …]``): the
    syntax of the image's package manager (apps and distroless lists are Debian packages)."""
    family = "debian"
    if path[0] == "images" and "distroless" not in path:
        spec = config["images"][path[1]]
        with contextlib.suppress(BaseforgeError, KeyError, AttributeError):  # (refused later, naming the field)
            family = distro.get(spec.get("distro", path[1])).image_family(spec.get("options", {}))
    return PACKAGE_HINT if family == "debian" else OTHER_PACKAGE_HINT


@contextlib.contextmanager
def naming(where: str) -> Iterator[None]:
    """Prefix a refusal raised inside the block (by a preset, say) with the config path it is about."""
    try:
        yield
    except BaseforgeError as err:
        if err.message.startswith("config "):
            raise
        raise BaseforgeError(f"config {where}: {err.message}", hint=err.hint) from None


def check_bootstrap_variants(variants: list[dict[str, Any]], bootstrapper: Any, where: str) -> None:
    """Each variant's ``bootstrap_variant`` is one of the bootstrapper's ``variants`` (image at config path
    ``where``; a bootstrapper with none has nothing to check)."""
    known = getattr(bootstrapper, "variants", ())
    for v, variant in enumerate(variants):
        name = variant.get("bootstrap_variant", "minbase")
        if known and name not in known:
            raise BaseforgeError(f"config {where}.variants[{v}].bootstrap_variant: {bootstrapper.name} has no variant {name!r}",
                                 hint=f"allowed: {', '.join(known)}")


def check_release(url: str, release: str, arches: Sequence[str], where: str, cache_file: Path,
                  need_date: bool) -> dict[str, Any] | None:
    """What the Release file at ``url`` says, after checking the suite is there and serves ``arches``.

    A mirror that does not answer is an error only when the date is needed (``epoch: release``); else the
    bootstrap will say so, and a run whose outputs are all built still works offline."""
    try:
        info = release_info(url, cache_file)
    except MissingRelease as err:
        raise BaseforgeError(
            f"config {where}.releases: the mirror has no suite {release!r} ({err.message})",
            hint="a release past its end of life leaves the regular mirrors: choose another release, or point "
                 "mirrors: (or the image's options.mirror) at a mirror that still has it") from None
    except BaseforgeError as err:
        if need_date:
            raise BaseforgeError(f"config {where}.epoch: {err.message}", hint=err.hint) from None
        log.warning("baseforge: %s (the suite and its architectures are not checked)", err.message)
        return None
    served = info.get("architectures")
    for i, arch in enumerate(arches):
        if served and arch not in served:
            raise BaseforgeError(
                f"config {where}.architectures[{i}]: {release} has no {arch} on this mirror ({redact(url)})",
                hint=f"architectures of {release} there: {', '.join(a for a in served if a != 'all')}")
    return info
