"""A rootfs tarball the user already has: ``options: {path: … or url: …, sha256: …, family: none}``.

Nothing is known about what is inside, so no os-release is expected: add ``checks:`` to the image.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import BaseforgeError
from ..spec import FAMILIES, Source
from . import Distro

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Tarball(Distro, name="tarball"):
    family = "none"
    bootstrappers = ("tarball",)

    def image_family(self, options: dict[str, Any]) -> str:
        family = options.get("family", "none")
        if family not in FAMILIES:
            raise BaseforgeError(f"tarball option family: {family!r} is not a family", hint=f"one of: {', '.join(FAMILIES)}")
        return family

    def sources(self, release: str, mirrors: dict[str, str], options: dict[str, Any]) -> tuple[Source, ...]:
        if ("path" in options) == ("url" in options):
            raise BaseforgeError("a tarball image needs exactly one of options.path and options.url",
                                 hint="options: {path: rootfs.tar.gz, sha256: <64 hex digits>}")
        if not SHA256.match(str(options.get("sha256", ""))):
            raise BaseforgeError("a tarball image needs options.sha256: the SHA-256 of the tarball (64 lowercase hex digits)",
                                 hint="sha256sum <tarball>")
        return ()

    def mirror_options(self) -> dict[str, str]:
        return {}  # the tarball is the whole source

    def release_tags(self, release: str) -> list[str]:
        return [release]
