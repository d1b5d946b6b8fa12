"""The code a job runs, as a hash for its rule's ``params`` (the between-workflow cache key).

Snakemake reruns a ``script:`` rule when the script changes, and its cache hashes only the script and
the params: a change to a library module the script calls would serve stale entries. So each rule passes
:func:`script_hash` of its script: the content of every ``baseforge`` module in the import closure of
the modules the script imports (found by reading ``import`` statements, those inside functions too),
the files under data folders those modules name, and the plugin modules the job loads by name
(bootstrapper, distro preset) with their own closures. Nobody keeps a list of modules by hand.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import re
from collections.abc import Iterable
from pathlib import Path

import baseforge

from . import bootstrap, distro

PACKAGE = "baseforge"


@functools.lru_cache(maxsize=1)
def _root() -> Path:
    return Path(baseforge.__file__).resolve().parent


def _module_file(name: str) -> Path | None:
    """The file of ``baseforge.x.y`` (a module or a package's ``__init__``) under this package, or None."""
    return _file_under(_root(), name)


@functools.lru_cache(maxsize=4096)
def _file_under(root: Path, name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(_root()).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The dotted names ``path`` imports (module names, and ``module.name`` for ``from module import name``)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    return set(_parsed_imports(path.read_text(), package))


#: a statement that may be an import, at any indentation (those inside functions count too), with its
#: parenthesized continuation lines
IMPORT_LINE = re.compile(r"^[ \t]*(?:from[ \t]+\.*[\w.]*[ \t]+import[ \t]+(?:\([^)]*\)|[^\n]*)|import[ \t]+[^\n]*)", re.MULTILINE)


def _import_nodes(text: str) -> list[ast.stmt]:
    """The import statements of ``text``: each candidate line is parsed by ``ast`` on its own, which costs a
    fraction of parsing the whole module at every workflow start; a line that is not Python (an import in
    a docstring's example) is skipped, and one that is counts, which errs on the side of a new key."""
    nodes: list[ast.stmt] = []
    for match in IMPORT_LINE.finditer(text):
        try:
            nodes += ast.parse(match.group(0).strip()).body
        except SyntaxError:
            continue
    return nodes


@functools.lru_cache(maxsize=1024)
def _parsed_imports(text: str, package: str) -> tuple[str, ...]:
    names: set[str] = set()
    for node in _import_nodes(text):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
    return tuple(sorted(names))


def _data(path: Path) -> list[Path]:
    """Files under the folders next to ``path`` (not packages) whose names the module spells as a string
    (``Path(__file__).parent / "data"``)."""
    text = path.read_text()
    out = []
    for folder in _data_dirs(path.parent):
        if f'"{folder.name}"' in text or f"'{folder.name}'" in text:
            out += [f for f in sorted(folder.rglob("*")) if f.is_file() and "__pycache__" not in f.parts]
    return out


@functools.lru_cache(maxsize=256)
def _data_dirs(parent: Path) -> tuple[Path, ...]:
    return tuple(sorted(d for d in parent.iterdir()
                        if d.is_dir() and d.name.isidentifier() and not (d / "__init__.py").exists()))


@functools.lru_cache(maxsize=None)
def closure(module: str) -> tuple[Path, ...]:
    """Every file of this package that importing ``module`` (a dotted name) loads or reads, sorted.

    Cached for the life of the process: one parse of the workflow (or one test, which clears it)."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        # importing a.b.c runs a/__init__.py and a/b/__init__.py first
        for i in range(1, len(parts) + 1):
            path = _module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                seen.update(_data(path))
                todo.extend(_imports(path))
    return tuple(sorted(seen))


def files_hash(files: Iterable[Path]) -> str:
    root = _root()
    digest = hashlib.sha256()
    for f in sorted(set(files)):
        label = str(f.relative_to(root)) if f.is_relative_to(root) else f.name
        digest.update(label.encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def script_imports(script: Path) -> tuple[str, ...]:
    """The ``baseforge`` modules a rule's script imports."""
    return tuple(sorted(n for n in _absolute_imports(script) if n.split(".")[0] == PACKAGE))


def _absolute_imports(script: Path) -> set[str]:
    """What a file outside this package (a rule's script, a third party's plugin) imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(Path(script).read_text(), str(script))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def plugin_module(obj: object) -> str:
    """The module a plugin (an instance of a bootstrapper or distro class) was loaded from."""
    return type(obj).__module__


def module_hash(*modules: str) -> str:
    """The hash of the closures of ``modules``; a module outside this package counts with its own file."""
    files: set[Path] = set()
    for module in modules:
        files.update(closure(module))
        if _module_file(module) is None and module.split(".")[0] != PACKAGE:
            spec = importlib.util.find_spec(module)
            if spec is not None and spec.origin and Path(spec.origin).is_file():
                outside = Path(spec.origin)
                files.add(outside)
                for name in _absolute_imports(outside):
                    files.update(closure(name))
    return files_hash(files)


def script_hash(script: Path | str, *modules: str) -> str:
    """The code hash of a rule: the closure of what ``script`` imports, plus ``modules`` (plugins)."""
    return module_hash(*script_imports(Path(script).resolve()), *modules)


def cell_modules(bootstrapper: str, distro_name: str) -> tuple[str, ...]:
    """The plugin modules a cell names: its bootstrapper's and its distro preset's (either may be a third party's)."""
    return plugin_module(bootstrap.get(bootstrapper)), plugin_module(distro.get(distro_name))
