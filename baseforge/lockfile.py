"""The lock file of one cell: its format (readable, sorted text), where it lives, and its content key.

``config/locks/<image>/<release>/<variant>/<arch>.lock``, one TAB-separated record a line::

    epoch    1717243200
    suite    bookworm  2024-06-01T12:00:00Z  <sha256 of the suite's InRelease>
    index    bookworm  main/binary-amd64/Packages.xz  <sha256>  <size>
    package  base-files  12.4+deb12u6  amd64  bookworm  <sha256>  <size>  pool/main/b/base-files/…deb

``suite``: the signed InRelease the packages were resolved from (its ``Date:`` gives the snapshot
timestamp); ``index``: the package indices apt read, as the archive serves them; ``package``: every
installed package, with the suite it was taken from and the path under the mirror. Records are sorted, so
a lock written again for an unchanged cell is byte-identical. dnf cells use the same records
(:mod:`baseforge.lockrpm`: a suite is a repository, a version ``[epoch:]version-release``, no indices);
busybox and distroless cells have no index records (their builds take the .deb files by sha256, no apt).
An app's ``packages:`` are locked in ``config/locks/apps/<app>.lock`` (the same records: what its apt
install adds to its base).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import bootstrap
from .errors import BaseforgeError

LOCK_DIR = Path("config/locks")
#: the ``mirrors:`` key of the snapshot archive locked cells download from (no distro preset reads it)
SNAPSHOT_KEY = "snapshot"
REWRITE = "write it again with `python3 -m baseforge lock --update`"
HEADER = ("# baseforge lock of {cell}: the exact packages of this cell, verified by sha256.\n"
          "# Written by `python3 -m baseforge lock`; `lock --update` rewrites it. Commit it.\n")


@dataclass(frozen=True, order=True)
class Suite:
    name: str
    date: str  # ISO 8601 UTC, e.g. 2024-06-01T12:00:00Z
    sha256: str  # of the InRelease file

    @property
    def snapshot_timestamp(self) -> str:
        """The timestamp of Debian's snapshot service for this Release: ``YYYYMMDDTHHMMSSZ``."""
        return self.date.replace("-", "").replace(":", "")


@dataclass(frozen=True, order=True)
class Index:
    suite: str
    path: str  # under dists/<suite>/
    sha256: str
    size: int


@dataclass(frozen=True, order=True)
class Package:
    name: str
    version: str
    arch: str
    suite: str
    sha256: str
    size: int
    filename: str  # the archive path (Packages' Filename:)

    @property
    def cache_name(self) -> str:
        """The name apt gives the .deb in /var/cache/apt/archives (and so the package cache)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


@dataclass(frozen=True)
class Lock:
    cell: str
    epoch: int
    suites: tuple[Suite, ...] = ()
    indices: tuple[Index, ...] = ()
    packages: tuple[Package, ...] = field(default=())

    def text(self) -> str:
        lines = [f"epoch\t{self.epoch}"]
        lines += [f"suite\t{s.name}\t{s.date}\t{s.sha256}" for s in sorted(set(self.suites))]
        lines += [f"index\t{i.suite}\t{i.path}\t{i.sha256}\t{i.size}" for i in sorted(set(self.indices))]
        lines += ["\t".join(("package", p.name, p.version, p.arch, p.suite, p.sha256, str(p.size), p.filename))
                  for p in sorted(set(self.packages))]
        return HEADER.format(cell=self.cell) + "\n".join(lines) + "\n"

    @property
    def key(self) -> str:
        """What the image depends on (the epoch and the exact packages), not where they were found: a new
        Release that serves the same packages does not rebuild the cell."""
        body = [str(self.epoch)] + [f"{p.name} {p.version} {p.arch} {p.sha256}" for p in sorted(set(self.packages))]
        return hashlib.sha256("\n".join(body).encode()).hexdigest()

    def versions(self) -> dict[str, str]:
        """name -> version (``name:arch`` for a package installed for several architectures)."""
        count: dict[str, int] = {}
        for p in self.packages:
            count[p.name] = count.get(p.name, 0) + 1
        return {f"{p.name}:{p.arch}" if count[p.name] > 1 else p.name: p.version for p in self.packages}

    def suite(self, name: str) -> Suite:
        return next(s for s in self.suites if s.name == name)


def indices_dir(package_cache: str | None) -> Path | None:
    """Where the signed InRelease files and package indices of locked cells are kept (by sha256):
    ``<package_cache>.indices`` (the package cache itself holds only .deb files)."""
    return Path(f"{Path(package_cache).resolve()}.indices") if package_cache else None


def path(workdir: Path, cell_id: str) -> Path:
    """``config/locks/<image>/<release>/<variant>/<arch>.lock`` under ``workdir``."""
    return Path(workdir) / LOCK_DIR / f"{cell_id}.lock"


def parse(text: str, where: str = "lock") -> Lock:
    cell, epoch = "", None
    suites, indices, packages = [], [], []
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# baseforge lock of "):
            cell = line[len("# baseforge lock of "):].split(":", 1)[0]
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        try:
            if f[0] == "epoch" and len(f) == 2:
                epoch = int(f[1])
            elif f[0] == "suite" and len(f) == 4:
                suites.append(Suite(f[1], f[2], f[3]))
            elif f[0] == "index" and len(f) == 5:
                indices.append(Index(f[1], f[2], f[3], int(f[4])))
            elif f[0] == "package" and len(f) == 8:
                packages.append(Package(f[1], f[2], f[3], f[4], f[5], int(f[6]), f[7]))
            else:
                raise ValueError(f"unknown record {f[0]!r} or wrong field count")
        except ValueError as err:
            raise BaseforgeError(f"{where} line {n}: {err}", hint=REWRITE) from None
    if epoch is None or not packages:
        raise BaseforgeError(f"{where}: no epoch or no packages", hint=REWRITE)
    return Lock(cell, epoch, tuple(suites), tuple(indices), tuple(packages))


def read(file: Path) -> Lock:
    return parse(Path(file).read_text(), str(file))


def changes(old: Lock, new: Lock) -> list[str]:
    """``name: old -> new`` per package whose version changed, appeared or went away (sorted)."""
    a, b = old.versions(), new.versions()
    return [f"{name}: {a.get(name, '(none)')} -> {b.get(name, '(none)')}"
            for name in sorted(set(a) | set(b)) if a.get(name) != b.get(name)]


def all_locked(workdir: Path, image: str, release: str, variants: list[str], arches: list[str]) -> bool:
    """Every cell of this image and release has a lock (so the plan need not ask the mirror for a date)."""
    return all(path(workdir, f"{image}/{release}/{v}/{a}").is_file() for v in variants for a in arches)


def stale(lock: Lock, img) -> str | None:
    """Why ``lock`` cannot build the cell of ``img`` (an ImagePlan) as configured: other suites, packages it
    lacks, or another epoch than the config's number; None when it fits."""
    cell = img.cell
    if not bootstrap.get(cell.bootstrapper).locks:
        return f"{cell.bootstrapper} cells cannot be locked yet (remove the lock)"
    if img.epoch_source == "config" and lock.epoch != cell.epoch:
        return f"its epoch is {lock.epoch}, the config says {cell.epoch}"
    return _misfit(lock, cell, cell.packages, bootstrap.get(cell.bootstrapper).locks_through_apt)


def _misfit(lock: Lock, cell, packages: tuple[str, ...], proxied: bool) -> str | None:
    """Why ``lock`` does not fit ``cell``'s sources or lacks one of ``packages``; None when it fits."""
    # (apt reaches the locked files through an HTTP proxy; dnf, busybox and distroless take them from a folder)
    plain = [src.url for src in cell.sources if not src.url.startswith("http://") and proxied]
    if plain:
        return (f"a locked build serves apt through an HTTP proxy on 127.0.0.1, and {', '.join(plain)} is not http:// "
                "(apt verifies the signed InRelease either way: use an http:// mirror)")
    configured = [src.suite for src in cell.sources]
    if sorted(s.name for s in lock.suites) != sorted(configured):
        return f"it has the suites {', '.join(sorted(s.name for s in lock.suites))}, the config {', '.join(configured)}"
    names = {p.name for p in lock.packages}
    missing = [p for p in packages if re.split(r"[=:/]", p)[0] not in names]
    return f"the packages {', '.join(missing)} are not locked" if missing else None


def apply(images: dict, workdir: Path, snapshot: str | None = None) -> dict:
    """The plan's images with every locked cell pinned to its lock: the lock's epoch, its content key in the
    cell (so the bootstrap's params, raw path and cache key follow the lock), and no layering."""
    out = dict(images)
    for cell_id, img in images.items():
        file = path(workdir, cell_id)
        if not file.is_file():
            continue
        lock = read(file)
        rel = str(LOCK_DIR / f"{cell_id}.lock")
        problem = stale(lock, img)
        if problem:
            raise BaseforgeError(f"{rel} no longer fits config for {cell_id}: {problem}",
                                 hint=f"write it again: python3 -m baseforge lock --update {cell_id}")
        cell = dataclasses.replace(img.cell, epoch=lock.epoch, lock=rel, lock_key=lock.key, snapshot=snapshot)
        out[cell_id] = dataclasses.replace(img, cell=cell, meta=dataclasses.replace(img.meta, created=lock.epoch),
                                           raw_key=f"{img.raw_key}-lock{lock.key[:12]}", parent_raw=None,
                                           epoch_source=f"lock {rel}")
    return out


def apply_apps(apps: dict, images: dict, workdir: Path, snapshot: str | None = None) -> dict:
    """The plan's apps with every locked app (``config/locks/apps/<app>.lock``: the packages its apt install
    adds to its base) pinned to its lock: the lock's content key in the app's params, so a changed lock
    rebuilds the app and the apps on it."""
    out = dict(apps)
    for name, app in apps.items():
        file = path(workdir, f"apps/{name}")
        if not file.is_file():
            continue
        rel = str(LOCK_DIR / f"apps/{name}.lock")
        lock = read(file)
        problem = app_stale(lock, app, images)
        if problem:
            raise BaseforgeError(f"{rel} no longer fits config for apps.{name}: {problem}",
                                 hint=f"write it again (python3 -m baseforge lock --update apps/{name}), or remove it")
        out[name] = dataclasses.replace(app, lock=rel, lock_key=lock.key, snapshot=snapshot)
    return out


def app_stale(lock: Lock, app, images: dict) -> str | None:
    """Why ``lock`` cannot build the packages of ``app`` (an AppPlan); None when it fits."""
    if not app.packages:
        return "the app installs no packages"
    cell = images[app.root].cell
    if not bootstrap.get(cell.bootstrapper).locks_through_apt:
        return f"its base chain starts at a {cell.bootstrapper} cell, whose apt a locked install cannot serve"
    return _misfit(lock, cell, app.packages, True)
