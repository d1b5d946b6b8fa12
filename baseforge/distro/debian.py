"""Debian: mmdebstrap (default) or debootstrap, main archive + -updates + -security, like Debian's own images."""

from __future__ import annotations

from typing import Any

from ..mirror import default_mirror
from ..spec import Source
from . import Distro


class Debian(Distro, name="debian"):
    family = "debian"
    bootstrappers = ("mmdebstrap", "debootstrap")
    releases = {
        "buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14",
        "sid": "unstable", "unstable": "", "testing": "", "stable": "", "oldstable": "",
    }
    variants = {"default": {}, "slim": {"slim": True}}
    architectures = ("amd64", "arm64", "armhf", "armel", "i386", "ppc64el", "s390x", "riscv64")
    os_id = "debian"
    host_keyrings = ("/usr/share/keyrings/debian-archive-keyring.gpg",)
    keyring_hint = "install the debian-archive-keyring package (apt-get install debian-archive-keyring), or list the archive's keyring"
    #: suites that get no -updates / -security companions
    rolling = ("sid", "unstable", "experimental")
    components = ("main",)
    mirror_keys = {"archive": "mirror", "security": "security_mirror"}

    def sources(self, release: str, mirrors: dict[str, str], options: dict[str, Any]) -> tuple[Source, ...]:
        components = tuple(options.get("components", self.components))
        main, security = self.mirror_options()
        archive = self.mirror(mirrors, options)
        out = [Source(archive, release, components)]
        if options.get("updates", True) and release not in self.rolling:
            out.append(Source(archive, f"{release}-updates", components))
            out.append(Source(self.mirror(mirrors, options, security), f"{release}-security", components))
        return tuple(out)

    def default_mirror(self, key: str, mirrors: dict[str, str], options: dict[str, Any]) -> str | None:
        """Debian's own mirrors default to the host's apt sources (a derivative's keys do not)."""
        if key in Debian.mirror_keys:
            return default_mirror(key)
        return super().default_mirror(key, mirrors, options)

    def expected_os_release(self, release: str) -> dict[str, str]:
        fields = {"ID": self.os_id}
        if release in self.releases and self.releases[release] not in ("", "unstable"):
            fields["VERSION_CODENAME"] = release
        return fields

    def release_file(self, release: str, sources: tuple[Source, ...]) -> str | None:
        return f"{sources[0].url}/dists/{release}/Release"
