"""CentOS Stream, and the base of the RHEL rebuilds (Rocky, AlmaLinux): dnf from BaseOS + AppStream.

A repository is one ``Source``: its URL (``$basearch`` is left for dnf to fill in) and its repo id.
``components:`` names the repositories (default BaseOS and AppStream; CRB, extras … on request).
"""

from __future__ import annotations

from typing import Any

from ..spec import Source
from . import Distro


class CentosStream(Distro, name="centos-stream"):
    family = "rpm"
    bootstrappers = ("dnf",)
    releases = {"9": "", "10": ""}
    architectures = ("amd64", "arm64", "ppc64el", "s390x")
    os_id = "centos"
    keyring_hint = "list the distribution's RPM-GPG-KEY file or URL (its *-gpg-keys package, or the mirror's top directory)"
    components = ("BaseOS", "AppStream")
    #: what a minimal container image holds (the distributions' own container kickstarts, trimmed)
    packages = ("centos-stream-release", "bash", "coreutils-single", "glibc-minimal-langpack", "rpm", "dnf")
    variants = {"default": {"packages": list(packages)}}

    def repo_url(self, mirror: str, release: str, component: str) -> str:
        return f"{mirror}/{release}-stream/{component}/$basearch/os/"

    def sources(self, release: str, mirrors: dict[str, str], options: dict[str, Any]) -> tuple[Source, ...]:
        mirror = self.mirror(mirrors, options)
        components = options.get("components", self.components)
        return tuple(Source(self.repo_url(mirror, release, c), c, ()) for c in components)

    def rpmdb(self, release: str) -> str:
        """EL 10 moved the rpmdb under /usr, as Fedora did."""
        major = release.split(".")[0]
        return "/usr/lib/sysimage/rpm" if major.isdigit() and int(major) >= 10 else "/var/lib/rpm"

    def expected_os_release(self, release: str) -> dict[str, str]:
        return {"ID": self.os_id, "VERSION_ID": release} if self.os_id else {}
