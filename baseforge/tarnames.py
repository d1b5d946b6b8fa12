"""Names of tar entries as baseforge compares them: no './' or trailing '/', never a '..' component, and
sorted by path component (what pack's output tar and an app's layer both follow)."""

from __future__ import annotations

from .errors import BaseforgeError


def normalize(name: str, what: str = "raw tar entry", hint: str = "the bootstrapper's output is broken") -> str:
    """'./usr/bin/' -> 'usr/bin'; '.' and './' -> ''; refuses '..' components (a ``what`` named in the error)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BaseforgeError(f"{what} {name!r} points outside the rootfs", hint=hint)
    return "/".join(parts)


def sort_key(name: str) -> list[str]:
    return name.split("/")


#: the extended attributes an image keeps: file capabilities (ping's cap_net_raw, set by packages). Any
#: other one in a raw tree is the build host's: its SELinux labels (security.selinux), a default ACL of
#: the scratch directory (system.posix_acl_*), a desktop's user.* tags, overlayfs' trusted.*
KEPT_XATTRS = ("SCHILY.xattr.security.capability",)


def kept_xattrs(pax_headers: dict[str, str]) -> dict[str, str]:
    """The PAX records of ``pax_headers`` an image keeps (:data:`KEPT_XATTRS`), sorted."""
    return {k: pax_headers[k] for k in sorted(pax_headers) if k in KEPT_XATTRS}
