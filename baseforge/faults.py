"""Failures a person can act on: any exception a job ends with, as one ``baseforge:`` paragraph.

A job's console gets what failed (step and cell), the failing tool's own last error lines (not its
command line, which is in the job's log), the free space when a file system is full, and what to do.
Each failed job also leaves a one-line record under ``.baseforge/failures/`` (Snakemake deletes a
job's log when the job runs again), which the Snakefile's ``onerror`` lists at the end of the run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import BaseforgeError
from .host import docker_host
from .secret import redact

FAILURES = Path(".baseforge/failures")

#: lines of a tool's output that say what went wrong (apt's ``E:``, curl's, skopeo's, dpkg's …)
ERROR_LINE = re.compile(
    r"^(E|F|Error|ERROR|FATAL|fatal|error)\b[:!]|\b(error|failed|failure|refused|unreachable|denied|not found|"
    r"no space left|unable to|cannot|can't|could not|couldn't|timed out|no such|invalid|not permitted|"
    r"unauthorized|forbidden|bad signature|NO_PUBKEY|expired|no match)\b", re.IGNORECASE)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: logrus lines (skopeo, docker): time="…" level=fatal msg="what went wrong"
LOGFMT = re.compile(r'^time="[^"]*" level=\w+ msg="((?:[^"\\]|\\.)*)"$')

#: (what the output says, what to do): the first cause that matches gives the hint
CAUSES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.IGNORECASE), h) for p, h in (
    (r"no space left on device|\[errno 28\]|disk quota exceeded",
     "free space there (df -h; df -i for inodes), or point BASEFORGE_TMPDIR at a larger scratch directory, then run the same command again"),
    (r"connection refused|could not connect|failed to connect|connection reset|network is unreachable|"
     r"temporary failure resolving|could not resolve|name or service not known|timed out|no route to host",
     "a server is not reachable: check that it runs and that its URL in the config (mirrors:, registry:) "
     "is right, then run the same command again"),
    (r"unable to locate package|has no installation candidate|is not available, but is referred to|"
     r"no package \S+ available|no match for argument",
     "a package name is wrong for this release and architecture: fix packages: in the config"),
    (r"creating signature|gpg: signing failed|bad passphrase|no secret key",
     "check registry.sign: the key (gpg: a fingerprint of a secret key in gnupg_home, or sigstore_key) and its "
     "passphrase_file"),
    (r"NO_PUBKEY|signature|not signed|KEYEXPIRED|BADSIG|not trusted",
     "the repository's signature does not verify: check keyrings: and the mirror"),
    (r"hash sum mismatch|hashes do not match|unexpected size",
     "the mirror served a file that does not match its signed index (a broken download, a mirror in the middle "
     "of a sync, or tampering): run the same command again later, or use another mirror"),
    (r"\b404\b|does not have a release file",
     "the mirror lacks a file its index names (a mirror in the middle of a sync, or the wrong URL in mirrors:): "
     "run the same command again later, or use another mirror"),
    (r"exec format error",
     "a foreign architecture needs qemu-user-static and binfmt-support (`python3 -m baseforge doctor`)"),
    (r"unexpected HTTP status: 5\d\d|\b50[0-4] (?:Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout)",
     "the server failed on its side (HTTP 5xx; its own log says why): run the same command again later"),
    (r"manifest unknown|unauthorized|authentication required|denied: ",
     "check the registry URL, and the credentials in ~/.docker/config.json or REGISTRY_AUTH_FILE"),
))


#: (what the output says, the cause in a few words): the first that matches is the headline of a tool's failure
FINDINGS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.IGNORECASE | re.MULTILINE), f) for p, f in (
    (r"no space left on device", "no space left on device"),
    (r"GPG error: (?P<url>\S+) (?P<suite>\S+) (?:In)?Release\b|repository '(?P<url2>\S+) (?P<suite2>\S+) (?:In)?Release' is not signed",
     "signature verification failed for suite {suite} of the mirror {url}"),
    (r"GPG check FAILED|BADSIG|bad signature", "signature verification failed"),
    (r"gpg: signing failed: (?P<why>.+)$|creating signature: (?P<why2>.+)$", "signing failed: {why}"),
    (r"Failed to fetch (?P<url>\S+)\s+Hash Sum mismatch", "{url} does not match the checksum of the mirror's index"),
    (r"Failed to fetch (?P<url>\S+)\s+404\b", "{url}: 404 Not Found"),
    (r"(?:Could not resolve|Temporary failure resolving) '(?P<host>[^']+)'|lookup (?P<host2>[^\s:]+)(?: on \S+)?: no such host",
     "the host name {host} does not resolve"),
    (r"Could not connect to (?P<host>\S+?)(?: \(|:\d*\s|\s)|dial tcp (?P<host2>\S+?): connect: connection refused",
     "{host}: connection refused"),
    (r"\bin (?P<where>[^\s:]+(?::\d+)?/[^\s:]+): (?P<what>unauthorized|authentication required|denied|"
     r"invalid username/password)", "the registry refused access to {where}: {what}"),
    (r"(?P<what>unauthorized|authentication required|invalid username/password)", "the registry refused: {what}"),
    (r"\bin (?P<where>[^\s:]+(?::\d+)?): received unexpected HTTP status: (?P<status>5\d\d[^\n\"]*)",
     "the registry {where} failed on its side: HTTP {status}"),
))


def finding(text: str) -> str | None:
    """The cause of a tool's failure in a few words, naming what it is about (mirror and suite, URL, host),
    read from its output; None when no known cause shows."""
    text = plain(text)
    for pattern, headline in FINDINGS:
        m = pattern.search(text)
        if m:
            groups = {k.rstrip("2"): v for k, v in m.groupdict().items() if v}
            return headline.format(**groups)
    return None


class ToolError(BaseforgeError):
    """An external command failed: its name, exit code and its own last error lines (never its argv; a
    ``user:password@`` in them is redacted)."""

    def __init__(self, tool: str, returncode: int, output: str) -> None:
        output = redact(output)
        self.tool, self.returncode, self.output = tool, returncode, output
        lines = error_lines(output)
        detail = "".join(f"\n    {line}" for line in lines)
        how = f"was killed by {signal_name(-returncode)}" if returncode < 0 else f"exited with code {returncode}"
        found = finding(output)
        super().__init__(f"{tool} {how}{': ' + found if found else ':' if lines else ''}{detail}", hint=cause_hint(output))


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def error_lines(text: str, limit: int = 5) -> list[str]:
    """The last ``limit`` distinct error-looking lines of ``text`` (else its last non-empty lines)."""
    lines = plain(text).splitlines()
    # Go tools chain their errors ("copying: pinging registry: dial tcp …: connection refused"): the end
    # is the cause
    lines = [line if len(line) <= 300 else "…" + line[-300:] for line in lines if line]
    picked = [line for line in lines if ERROR_LINE.search(line)] or lines[-3:]
    return list(dict.fromkeys(reversed(picked)))[:limit][::-1]


def plain(text: str) -> str:
    """``text`` without terminal colours, and a logrus line as its message (``msg="…"`` unquoted)."""
    return "\n".join(LOGFMT.sub(lambda m: m.group(1).replace('\\"', '"'), ANSI.sub("", line).strip())
                     for line in text.replace("\r", "\n").splitlines())


def cause_hint(text: str) -> str | None:
    return next((hint for pattern, hint in CAUSES if pattern.search(text)), None)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def space(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """``<path>: <free> free of <size>`` for the file system of each path (one line per file system)."""
    out, seen = [], set()
    for p in paths:
        path = Path(p).absolute()
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            dev = path.stat().st_dev
            usage = shutil.disk_usage(path)
        except OSError:
            continue
        if dev not in seen:
            seen.add(dev)
            mount = mount_point(path)
            where = f" (file system mounted at {mount})" if mount != path else ""
            inodes = os.statvfs(path)
            # (no space left while bytes are free: out of inodes, which df -i shows)
            files = f", no inodes free of {inodes.f_files}" if inodes.f_files and not inodes.f_favail else ""
            out.append(f"{path}: {human(usage.free)} free of {human(usage.total)}{files}{where}")
    return out


def mount_point(path: Path) -> Path:
    """The mount point of the file system ``path`` is on (the highest ancestor on the same device)."""
    dev = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == dev:
        path = path.parent
    return path


def root_cause(err: BaseException) -> BaseException:
    """The innermost exception ``err`` was raised from (the OSError under the docker SDK's and HTTP's)."""
    seen = {id(err)}
    while (err.__cause__ or err.__context__) is not None and id(err.__cause__ or err.__context__) not in seen:
        err = err.__cause__ or err.__context__
        seen.add(id(err))
    return err


def is_engine_error(err: BaseException) -> bool:
    """The docker SDK and the HTTP stack under it (the engine died, or closed the connection mid-load)."""
    return type(err).__module__.split(".")[0] in ("docker", "requests", "urllib3", "http")


def describe(err: BaseException, paths: Sequence[str | os.PathLike[str]] = ()) -> tuple[str, str | None, str]:
    """(what failed, what to do, the text the cause was read from) for any exception a job ends with.
    ``paths``: where the job writes (for the free space when a file system is full)."""
    if isinstance(err, subprocess.CalledProcessError):  # a plugin that ran a tool itself
        cmd = err.cmd if isinstance(err.cmd, (list, tuple)) else str(err.cmd).split()
        output = err.stderr or err.output or b""
        err = ToolError(os.path.basename(str(cmd[0])) if cmd else "a command", err.returncode,
                        output.decode(errors="replace") if isinstance(output, bytes) else output)
    if isinstance(err, ToolError):
        message, hint, text = err.message, err.hint, err.output
    elif isinstance(err, BaseforgeError):
        message, hint, text = err.message, err.hint, err.message
    elif is_engine_error(err):
        text = str(getattr(err, "explanation", None) or err)
        if hasattr(err, "explanation"):  # docker.errors.APIError: the engine answered, with an error
            message = f"the Docker Engine at {docker_host()} refused: {text}"
            hint = cause_hint(text) or "the engine's own log says more (dockerd's stderr, or journalctl -u docker)"
        else:  # the connection broke: the engine died or went away mid-request
            message = f"the Docker Engine at {docker_host()} stopped answering: {type(err).__name__}: {text}"
            hint = ("check that dockerd runs (`tools/engine start` starts baseforge's private one), "
                    "then run the same command again")
    elif isinstance(err, OSError):
        where = f" ({err.filename})" if err.filename else ""
        message = f"{err.strerror or err}{where}"
        text = f"{message} [errno {err.errno}]"
        hint = cause_hint(text) or "the full traceback is in the log"
        if err.errno in (errno.EACCES, errno.EPERM):
            hint = "baseforge needs write access there (and root, or subordinate uids for a rootless bootstrap)"
        elif err.errno == errno.EROFS:
            hint = "that file system is mounted read-only: build on a writable one (or remount it read-write)"
    else:
        message = f"unexpected {type(err).__name__}: {err}"
        hint, text = "this is a bug in baseforge: the traceback is in the log; please report it", str(err)
    if re.search(r"no space left on device|\[errno 28\]|disk quota exceeded", f"{text} {message}", re.IGNORECASE):
        where = [getattr(err, "filename", None)] if getattr(err, "filename", None) else []
        # the tool's error lines name the path it could not write (dpkg, tar, apt do)
        # (not the engine's: they are paths on the engine's host, in its data root)
        where += [] if is_engine_error(err) else re.findall(r"(?<![\w.])(/[\w.+@-][^\s:'\"()]*)", "\n".join(error_lines(text)))
        free = space([*where, *paths])
        if free:
            message += "".join(f"\n    {line}" for line in free)
    # whatever raised it (urllib quotes the URL it could not read), no user:password@ reaches the console
    # or a record of .baseforge/failures
    return redact(message), redact(hint) if hint else hint, redact(text)


def paragraph(step: str, cell: str, err: BaseException, paths: Sequence[str] = (), log: str | None = None) -> str:
    """The console paragraph for a failed job."""
    message, hint, _ = describe(err, paths)
    out = f"baseforge: {' '.join(filter(None, (step, cell)))} failed: {message}"
    if hint:
        out += f"\n  hint: {hint}"
    if log:
        out += f"\n  (the command and its whole output: {log})"
    return out + "\n"


def one_line(step: str, cell: str, err: BaseException) -> str:
    """The failure in one line: step, cell and the cause (its headline, else the most telling line: the
    first that says a known cause, else the first of the tool's error lines)."""
    message, _, text = describe(err)
    head, *rest = [line.strip() for line in message.splitlines() if line.strip()] or [type(err).__name__]
    telling = next((x for x in rest if any(p.search(x) for p, _ in CAUSES)), rest[0] if rest else "")
    if rest and finding(text) and head.endswith(finding(text)):  # the headline says it already
        telling = ""
    return f"{' '.join(filter(None, (step, cell)))}: {head.rstrip(':')}{': ' + telling if telling else ''}"


def record_path(step: str, cell: str, root: Path = FAILURES) -> Path:
    return root / f"{step}--{cell.replace('/', '--') or 'all'}.txt"


def record(step: str, cell: str, err: BaseException, root: Path = FAILURES, log: str | None = None) -> Path | None:
    """Write the failure's line for the run's summary, and a copy of the job's ``log`` beside it (Snakemake
    deletes a job's log when the job runs again); the copy's path, or None."""
    path = record_path(step, cell, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = None
    if log and Path(log).is_file():
        kept = path.with_suffix(".log")
        with contextlib.suppress(OSError):
            shutil.copyfile(log, kept)
        kept = kept if kept.is_file() else None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(one_line(step, cell, err) + "\n" + (f"    log: {kept}\n" if kept else ""))
    os.replace(tmp, path)
    return kept


def forget(step: str, cell: str, root: Path = FAILURES) -> None:
    record_path(step, cell, root).unlink(missing_ok=True)
    record_path(step, cell, root).with_suffix(".log").unlink(missing_ok=True)


def summary(since: float, root: Path = FAILURES) -> str:
    """The failures recorded since ``since`` (a time.time()), as the end of a failed run shows them."""
    if not root.is_dir():
        return ""
    lines = sorted(p.read_text().strip("\n") for p in root.glob("*.txt") if p.stat().st_mtime >= since - 1)
    if not lines:
        return ""
    return f"baseforge: {len(lines)} job{'s' if len(lines) > 1 else ''} failed:\n" + "".join(f"  - {x}\n" for x in lines)
