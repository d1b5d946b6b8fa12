"""Plugin discovery shared by bootstrappers and distribution presets (mkosi's installer registry).

A plugin is a module of its package (imported only when asked for; ``centos-stream`` lives in
``centos_stream.py``) or an entry point of another installed package, in the package's group.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
from typing import Any

from .errors import BaseforgeError


def available(package: str, group: str) -> list[str]:
    """Names of every plugin: the modules of ``package`` and the entry points of ``group``."""
    paths = importlib.import_module(package).__path__
    names = {m.name.replace("_", "-") for m in pkgutil.iter_modules(paths) if not m.name.startswith("_")}
    names |= {ep.name for ep in importlib.metadata.entry_points(group=group)}
    return sorted(names)


def load(name: str, registry: dict[str, Any], package: str, group: str, kind: str) -> Any:
    """The class registered as ``name``, importing its module or entry point first if need be."""
    if name not in registry:
        eps = {ep.name: ep for ep in importlib.metadata.entry_points(group=group)}
        try:
            eps[name].load() if name in eps else importlib.import_module(f"{package}.{name.replace('-', '_')}")
        except ModuleNotFoundError:
            raise BaseforgeError(f"unknown {kind} {name!r}", hint=f"choose one of: {', '.join(available(package, group))}") from None
    if name not in registry:
        raise BaseforgeError(f"{kind} plugin {name!r} registers no class of that name",
                             hint=f"its class must subclass the {kind} base with name={name!r}")
    return registry[name]
