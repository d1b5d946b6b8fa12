"""Scratch space that does not outlive its job, and the removal of what a killed job left anyway.

A job's scratch directory carries an owner marker (pid, process start time, host). A bootstrap runs in a
private mount namespace (as root), so the proc/sys/dev mounts a bootstrapper makes in its tree vanish
with its processes. What a killed run leaves anyway is removed by the next run (:func:`recover`, at
parse time in Snakemake's main process): scratch trees whose owner is dead, and, when no other
Snakemake works in the directory, the build tree's temporary files and Snakemake's stale lock. A tree is
unmounted first (deepest mount first), deleted without crossing into another file system
(``rm --one-file-system``), and left alone when a mount under it remains.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from . import paths
from .errors import BaseforgeError


MARKER = ".baseforge-owner"
#: trees mmdebstrap makes in its TMPDIR (the legacy kind, without our marker)
FOREIGN = ("mmdebstrap.*",)


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks after boot, /proc/<pid>/stat field 22), None if gone (or a
    zombie: killed, not yet reaped by whoever inherited it)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def owner() -> dict[str, object]:
    return {"pid": os.getpid(), "start": start_time(os.getpid()), "host": socket.gethostname()}


def owner_alive(marker: Path) -> bool:
    """True unless ``marker`` names a process of this host that is gone (a missing marker: unknown owner,
    so alive; a marker of another host: alive, we cannot see its processes)."""
    try:
        return alive(json.loads(marker.read_text()))
    except (OSError, ValueError):
        return True


def alive(data: dict[str, object]) -> bool:
    """Whether the owner :func:`owner` described as ``data`` may still run (see :func:`owner_alive`)."""
    if data.get("host") != socket.gethostname():
        return True
    try:
        return start_time(int(data["pid"])) == data.get("start")
    except (KeyError, TypeError, ValueError):
        return True


def marked(tree: Path) -> bool:
    """``tree`` carries an owner marker we can read (another user's private tree: not ours to judge)."""
    try:
        return (tree / MARKER).is_file() and os.access(tree / MARKER, os.R_OK)
    except OSError:
        return False


@contextlib.contextmanager
def owned_dir(parent: Path | str, prefix: str, mode: int = 0o755) -> Iterator[Path]:
    """A new directory in ``parent`` with an owner marker, removed (safely) when the block ends."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        path.chmod(mode)  # a rootless bootstrap's mapped root must traverse it
        (path / MARKER).write_text(json.dumps(owner()) + "\n")
        yield path
    finally:
        remove_tree(path)


def mount_points(below: Path) -> list[Path]:
    """Mount points of this mount namespace at or under ``below``, deepest first."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = Path(line.split()[4].encode().decode("unicode_escape"))
            if point == below or below in point.parents:
                out.append(point)
    return sorted(set(out), key=lambda p: len(p.parts), reverse=True)


def remove_tree(path: Path | str) -> str | None:
    """Unmount what is mounted under ``path`` (deepest first, lazily), then delete it without crossing into
    another file system. None when done, else why it was left."""
    path = Path(os.path.realpath(Path(path).parent)) / Path(path).name  # as the mount table spells it
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return None
    for point in mount_points(path):
        subprocess.run(["umount", "--lazy", "--recursive", str(point)], capture_output=True, check=False)
    left = mount_points(path)
    if left:
        return f"{path}: still mounted at {left[0]} (umount failed)"
    proc = subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], capture_output=True, text=True, check=False)
    if path.exists():
        return f"{path}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'not removed'}"
    return None


def remove_when_unused(path: Path, wait: float = 10) -> str | None:
    """:func:`remove_tree`, once no process works in ``path`` any more: the processes a killed job started
    are being killed by the kernel as its namespaces go, which takes a moment."""
    deadline = time.monotonic() + wait
    while path.is_dir() and in_use(path, any_mmdebstrap=False):
        if time.monotonic() > deadline:
            return f"{path}: still in use by a process of the killed job"
        time.sleep(0.1)
    return remove_tree(path)


def processes() -> Iterator[tuple[int, list[str], Path | None]]:
    """(pid, argv, cwd) of every process we can see."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        yield int(entry.name), cmdline, cwd


def ancestors() -> set[int]:
    out, pid = set(), os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        except OSError:
            break
    return out


def other_snakemakes(workdir: Path) -> list[int]:
    """Live processes other than us that work for a Snakemake run in ``workdir`` (the run itself, or a job
    script of a killed run that still goes on)."""
    workdir, mine = workdir.resolve(), ancestors()
    return sorted(pid for pid, argv, cwd in processes() if pid not in mine and cwd == workdir and is_snakemake(argv))


def is_snakemake(argv: list[str]) -> bool:
    """``snakemake …``, ``python3 …/snakemake …``, ``python3 -m snakemake …``, or a job script it runs
    (``python3 …/.snakemake/scripts/tmp….py``)."""
    names = [os.path.basename(a) for a in argv[:3]]
    return any(n.startswith("snakemake") for n in names) or any("/.snakemake/scripts/" in f"/{a}" for a in argv)


def in_use(tree: Path, any_mmdebstrap: bool = True) -> bool:
    """A live process has its root, cwd or an open file in ``tree``; with ``any_mmdebstrap``, also when an
    mmdebstrap runs at all (whose tree we cannot tell without a marker)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any_mmdebstrap and (proc / "comm").read_text().strip() == "mmdebstrap":
                return True
            links = [proc / "root", proc / "cwd"] + list((proc / "fd").iterdir())
            for link in links:
                with contextlib.suppress(OSError):
                    target = Path(os.readlink(link))
                    if target == tree or tree in target.parents:
                        return True
    return False


def scratch_roots() -> list[Path]:
    """Where bootstrap scratch trees live: $BASEFORGE_TMPDIR, /dev/shm and the system's temporary directory."""
    roots = [os.environ.get("BASEFORGE_TMPDIR"), "/dev/shm", tempfile.gettempdir()]
    return list(dict.fromkeys(Path(r) for r in roots if r and Path(r).is_dir()))


def stale_scratch(roots: list[Path], build: Path, build_idle: bool) -> list[Path]:
    """Scratch trees a dead job left: marked trees (in ``roots`` and anywhere under ``build``) whose owner is
    gone; when ``build_idle`` (no Snakemake works in this directory) also unmarked ``.bootstrap-*`` trees
    and ``.*.tmp`` files under ``build``; and unmarked mmdebstrap trees no live process uses."""
    out = []
    for root in roots:
        for tree in root.glob("baseforge-*"):
            if marked(tree) and not owner_alive(tree / MARKER):
                out.append(tree)
        out += [t for pattern in FOREIGN for t in root.glob(pattern) if t.is_dir() and not t.is_symlink() and not in_use(t)]
    # every marked work directory (bootstrap, app, packages, buildah, OCI blobs, baseforge lock …) of a dead job
    dead = [m.parent for d in (build, build.parent / ".baseforge") if d.is_dir() for m in d.rglob(MARKER) if not owner_alive(m)]
    out += [t for t in dead if not any(d in t.parents for d in dead)]
    if build.is_dir():
        if build_idle:
            out += [t for t in build.rglob(".bootstrap-*") if t.is_dir() and not (t / MARKER).exists()]
    if build_idle:  # atomic writes' temporary files (baseforge.run.atomic_file) of the build and its summary
        for outputs in (build, build.parent / paths.RESULTS):
            out += [f for f in outputs.rglob(".*.tmp") if f.is_file() or f.is_symlink()] if outputs.is_dir() else []
    return out


def recover(workdir: Path = Path("."), roots: list[Path] | None = None) -> list[str]:
    """Remove what a killed run left (see the module docstring) in ``workdir`` and the scratch ``roots``
    (default :func:`scratch_roots`); one line per kind of thing, for the console."""
    others = other_snakemakes(workdir)
    locks = workdir / ".snakemake" / "locks"
    notes = []
    if others:
        if locks.is_dir() and any(locks.iterdir()):
            notes.append(f"another snakemake works in this directory (pid {', '.join(map(str, others))}); "
                         "wait for it to finish, or stop it first")
    elif locks.is_dir() and any(locks.iterdir()):
        shutil.rmtree(locks, ignore_errors=True)
        notes.append("removed Snakemake's lock (.snakemake/locks) that a killed run left")
    stale = stale_scratch(scratch_roots() if roots is None else roots, workdir / paths.BUILD, build_idle=not others)
    failed = [why for why in map(remove_when_unused, stale) if why]
    removed = len(stale) - len(failed)
    if removed:
        shown = ", ".join(os.path.relpath(p, workdir) if workdir.resolve() in p.parents else str(p) for p in stale[:3]) + (", …" if len(stale) > 3 else "")
        notes.append(f"removed {removed} scratch tree{'s' if removed > 1 else ''} a killed job left ({shown})")
    notes += [f"left scratch of a killed job: {why}" for why in failed]
    return notes


def check_writable(workdir: Path) -> None:
    """Refuse a run that could not write its outputs (a read-only mount or no permission on build/, one of
    its folders, results/ or logs/), before any job: Snakemake would fail creating an output's folder."""
    build = workdir / paths.BUILD
    dirs = [build, workdir / paths.RESULTS, workdir / "logs", workdir / ".snakemake"]
    dirs += sorted(d for d in build.iterdir() if d.is_dir()) if build.is_dir() else []
    problems = []
    for d in dirs:
        probe = d if d.exists() else d.parent
        if not os.access(probe, os.W_OK):
            read_only = os.statvfs(probe).f_flag & os.ST_RDONLY
            problems.append(f"{probe}: {'read-only file system' if read_only else 'not writable by this user'}")
    if problems:
        raise BaseforgeError("the run cannot write its outputs:\n    " + "\n    ".join(dict.fromkeys(problems)),
                             hint="remount it read-write, or fix its permissions (or run in a writable clone)")


def isolation() -> list[str]:
    """The argv prefix for a bootstrapper's commands: killed with the job (``setpriv --pdeathsig KILL``: a
    command in its own process group does not get the job's signals); as root, in its own PID namespace
    (``--kill-child``: when it goes, the kernel kills every process it started) and mount namespace with
    private propagation, so what it mounts in its tree (proc, sys, dev, a bind of /dev/shm) is dropped by
    the kernel when it ends, however it ends (a rootless mmdebstrap makes its own namespaces)."""
    prefix = dies_with_job()
    if os.geteuid() == 0 and shutil.which("unshare"):
        prefix += ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--"]
    return prefix


def dies_with_job() -> list[str]:
    """The argv prefix that kills a command when the job that started it dies (even by SIGKILL)."""
    return ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
