"""The packer's data files: ``data/leaks.tsv`` (what leaks from the build host or moment), ``data/slim.tsv``
(what the slim variant drops) and ``data/minimize/`` (Debian's container config), read and checked here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from .errors import BaseforgeError
from .spec import FAMILIES

DATA = Path(__file__).parent / "data"
LEAKS_TSV = DATA / "leaks.tsv"
SLIM_TSV = DATA / "slim.tsv"
MINIMIZE_DIR = DATA / "minimize"

LEAK_ACTIONS = ("drop", "drop-children", "empty", "keep")


@dataclass(frozen=True)
class Rule:
    """One line of leaks.tsv or slim.tsv."""

    action: str
    glob: str
    family: str
    reason: str


def _read_tsv(path: Path, fields: int) -> Iterator[tuple[int, list[str]]]:
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != fields or not all(c.strip() for c in cols):
            raise BaseforgeError(
                f"{path}:{lineno}: expected {fields} non-empty TAB-separated fields, got {line!r}",
                hint="see the comment at the top of the file for the format",
            )
        yield lineno, cols


def load_leak_rules(family: str, path: Path = LEAKS_TSV) -> list[Rule]:
    """The leaks.tsv lines that apply to ``family``, in file order (the first match wins)."""
    rules = []
    for lineno, (action, glob, fam, reason) in _read_tsv(path, 4):
        if action not in LEAK_ACTIONS or fam not in (*FAMILIES, "any"):
            raise BaseforgeError(
                f"{path}:{lineno}: unknown action {action!r} or family {fam!r}",
                hint=f"actions: {', '.join(LEAK_ACTIONS)}; families: {', '.join(FAMILIES)}, any",
            )
        if fam in (family, "any"):
            rules.append(Rule(action, glob.strip("/"), fam, reason))
    return rules


def load_slim_rules(path: Path = SLIM_TSV) -> list[Rule]:
    """The slim.tsv lines (family is always debian: dpkg path-exclude is a dpkg feature)."""
    rules = []
    for lineno, (action, glob, reason) in _read_tsv(path, 3):
        glob = glob.strip("/")
        if action not in ("exclude", "include") or (action == "exclude" and not glob.endswith("/*")):
            raise BaseforgeError(
                f"{path}:{lineno}: bad rule {action!r} {glob!r}",
                hint='actions are "exclude" (glob ending in "/*") and "include"',
            )
        rules.append(Rule(action, glob, "debian", reason))
    return rules


def leak_action(name: str, rules: list[Rule]) -> str | None:
    """The action of the first rule whose glob matches ``name``, or None."""
    for rule in rules:
        if fnmatchcase(name, rule.glob):
            return rule.action
    return None


def minimize_files() -> dict[str, bytes]:
    """Debian's container config (debuerreotype-minimizing-config), by path inside the rootfs."""
    return {p.relative_to(MINIMIZE_DIR).as_posix(): p.read_bytes() for p in sorted(MINIMIZE_DIR.rglob("*")) if p.is_file()}


def slim_dpkg_cfg(rules: list[Rule]) -> bytes:
    """etc/dpkg/dpkg.cfg.d/docker: the same excludes/includes for dpkg, so later installs stay slim."""
    lines = [
        '# This is the "slim" variant of the base image (baseforge, after debuerreotype-slimify).',
        "# Many files which are normally unnecessary in containers are excluded,",
        "# and this configuration file keeps them that way.",
        "# Remove this file (and reinstall packages) to get docs, man pages and translations back.",
    ]
    for action in ("exclude", "include"):
        lines.append("")
        for rule in rules:
            if rule.action == action:
                lines += [f"# {rule.reason}", f"path-{action} /{rule.glob}"]
    return ("\n".join(lines) + "\n").encode()
