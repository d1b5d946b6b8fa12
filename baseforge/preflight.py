"""Config checks beyond the schema, before any job: what the mirror serves, what the tools accept.

- the suite exists on the mirror, and serves each architecture (its Release file, which the epoch lookup
  fetches anyway: :func:`baseforge.epoch.release_info`);
- the bootstrap variant is one the bootstrapper knows (its ``variants``);
- package names have the syntax of the image's package manager (no spaces, no shell characters);
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

from .epoch import MissingRelease, release_info
from .errors import BaseforgeError

log = logging.getLogger("baseforge")

#: Debian policy 5.6.1 (name), plus apt's ``:arch``, ``=version`` and ``/suite`` suffixes
DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?([=/][A-Za-z0-9.+~:_-]+)?$")
#: rpm and apk names (and version constraints): printable, no spaces, nothing a shell would act on
OTHER_PACKAGE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+:~^@/=<>-]*$")
PACKAGE_HINT = ("one package per list item; a name has lowercase letters, digits, + - . (Debian policy), "
                "optionally :arch, =version or /suite")
OTHER_PACKAGE_HINT = "one package per list item; a name has letters, digits and _ . + : ~ ^ @ / = < > -, no spaces"


@contextlib.contextmanager
def naming(where: str) -> Iterator[None]:
    """Prefix a refusal raised inside the block (by a preset, say) with the config path it is about."""
    try:
        yield
    except BaseforgeError as err:
        if err.message.startswith("config "):
            raise
        raise BaseforgeError(f"config {where}: {err.message}", hint=err.hint) from None


def check_image(spec: dict[str, Any], variants: list[dict[str, Any]], family: str, bootstrapper: Any, where: str) -> None:
    """The package names and bootstrap variants of image ``spec`` (at config path ``where``)."""
    check_packages(spec.get("packages", []), f"{where}.packages", family)
    for v, variant in enumerate(variants):
        check_packages(variant.get("packages", []), f"{where}.variants[{v}].packages", family)
        check_bootstrap_variant(variant.get("bootstrap_variant", "minbase"), bootstrapper,
                                f"{where}.variants[{v}].bootstrap_variant")


def check_packages(packages: Sequence[str], where: str, family: str) -> None:
    syntax = DEBIAN_PACKAGE if family == "debian" else OTHER_PACKAGE
    for i, name in enumerate(packages):
        if not syntax.match(str(name)):
            raise BaseforgeError(f"config {where}[{i}]: {name!r} is not a package name",
                                 hint=PACKAGE_HINT if family == "debian" else OTHER_PACKAGE_HINT)


def check_bootstrap_variant(name: str, bootstrapper: Any, where: str) -> None:
    known = getattr(bootstrapper, "variants", ())
    if known and name not in known:
        raise BaseforgeError(f"config {where}: {bootstrapper.name} has no variant {name!r}",
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
                f"config {where}.architectures[{i}]: {release} has no {arch} on this mirror ({url})",
                hint=f"architectures of {release} there: {', '.join(a for a in served if a != 'all')}")
    return info
