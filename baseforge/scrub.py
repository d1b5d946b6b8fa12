"""What pack() rewrites inside the account files: no password hash and no build date ships in an image.

The official images' "no hard-coded passwords" rule: every password field of ``etc/shadow``,
``etc/gshadow`` and ``etc/passwd`` (and their ``-`` backups) that holds a hash, or is empty (an empty
field lets anyone in without a password), becomes ``*`` (no password can match). A lock that is
already there (``!``, ``*``, ``!*``, ``!!``, ``x`` in passwd) is kept, and a locked hash (``!$6$…``)
stays locked (``!*``). The "last password change" day in shadow becomes the epoch's day, so the
file does not carry the date of the build.
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: a password field that holds no secret: locks only (passwd's "x" means "see shadow")
_LOCKED = re.compile(rb"^[!*]+$")


def _password(field: bytes, keep: tuple[bytes, ...] = ()) -> bytes:
    if field in keep or _LOCKED.match(field):
        return field
    return b"!*" if field.startswith(b"!") else b"*"


def _rewrite(data: bytes, fix: Callable[[list[bytes]], None]) -> bytes:
    out = []
    for line in data.splitlines(keepends=True):
        body = line.rstrip(b"\n")
        fields = body.split(b":")
        if len(fields) >= 2 and not body.startswith(b"#"):
            fix(fields)
            line = b":".join(fields) + line[len(body):]
        out.append(line)
    return b"".join(out)


def shadow(data: bytes, epoch: int) -> bytes:
    """etc/shadow: hashes become ``*``; field 3 (days since 1970 of the last change) the epoch's day where set."""
    day = str(epoch // 86400).encode()

    def fix(fields: list[bytes]) -> None:
        fields[1] = _password(fields[1])
        if len(fields) >= 3 and fields[2]:
            fields[2] = day

    return _rewrite(data, fix)


def gshadow(data: bytes, epoch: int) -> bytes:
    """etc/gshadow: group password hashes become ``*``."""

    def fix(fields: list[bytes]) -> None:
        fields[1] = _password(fields[1])

    return _rewrite(data, fix)


def passwd(data: bytes, epoch: int) -> bytes:
    """etc/passwd: a hash (or an empty field) in the password column becomes ``*``; ``x`` is kept."""

    def fix(fields: list[bytes]) -> None:
        fields[1] = _password(fields[1], keep=(b"x",))

    return _rewrite(data, fix)


#: path in the rootfs -> rewrite(contents, epoch); the "-" backups (shadow's own tools write them) too
REWRITES: dict[str, Callable[[bytes, int], bytes]] = {
    f"etc/{name}{suffix}": fn
    for name, fn in (("shadow", shadow), ("gshadow", gshadow), ("passwd", passwd))
    for suffix in ("", "-")
}
