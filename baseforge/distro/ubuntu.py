"""Ubuntu: mmdebstrap (default) or debootstrap from a configured mirror, with the keyring from config.

Debian ships no Ubuntu keyring: list the archive key in the image's ``keyrings:``. One mirror serves
an image: the archive carries amd64 (and i386), the ports archive the other architectures, so an
image for arm64 points ``options: {mirror: …}`` at a ports mirror.
"""

from __future__ import annotations

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
    # the archive has no default mirror; security is served by the archive unless set
    mirror_keys = {"ubuntu": "mirror", "ubuntu-security": "security_mirror"}
