"""Smoke tests: run an image with no network and check /etc/os-release, uname -m, its output, user checks."""

from __future__ import annotations

import io
import json
import posixpath
import re
import secrets
import shlex
import tarfile
from pathlib import Path
from typing import Any

import docker.errors

from . import engine
from .errors import BaseforgeError
from .run import log, write_atomic
from .spec import PLATFORMS

#: the 32-bit machine -> the 64-bit kernel that runs its binaries natively (and reports itself to them)
NATIVE_32 = {"i686": "x86_64", "armv7l": "aarch64"}


def parse_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = shlex.split(value)[0] if value.strip() else ""
    return out


def machines(expected: str, kernel: str | None) -> list[str]:
    """What ``uname -m`` may say in an image whose architecture says ``expected``: a 32-bit image that runs
    natively on its 64-bit kernel (i386 on x86_64, armhf on aarch64: no qemu, no personality change) says the
    kernel's machine."""
    return [expected, kernel] if kernel and NATIVE_32.get(expected) == kernel else [expected]


def checks_for(plan: dict[str, Any], kernel: str | None = None) -> list[tuple[str, Any, Any]]:
    """(name, command, predicate on RunResult -> error text or None) for one image or app plan; ``kernel``:
    the machine of the engine's kernel (``docker info``'s Architecture)."""
    out: list[tuple[str, Any, Any]] = []
    expected = plan.get("os_release") or {}
    if expected:
        def os_release(r, expected=expected):
            found = parse_os_release(r.stdout)
            wrong = {k: found.get(k) for k, v in expected.items() if found.get(k) != v}
            return f"expected {expected}, found {wrong}" if wrong else None
        out.append(("os-release", ["cat", "/etc/os-release"], os_release))
    if plan.get("uname"):
        out.append(("uname -m", ["uname", "-m"], lambda r, ok=machines(plan["uname"], kernel): None
                    if r.stdout.strip() in ok else f"expected {' or '.join(ok)}, got {r.stdout.strip()!r}"))
    if plan.get("expect") is not None:
        out.append(("default command output", None, lambda r, e=plan["expect"]: None if e in r.stdout else f"expected {e!r} in its output, got {r.stdout[-300:]!r}"))
    for check in plan.get("checks", []):
        argv = ["sh", "-c", check] if isinstance(check, str) else list(check)
        out.append((check if isinstance(check, str) else shlex.join(check), argv, lambda r: None))
    return out


def _batched(client: Any, image_id: str, checks: list[tuple[str, Any, Any]]) -> list[engine.RunResult] | None:
    """Run every check command in one container (``sh`` runs them one by one, between markers), or None when
    the image has no working ``sh``. One container instead of one per check: each start costs ~0.5 s."""
    token = secrets.token_hex(8)
    script = "".join(f"printf '@@{token}:{i}:start\\n'; printf '@@{token}:{i}:start\\n' >&2; {shlex.join(argv)}; "
                     f"rc=$?; printf '\\n@@{token}:{i}:end:%d\\n' $rc; printf '\\n@@{token}:{i}:end\\n' >&2; "
                     for i, (_, argv, _) in enumerate(checks))
    try:
        result = engine.run(client, image_id, ["sh", "-c", script])
    except docker.errors.APIError:  # no sh at all: the container does not start
        return None
    pattern = re.compile(rf"@@{token}:(\d+):start\n(.*?)\n@@{token}:\1:end(?::(\d+))?\n", re.DOTALL)
    out = {int(m[1]): (m[2], m[3]) for m in pattern.finditer(result.stdout)}
    err = {int(m[1]): m[2] for m in pattern.finditer(result.stderr)}
    if set(out) != set(range(len(checks))) or set(err) != set(out):
        return None  # sh is missing or not a POSIX shell: one container per check
    return [engine.RunResult(int(out[i][1]), out[i][0], err[i]) for i in range(len(checks))]


def _run(client: Any, image_id: str, name: str, command: Any) -> engine.RunResult:
    """One check in a container of its own; an image without ``cat`` or ``uname`` (distroless) gets the
    built-in checks from outside: /etc/os-release read from the image, the architecture from its config."""
    try:
        return engine.run(client, image_id, command)
    except docker.errors.APIError as err:
        if name == "os-release":
            return engine.RunResult(0, read_file(client, image_id, "/etc/os-release").decode(errors="replace"), "")
        if name == "uname -m":
            cfg = engine.inspect(client, image_id)
            found = next((p.uname for p in PLATFORMS.values()
                          if (p.oci, p.variant or None) == (cfg.get("Architecture"), cfg.get("Variant") or None)), "")
            return engine.RunResult(0, found, "")
        return engine.RunResult(127, "", str(err.explanation or err))


def read_file(client: Any, image_id: str, path: str, hops: int = 8) -> bytes:
    """A regular file of an image, following symbolic links, without running anything in it."""
    container = engine.create(client, image_id, command=["/nonexistent"])
    try:
        for _ in range(hops):
            stream, _ = container.get_archive(path)
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tf:
                member = tf.getmembers()[0]
                if member.issym():
                    path = posixpath.normpath(posixpath.join(posixpath.dirname(path), member.linkname))
                    continue
                f = tf.extractfile(member)
                if f is None:
                    break
                return f.read()
    finally:
        container.remove(force=True)
    raise BaseforgeError(f"{path} in image {image_id} is not a regular file")


def smoketest(plan: dict[str, Any], record: str, report: str) -> None:
    """Run every check of ``plan`` against the image in ``record``; write a report, or fail with all problems.

    The default command runs in a container of its own; the other checks share one container when the
    image has a shell, else each gets one.
    """
    image_id = json.loads(Path(record).read_text())["image_id"]
    client = engine.connect()
    checks = checks_for(plan, kernel=client.info().get("Architecture"))
    if not checks:
        raise BaseforgeError(f"no smoke checks for {image_id}", hint="add checks: or expect: for this image in the config")
    commands = [i for i, c in enumerate(checks) if c[1] is not None]
    batch = _batched(client, image_id, [checks[i] for i in commands]) if len(commands) > 1 else None
    results = dict(zip(commands, batch or []))
    lines, failures = [], []
    for i, (name, command, predicate) in enumerate(checks):
        result = results.get(i) or _run(client, image_id, name, command)
        problem = f"exit code {result.exit_code}: {result.stderr.strip()[-300:]}" if result.exit_code else predicate(result)
        lines.append(f"{'FAIL' if problem else 'PASS'}\t{name}" + (f"\t{problem}" if problem else ""))
        log.info(lines[-1])
        if problem:
            failures.append(f"{name}: {problem}")
    if failures:
        raise BaseforgeError(f"smoke test of {image_id} failed:\n    " + "\n    ".join(failures))
    write_atomic(report, f"image\t{image_id}\n" + "\n".join(lines) + "\n")
