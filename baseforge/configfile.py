"""Reading config files: YAML that refuses a key given twice, and names file, line and column of a mistake.

Snakemake's ``configfile:`` merges a duplicated key silently (the last wins) and reports a syntax error
against the Snakefile; the Snakefile calls :func:`check_files` first, so the user hears about their file.
It also decides which files make the config (:func:`workflow_configfiles`): the shipped
``config/config.yaml`` only when no ``--configfile`` was given, so a user's own file is the whole matrix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from .errors import BaseforgeError

DEFAULT = "config/config.yaml"


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that gives a key twice (merge keys ``<<`` excepted)."""

    path = "<config>"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise BaseforgeError(
                    f"{self.path}: key {key!r} is given twice, on line {seen[key]} and on line {line}",
                    hint=f"YAML keeps only the last one: merge the two {key!r} entries into one "
                         "(e.g. one releases: list with both releases)")
            seen[key] = line
        return super().construct_mapping(node, deep)


def load(path: Path | str) -> dict[str, Any]:
    """The config file at ``path`` as a dict, or a BaseforgeError naming the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise BaseforgeError(f"cannot read the config file {path}: {err.strerror}") from None
    loader = StrictLoader(text)
    loader.path = str(path)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = " ".join(x for x in (err.context, err.problem) if x)
        lines = text.splitlines()
        tab = mark is not None and mark.line < len(lines) and "\t" in lines[mark.line]
        hint = ("indent with spaces, not tabs" if tab
                else "check the indentation and the quoting there (a value with ': ' or ' #' needs quotes)")
        raise BaseforgeError(f"{where}: {problem}", hint=hint) from None
    except yaml.YAMLError as err:
        raise BaseforgeError(f"{path} is not valid YAML: {err}") from None
    finally:
        loader.dispose()
    if data is None:  # (Snakemake refuses it too, without naming it)
        raise BaseforgeError(f"{path} is empty", hint="a config needs at least images: (see config/config.yaml)")
    if not isinstance(data, dict):
        raise BaseforgeError(f"{path}: the config must be a mapping (namespace:, images:, …), not a {type(data).__name__}")
    return data


def workflow_configfiles(given: Sequence[str | Path]) -> list[str]:
    """The files that make the config: those given with ``--configfile``, else the shipped default."""
    cwd = Path.cwd()
    return [str(Path(p).relative_to(cwd)) if cwd in Path(p).parents else str(p) for p in given] or [DEFAULT]


def check_files(paths: Iterable[str | Path]) -> None:
    """Load each config file strictly (raising on a duplicated key or a syntax error), before Snakemake does."""
    for path in paths:
        if Path(path).exists():
            load(path)


def check_or_exit(paths: Sequence[str | Path], announce: bool = True) -> None:
    """:func:`check_files`, a problem printed as one ``baseforge:`` paragraph and exit 1 (Snakefile parse time);
    with ``announce``, say which files make the config when they are not the default."""
    import sys

    try:
        check_files(paths)
    except BaseforgeError as err:
        sys.stderr.write(f"baseforge: {err}\n")
        sys.exit(1)
    if announce and [str(p) for p in paths] != [DEFAULT]:
        names = ", ".join(str(p) for p in paths)
        sys.stderr.write(f"baseforge: config from {names} ({DEFAULT} is not read when --configfile is given)\n")
