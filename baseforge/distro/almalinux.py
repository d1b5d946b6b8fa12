"""AlmaLinux: a RHEL rebuild with Rocky's mirror layout."""

from __future__ import annotations

from .rocky import Rocky


class AlmaLinux(Rocky, name="almalinux"):
    os_id = "almalinux"
    packages = ("almalinux-release", "bash", "coreutils-single", "glibc-minimal-langpack", "rpm", "dnf")
    variants = {"default": {"packages": list(packages)}}
