"""Credentials in URLs (``https://user:password@mirror/…``): never logged, never in a record or an image.

:func:`redact` is applied to every command line and error :mod:`baseforge.run` logs and to the
provenance record; :func:`split_credentials` takes them out of a mirror URL so that they go to a
private file the tool reads (apt's auth.conf) instead of its command line or the image.
"""

from __future__ import annotations

import base64
import os
import re
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from .spec import Source

#: user:password@ up to the last "@" before the path (a password may hold an unencoded "@")
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s]+@")


def redact(text: str) -> str:
    """``https://user:secret@host/x`` -> ``https://***@host/x``, everywhere in ``text``."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(url without user:password@, user, password)``; user and password are None when there are none."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None, None
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc)), parts.username, parts.password or ""


def strip_sources(sources: tuple[Source, ...]) -> tuple[Source, ...]:
    """The sources without credentials: what a command line, a log and the image's sources list get."""
    return tuple(Source(split_credentials(s.url)[0], s.suite, s.components) for s in sources)


def auth_conf(sources: tuple[Source, ...]) -> str:
    """apt's auth.conf (netrc format) for the sources that carry credentials ("" when none do)."""
    lines = []
    for s in sources:
        url, user, password = split_credentials(s.url)
        if user is not None:
            machine = url.split("://", 1)[1]
            lines.append(f"machine {machine} login {unquote(user)} password {unquote(password or '')}\n")
    return "".join(dict.fromkeys(lines))


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (created 0600, never world-readable on the way)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def request(url: str, headers: dict[str, str] | None = None) -> urllib.request.Request:
    """A urllib request for ``url`` with its ``user:password@`` sent as HTTP basic auth (urllib would
    take it for a port), the URL itself without it."""
    plain, user, password = split_credentials(url)
    headers = dict(headers or {})
    if user is not None:
        token = base64.b64encode(f"{unquote(user)}:{unquote(password or '')}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return urllib.request.Request(plain, headers=headers)
