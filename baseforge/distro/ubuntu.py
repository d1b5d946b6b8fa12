"""Ubuntu: mmdebstrap (default) or debootstrap from a configured mirror, with the keyring from config.

Debian ships no Ubuntu keyring: list the archive key in the image's ``keyrings:``. One mirror serves
an image: the archive carries amd64 (and i386), the ports archive the other architectures, so an
image for arm64 points ``options: {mirror: …}`` at a ports mirror.
"""

from __future__ import annotations

from typing import Any

from ..spec import Source
from .debian import Debian


class Ubuntu(Debian, name="ubuntu"):
    family = "debian"  # dpkg: pack's minimizing config and slim apply
    bootstrappers = ("mmdebstrap", "debootstrap")  # Debian 12's debootstrap knows releases up to jammy
    releases = {"focal": "20.04", "jammy": "22.04", "noble": "24.04", "oracular": "24.10", "plucky": "25.04",
                "questing": "25.10", "devel": ""}
    architectures = ("amd64", "arm64", "armhf", "ppc64el", "s390x", "riscv64")
    os_id = "ubuntu"
    host_keyrings = ()
    keyring_hint = ("list the Ubuntu archive keyring, e.g. keyrings: [/usr/share/keyrings/ubuntu-archive-keyring.gpg] "
                    "from Ubuntu's ubuntu-keyring package")
    components = ("main", "universe")
    rolling = ("devel",)

    def sources(self, release: str, mirrors: dict[str, str], options: dict[str, Any]) -> tuple[Source, ...]:
        components = tuple(options.get("components", self.components))
        archive = self.mirror(mirrors, options)
        out = [Source(archive, release, components)]
        if options.get("updates", True) and release not in self.rolling:
            security = options.get("security_mirror") or mirrors.get("ubuntu-security") or archive
            out += [Source(archive, f"{release}-updates", components), Source(security.rstrip("/"), f"{release}-security", components)]
        return tuple(out)

    def expected_os_release(self, release: str) -> dict[str, str]:
        fields = {"ID": "ubuntu"}
        if self.releases.get(release):
            fields["VERSION_CODENAME"] = release
        return fields
