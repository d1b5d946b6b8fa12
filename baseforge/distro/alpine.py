"""Alpine Linux: a static apk from ``v<release>/main`` and ``community`` of a configured mirror."""

from __future__ import annotations

from typing import Any

from ..spec import Source
from . import Distro


class Alpine(Distro, name="alpine"):
    family = "alpine"
    bootstrappers = ("apk",)
    releases = {"3.19": "", "3.20": "", "3.21": "", "3.22": "", "edge": ""}
    architectures = ("amd64", "arm64", "armhf", "i386", "ppc64el", "s390x", "riscv64")
    os_id = "alpine"
    keyring_hint = "list the alpine-devel@lists.alpinelinux.org-*.rsa.pub keys (package alpine-keys, or the mirror)"
    components = ("main", "community")
    variants = {"default": {"packages": ["alpine-base"]}}

    def sources(self, release: str, mirrors: dict[str, str], options: dict[str, Any]) -> tuple[Source, ...]:
        mirror = self.mirror(mirrors, options)
        branch = release if release == "edge" else f"v{release}"
        return tuple(Source(f"{mirror}/{branch}/{c}", c, ()) for c in options.get("components", self.components))
