"""Smoke tests: run an image with no network and check /etc/os-release, uname -m, its output, user checks."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from . import engine
from .errors import BaseforgeError
from .run import log, write_atomic


def parse_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = shlex.split(value)[0] if value.strip() else ""
    return out


def checks_for(plan: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(name, command, predicate on RunResult -> error text or None) for one image or app plan."""
    out: list[tuple[str, Any, Any]] = []
    expected = plan.get("os_release") or {}
    if expected:
        def os_release(r, expected=expected):
            found = parse_os_release(r.stdout)
            wrong = {k: found.get(k) for k, v in expected.items() if found.get(k) != v}
            return f"expected {expected}, found {wrong}" if wrong else None
        out.append(("os-release", ["cat", "/etc/os-release"], os_release))
    if plan.get("uname"):
        out.append(("uname -m", ["uname", "-m"], lambda r, u=plan["uname"]: None if r.stdout.strip() == u else f"expected {u}, got {r.stdout.strip()!r}"))
    if plan.get("expect") is not None:
        out.append(("default command output", None, lambda r, e=plan["expect"]: None if e in r.stdout else f"expected {e!r} in its output, got {r.stdout[-300:]!r}"))
    for check in plan.get("checks", []):
        argv = ["sh", "-c", check] if isinstance(check, str) else list(check)
        out.append((check if isinstance(check, str) else shlex.join(check), argv, lambda r: None))
    return out


def smoketest(plan: dict[str, Any], record: str, report: str) -> None:
    """Run every check of ``plan`` against the image in ``record``; write a report, or fail with all problems."""
    image_id = json.loads(Path(record).read_text())["image_id"]
    client = engine.connect()
    lines, failures = [], []
    for name, command, predicate in checks_for(plan):
        result = engine.run(client, image_id, command)
        problem = f"exit code {result.exit_code}: {result.stderr.strip()[-300:]}" if result.exit_code else predicate(result)
        lines.append(f"{'FAIL' if problem else 'PASS'}\t{name}" + (f"\t{problem}" if problem else ""))
        log.info(lines[-1])
        if problem:
            failures.append(f"{name}: {problem}")
    if not lines:
        raise BaseforgeError(f"no smoke checks for {image_id}", hint="add checks: or expect: for this image in the config")
    if failures:
        raise BaseforgeError(f"smoke test of {image_id} failed:\n    " + "\n    ".join(failures))
    write_atomic(report, f"image\t{image_id}\n" + "\n".join(lines) + "\n")
