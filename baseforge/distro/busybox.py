"""BusyBox: Debian's static busybox binary, its applet links and a minimal /etc (moby's mkimage busybox-static).

The release names the Debian suite the busybox-static package is taken from.
"""

from __future__ import annotations

from typing import Any

from ..spec import Source
from .debian import Debian


class Busybox(Debian, name="busybox"):
    family = "none"
    bootstrappers = ("busybox",)
    variants = {"default": {}}
    os_id = None

    def sources(self, release: str, mirrors: dict[str, str], options: dict[str, Any]) -> tuple[Source, ...]:
        return (Source(self.mirror(mirrors, options), release, ("main",)),)

    def release_tags(self, release: str) -> list[str]:
        return [release]

    def expected_os_release(self, release: str) -> dict[str, str]:
        return {}
