"""One way to run a command: argv lists only, logged, failures turned into readable errors."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from . import faults
from .errors import BaseforgeError
from .faults import ToolError
from .secret import redact

log = logging.getLogger("baseforge")


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    capture: bool = False,
    input: bytes | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv``; log it; on failure raise :class:`~baseforge.faults.ToolError` with the tool's name,
    exit code and its own last error lines (the command line is in the log only).

    ``env`` entries are added to the current environment. With ``capture`` stdout and stderr are
    returned; otherwise stdout goes to this process's stdout (the rule's log) and stderr to its stderr
    as well, keeping its tail for the error.
    """
    tool = Path(os.fspath(argv[0])).name
    args = [*_prefix, *(os.fspath(a) for a in argv)]
    log.info("$ %s", redact(shlex.join(args)))  # user:password@ of a mirror never reaches a log or the console
    full_env = {**os.environ, **env} if env else None
    try:
        if capture:
            proc = subprocess.run(args, env=full_env, cwd=cwd, input=input, capture_output=True, check=False,
                                  process_group=0 if _own_group else None)
            stderr = proc.stderr or b""
        else:
            proc, stderr = _run_teeing_stderr(args, full_env, cwd, input, _own_group)
    except FileNotFoundError:
        raise BaseforgeError(f"{args[0]} not found", hint="install it (see tools/install-deps) or put it on PATH") from None
    if check and proc.returncode != 0:
        raise ToolError(tool, proc.returncode, stderr.decode(errors="replace"))  # (ToolError redacts it)
    return proc


#: argv put before every command :func:`run` starts inside :func:`prefixed`, and whether it gets its own
#: process group
_prefix: list[str] = []
_own_group = False


@contextlib.contextmanager
def prefixed(prefix: Sequence[str], own_group: bool = False) -> Iterator[None]:
    """Run every command of the block under ``prefix`` (e.g. ``unshare --mount --``: its own mount namespace),
    with ``own_group`` each in its own process group (a tool that signals its whole group, as mmdebstrap
    does when writing its tarball fails, then does not take Snakemake down with it)."""
    global _prefix, _own_group
    saved = _prefix, _own_group
    _prefix, _own_group = [*_prefix, *prefix], own_group or _own_group
    try:
        yield
    finally:
        _prefix, _own_group = saved


def _run_teeing_stderr(args: list[str], env: Mapping[str, str] | None, cwd: Path | str | None,
                       input: bytes | None, own_group: bool = False) -> tuple[subprocess.CompletedProcess[bytes], bytes]:
    """Run with stderr copied to ours (the rule's log) as it comes, and its last 64 KiB kept. With
    ``own_group`` the command gets its own process group, stopped (SIGTERM) when we are interrupted."""
    tail = bytearray()
    sys.stderr.flush()
    with subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.PIPE if input is not None else None,
                          stderr=subprocess.PIPE, process_group=0 if own_group else None) as popen:

        def copy() -> None:
            for chunk in iter(lambda: popen.stderr.read1(65536), b""):
                os.write(2, chunk)
                tail.extend(chunk)
                del tail[:-65536]

        reader = threading.Thread(target=copy, daemon=True)
        reader.start()
        if input is not None:
            try:
                popen.stdin.write(input)
            except BrokenPipeError:
                pass
            popen.stdin.close()
        try:
            returncode = popen.wait()
        except BaseException:  # Ctrl-C, or SIGTERM from Snakemake: the command stops with us
            if own_group:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGTERM)
            raise
        reader.join()
    return subprocess.CompletedProcess(args, returncode), bytes(tail)


def output(argv: Sequence[str | os.PathLike[str]], **kwargs) -> str:
    """Run ``argv`` and return its stdout as text."""
    return run(argv, capture=True, **kwargs).stdout.decode().strip()


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    """Announce a step, and how long it took."""
    log.info("▶ %s", title)
    start = time.monotonic()
    yield
    log.info("✔ %s (%.1fs)", title, time.monotonic() - start)


def setup_logging(logfile: str | os.PathLike[str] | None = None) -> None:
    """Log to ``logfile`` (a rule's log) or stderr, with timestamps."""
    handler: logging.Handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("baseforge")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


@contextlib.contextmanager
def job(snakemake) -> Iterator[None]:  # noqa: ANN001 - the object Snakemake hands a script
    """Wrap a rule's script: everything (our log and the tools' output) goes to the rule's log, and any
    failure becomes one ``baseforge:`` paragraph on the console (step, cell, the cause, what to do; see
    :mod:`baseforge.faults`), a one-line record for the run's summary, and exit code 1. SIGTERM (Snakemake
    cancelling the job) unwinds like an exception, so the job's scratch space is removed."""
    # every file a job creates gets the same mode whoever runs it: the invoking shell's umask (077, 002) would
    # reach the image (a sources.list written 0600) and change its digest
    os.umask(0o022)
    console = os.dup(2)
    logfile = snakemake.log[0] if snakemake.log else None
    if logfile:
        fd = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    setup_logging()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    cell = "/".join(str(v) for v in dict(snakemake.wildcards).values())
    faults.forget(snakemake.rule, cell)
    try:
        with step(f"rule {snakemake.rule} {dict(snakemake.wildcards)}"):
            yield
    except Exception as err:  # noqa: BLE001 - every failure gets its paragraph; the traceback goes to the log
        log.error("%s", err, exc_info=not isinstance(err, BaseforgeError))
        paths = [os.path.dirname(os.path.abspath(o)) for o in snakemake.output] + [os.environ.get("BASEFORGE_TMPDIR", "")]
        kept = None
        with contextlib.suppress(OSError):  # (a full disk: the paragraph still goes out)
            kept = faults.record(snakemake.rule, cell, err, log=logfile)
        os.write(console, faults.paragraph(snakemake.rule, cell, err, [p for p in paths if p], str(kept) if kept else logfile).encode())
        sys.exit(1)


def interrupt(signum: int, frame: object) -> None:
    """Ctrl-C: KeyboardInterrupt, wherever the main thread is (:func:`keep_interrupts`)."""
    raise KeyboardInterrupt


def keep_interrupts() -> None:
    """Make Ctrl-C stop Snakemake's main process whenever it comes (the Snakefile calls it at parse time).

    Snakemake runs parts of its scheduling in ``asyncio.Runner.run``, which replaces Python's own SIGINT
    handler (only that one) for the time it runs with one that merely cancels its task, and a task that is
    already done swallows the signal: a Ctrl-C that lands there (it does when a short job has just started)
    is lost, and the run goes on to its end. A handler of our own, which raises as Python's does, is left
    in place."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupt)


def cancel_idle_timers() -> int:
    """Cancel the ``threading.Timer`` threads still waiting in this process; how many there were.

    For Snakemake's onsuccess/onerror handlers, when the scheduler is done. After every round of job
    selection its scheduler arms a non-daemon Timer of ``--max-jobs-per-timespan``'s timespan (1 s by
    default) that only wakes the scheduler up again, and Python waits for the last of them before it
    exits: every run that executed a job would end that much late (a minute with ``10/1m``), long after
    its work and its log are complete.
    """
    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.is_alive()]
    for timer in timers:
        timer.cancel()
    return len(timers)


@contextlib.contextmanager
def atomic_file(path: Path | str) -> Iterator[Path]:
    """A temporary path beside ``path`` that becomes ``path`` (mode 0644) only if the block succeeds.

    The one way baseforge writes outputs: a half-written file never sits at an output path, where
    Snakemake (or a user) would take it for a result.
    """
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o644)  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_output(path: Path | str) -> Iterator[BinaryIO]:
    """:func:`atomic_file`, opened for writing and fsync'ed before the rename."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: Path | str, data: bytes | str) -> None:
    """Write ``data`` to ``path`` via :func:`atomic_output`."""
    with atomic_output(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def write_json(path: Path | str, obj: Any) -> None:
    """A JSON output (sorted keys, indented, newline-terminated), written atomically."""
    import json

    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
