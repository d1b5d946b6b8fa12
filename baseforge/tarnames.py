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
