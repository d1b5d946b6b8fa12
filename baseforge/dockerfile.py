"""What a Dockerfile is built from: the images its stages start ``FROM`` and copy ``--from``, as Docker reads them.

Docker's reading, the parts that name images: parser directives (``# escape=``) at the top, comment lines,
lines continued with the escape character, instruction names in any case, global ``ARG``s (before the first
``FROM``) whose defaults are substituted into ``FROM`` (``$NAME``, ``${NAME}``, ``${NAME:-word}``,
``${NAME:+word}``; baseforge passes no ``--build-arg``, so the defaults are the values), ``FROM [--platform=…]
<image> [AS <stage>]``, and ``--from=`` of ``COPY``/``ADD`` and of ``RUN --mount=…,from=…``, each either an
earlier stage (by name or index) or an image. ``scratch`` is no image. A reference may carry a digest
(``name:tag@sha256:…``): :func:`split_digest`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BaseforgeError

DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Parsed:
    #: every image the Dockerfile reads (FROM and --from that are not stages), in order, each once
    images: tuple[str, ...]
    #: the image the last stage is built on (through stage names), None for scratch
    final: str | None
    #: image -> the instruction that first names it ("FROM", "COPY --from", "RUN --mount from"), for messages
    named_in: dict[str, str] = field(default_factory=dict)


def instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, each on one line (continuations joined, comments dropped)."""
    lines = text.splitlines()
    escape = "\\"
    for line in lines:  # parser directives: only at the very top, before any other line
        found = DIRECTIVE.match(line)
        if not found:
            break
        if found.group(1).lower() == "escape":
            escape = found.group(2)
    out: list[str] = []
    current = ""
    for line in lines:
        if line.lstrip().startswith("#"):
            continue  # a comment, also inside a continued instruction
        stripped = line.rstrip()
        if stripped.endswith(escape):
            current += stripped[: -len(escape)] + " "
            continue
        current += line
        if current.strip():
            out.append(current.strip())
        current = ""
    if current.strip():
        out.append(current.strip())
    return out


def substitute(value: str, args: dict[str, str]) -> str:
    """``value`` with the global ARGs' defaults in place of ``$NAME`` and ``${NAME…}`` (unset: empty)."""
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(4)
        have = args.get(name, "")
        if m.group(2) == "-":
            return have or m.group(3)
        if m.group(2) == "+":
            return m.group(3) if have else ""
        return have
    return VARIABLE.sub(one, value)


def _arg_defaults(words: list[str], args: dict[str, str]) -> None:
    for word in words:
        name, eq, default = word.partition("=")
        args[name] = substitute(default, args) if eq else args.get(name, "")


def _from_values(words: list[str]) -> list[str]:
    """The ``--from`` values of a COPY/ADD (``--from=x``) or RUN (``--mount=…,from=x,…``)."""
    found = []
    for w in words:
        if w.startswith("--from="):
            found.append(w.split("=", 1)[1])
        elif w.startswith("--mount="):
            opts = dict(o.partition("=")[::2] for o in w.split("=", 1)[1].split(","))
            if opts.get("from"):
                found.append(opts["from"])
    return found


def parse(path: Path, where: str) -> Parsed:
    """The images the Dockerfile at ``path`` is built from (``where``: the config field, for errors)."""
    args: dict[str, str] = {}
    stages: list[str | None] = []  # per stage: the image it starts from (None: scratch), through stage names
    names: dict[str, int] = {}
    images: dict[str, str] = {}  # image -> the instruction naming it first

    def image_or_stage(ref: str, instruction: str = "FROM") -> str | None:
        if ref.lower() in names:
            return stages[names[ref.lower()]]
        if ref.isdigit() and int(ref) < len(stages):
            return stages[int(ref)]
        if ref.lower() == "scratch":
            return None
        images.setdefault(ref, instruction)
        return ref

    for line in instructions(path.read_text()):
        try:
            words = shlex.split(line, posix=True)
        except ValueError:
            words = line.split()
        keyword, words = words[0].upper(), words[1:]
        if keyword == "ARG" and not stages:
            _arg_defaults(words, args)
        elif keyword == "FROM":
            words = [w for w in words if not w.startswith("--")]
            ref = substitute(words[0], args) if words else ""
            if not ref or "$" in ref:
                raise BaseforgeError(f"config {where}: {path}: FROM {words[0] if words else ''!r} names no image "
                                     f"(it reads {ref!r})",
                                     hint="give the ARG it uses a default before the first FROM, or write the image's name")
            stages.append(image_or_stage(ref))
            if len(words) >= 3 and words[1].upper() == "AS":
                names[words[2].lower()] = len(stages) - 1
        elif keyword in ("COPY", "ADD", "RUN") and stages:
            for ref in _from_values(words):
                image_or_stage(substitute(ref, args), f"{keyword} --from" if keyword != "RUN" else "RUN --mount from")
    if not stages:
        raise BaseforgeError(f"config {where}: {path} has no FROM line", hint="start the Dockerfile with FROM <image>")
    return Parsed(images=tuple(images), final=stages[-1], named_in=images)


def split_digest(ref: str) -> tuple[str, str | None]:
    """``name[:tag]@sha256:…`` -> (``name[:tag]``, ``sha256:…``); a reference without a digest -> (ref, None)."""
    name, at, digest = ref.partition("@")
    return name, (digest if at else None)
