"""The sandbox an app's ``build:`` command runs in: bubblewrap, as an unprivileged user, offline.

What the command gets (and nothing else):

- the uid and gid 65534 (nobody), in new user, pid, ipc, uts, cgroup and network namespaces; when
  baseforge runs as root, bubblewrap itself is started as nobody (``setpriv``), so the host's own
  permission checks apply to nobody too: root's files (keys, ``~/.docker/config.json``) stay unreadable;
- the host's file system read-only, a fresh ``/tmp`` (also ``HOME``), ``/dev`` and ``/proc`` of its own;
- write access to a copy of the app's context (its working directory) and to an empty ``$OUT`` only;
- a clean environment: ``PATH``, ``HOME``, ``SOURCE_DATE_EPOCH``, ``OUT`` and the app's ``env:``;
- no network (only a loopback device) unless the app says ``network: true``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from .errors import BaseforgeError
from .run import run
from .scratch import owned_dir

NOBODY = 65534
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A private directory for the context copy and ``$OUT``, in the system's temporary directory (which
    nobody can reach, unlike a workflow directory under a 0700 home), removed afterwards."""
    with owned_dir(tempfile.gettempdir(), "baseforge-app-", mode=0o700) as path:  # (marked: see baseforge.scratch)
        yield path


def argv(command: str, work: Path, out: Path, env: Mapping[str, str], network: bool = False) -> list[str]:
    """The bubblewrap command line that runs ``sh -ec command`` in ``work`` (a pure function, for tests)."""
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all", "--"] if os.geteuid() == 0 else []
    argv += [
        "bwrap", "--die-with-parent", "--new-session", "--unshare-all", *(["--share-net"] if network else []),
        "--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY),
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
        "--bind", str(work), str(work), "--bind", str(out), str(out), "--chdir", str(work), "--clearenv",
    ]
    full = {"PATH": PATH, "HOME": "/tmp", **env, "OUT": str(out)}
    for key in sorted(full):
        argv += ["--setenv", key, full[key]]
    return argv + ["--", "sh", "-ec", command]


def run_build(command: str, work: Path, out: Path, env: Mapping[str, str], network: bool = False) -> None:
    """Run an app's ``build:`` command sandboxed (see the module docstring); ``work`` and ``out`` must lie in
    a :func:`scratch` directory."""
    if shutil.which("bwrap") is None:
        raise BaseforgeError("an app's build: runs in a bubblewrap sandbox, and bwrap is not installed",
                             hint="apt-get install bubblewrap (tools/install-deps does)")
    if os.geteuid() == 0:  # the sandbox user must own what it may write, and reach it
        for path in (work.parent, work, out):
            os.chown(path, NOBODY, NOBODY)
        for root, dirs, files in os.walk(work):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), NOBODY, NOBODY)
    run(argv(command, work.resolve(), out.resolve(), env, network))
