"""The host's apt sources: where the default Debian mirror comes from (never hard-coded)."""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import BaseforgeError


@dataclass(frozen=True)
class HostSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def _deb822(text: str) -> list[HostSource]:
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            out.append(HostSource(uri.rstrip("/"), tuple(fields.get("suites", "").split()), tuple(fields.get("components", "").split())))
    return out


def _one_line(text: str) -> list[HostSource]:
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        words = re.sub(r"\[[^\]]*\]", "", line).split()[1:]
        if len(words) >= 2:
            out.append(HostSource(words[0].rstrip("/"), (words[1],), tuple(words[2:])))
    return out


def host_sources(root: Path = Path("/")) -> list[HostSource]:
    """Every enabled ``deb`` source of the host, in apt's reading order."""
    out: list[HostSource] = []
    etc = root / "etc/apt"
    if (etc / "sources.list").exists():
        out += _one_line((etc / "sources.list").read_text())
    for path in sorted(glob.glob(str(etc / "sources.list.d/*"))):
        text = Path(path).read_text()
        out += _deb822(text) if path.endswith(".sources") else _one_line(text) if path.endswith(".list") else []
    return out


def default_mirrors(root: Path = Path("/")) -> dict[str, str]:
    """``{"archive": uri, "security": uri}`` read from the host's apt sources (security may be absent)."""
    found: dict[str, str] = {}
    for src in host_sources(root):
        kind = "security" if any(s.endswith("-security") or "/updates" in s for s in src.suites) else "archive"
        found.setdefault(kind, src.uri)
    return found


def default_mirror(kind: str = "archive", root: Path = Path("/")) -> str:
    mirrors = default_mirrors(root)
    if kind not in mirrors:
        raise BaseforgeError(
            f"no {kind} mirror found in the host's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/)",
            hint=f"set it in config/config.yaml: mirrors: {{{kind}: <URL of your Debian {kind} mirror>}}",
        )
    return mirrors[kind]
