"""Fedora: dnf from ``releases/<r>/Everything`` and (with ``updates:``, the default) ``updates/<r>/Everything``."""

from __future__ import annotations

from typing import Any

from ..spec import Source
from . import Distro


class Fedora(Distro, name="fedora"):
    family = "rpm"
    bootstrappers = ("dnf",)
    releases = {"40": "", "41": "", "42": "", "43": ""}
    architectures = ("amd64", "arm64", "ppc64el", "s390x")
    os_id = "fedora"
    keyring_hint = "list Fedora's RPM-GPG-KEY-fedora-<release>-primary file or URL (package fedora-gpg-keys)"
    packages = ("fedora-release-container", "bash", "coreutils-single", "glibc-minimal-langpack", "rpm", "dnf5")
    variants = {"default": {"packages": list(packages)}}

    def sources(self, release: str, mirrors: dict[str, str], options: dict[str, Any]) -> tuple[Source, ...]:
        mirror = self.mirror(mirrors, options)
        out = [Source(f"{mirror}/releases/{release}/Everything/$basearch/os/", "fedora", ())]
        if options.get("updates", True):
            out.append(Source(f"{mirror}/updates/{release}/Everything/$basearch/", "updates", ()))
        return tuple(out)

    def rpmdb(self, release: str) -> str:
        return "/usr/lib/sysimage/rpm"  # since Fedora 36

    def expected_os_release(self, release: str) -> dict[str, str]:
        return {"ID": self.os_id, "VERSION_ID": release}
