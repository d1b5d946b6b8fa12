"""The sandbox an app's ``build:`` command runs in: bubblewrap, as an unprivileged user, offline.

What the command gets (and nothing else):

- the uid and gid 65534 (nobody), in new user, pid, ipc, uts, cgroup and network namespaces; when
  baseforge runs as root, bubblewrap itself is started as nobody (``setpriv``), so the host's own
  permission checks apply to nobody too: root's files (keys, ``~/.docker/config.json``) stay unreadable;
- the host's file system read-only, a fresh ``/tmp`` (also ``HOME``), ``/dev`` and ``/proc`` of its own;
- empty in place of where the host keeps sockets and private files (:func:`hidden`): ``/run`` (the
  Docker, D-Bus and every other service socket: a unix socket on a read-only mount still connects, and
  a new network namespace does not cover them), ``/var/tmp``, ``/home``, ``/root``, the invoking user's
  ``HOME`` and the workflow directory (its config may hold a mirror's password), read-only too;
- write access to a copy of the app's context (its working directory) and to an empty ``$OUT`` only;
- a clean environment: ``PATH``, ``HOME``, ``SOURCE_DATE_EPOCH``, ``OUT`` and the app's ``env:``;
- no network (only a loopback device) unless the app says ``network: true``;
- no user namespace of its own (``--disable-userns``), so no capabilities to reach the kernel with.
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


def hidden(cwd: Path | None = None) -> list[str]:
    """The host directories the build sees empty (see the module docstring): those that exist, are not links
    and are not ``/``."""
    dirs = ["/run", "/var/tmp", "/home", "/root", os.environ.get("HOME", ""), str(cwd or Path.cwd())]
    out = []
    for d in dict.fromkeys(d for d in dirs if d):
        path = Path(d)
        if path.is_absolute() and path != Path("/") and path.is_dir() and not path.is_symlink():
            out.append(str(path))
    return out


def resolver(dirs: list[str], conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """Where ``/etc/resolv.conf`` really is when that lies in one of the hidden ``dirs`` (systemd-resolved's
    ``/run/systemd/resolve/stub-resolv.conf``): a ``network: true`` build must still resolve names."""
    real = conf.resolve()
    return [str(real)] if real != conf and real.is_file() and any(real.is_relative_to(d) for d in dirs) else []


def argv(command: str, work: Path, out: Path, env: Mapping[str, str], network: bool = False) -> list[str]:
    """The bubblewrap command line that runs ``sh -ec command`` in ``work`` (a pure function, for tests)."""
    dirs = hidden()
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all", "--"] if os.geteuid() == 0 else []
    argv += [
        "bwrap", "--die-with-parent", "--new-session", "--unshare-all", *(["--share-net"] if network else []),
        # no user namespace inside: the build gets no capabilities of its own to reach the kernel with
        "--unshare-user", "--disable-userns", "--uid", str(NOBODY), "--gid", str(NOBODY),
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
        *[a for d in dirs for a in ("--tmpfs", d)],
        "--bind", str(work), str(work), "--bind", str(out), str(out),
        *(a for f in (resolver(dirs) if network else []) for a in ("--ro-bind", f, f)),
        *[a for d in dirs for a in ("--remount-ro", d)],  # after the binds, which may lie below one of them
        "--chdir", str(work), "--clearenv",
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
