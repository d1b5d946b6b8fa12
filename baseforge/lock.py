"""`baseforge lock`: resolve cells against their mirrors and write, check or update their lock files.

A cell is resolved the way it is built: its own bootstrapper runs (mmdebstrap, with the package cache),
and a customize hook copies out dpkg's status and the package lists apt fetched and verified against the
cell's keyring. Every installed (name, version, architecture) is looked up in those signed indices for
its sha256 and archive path. The InRelease files and the indices are kept in the index cache beside the
package cache (keyed by sha256), so a locked build needs no mirror when the caches are warm. dnf cells
are resolved by :mod:`baseforge.lockrpm`, in the same format. Cells whose bootstrapper picks Debian
packages itself (busybox, distroless) are resolved from the signed indices alone (:func:`from_index`).
An app's ``packages:`` are resolved on its root cell: what its ``apt-get install`` adds is its lock.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shlex
from pathlib import Path

from . import aptrepo, bootstrap, lockfile, lockrpm, pkgcache, scratch
from .bootstrap import distroless
from .bootstrap.mmdebstrap import environment
from .errors import BaseforgeError
from .lockfile import Index, Lock, Package, Suite, indices_dir
from .run import run, write_atomic

log = logging.getLogger("baseforge")


def lockable() -> list[str]:
    """The bootstrappers that build locked cells."""
    return [name for name in bootstrap.available() if bootstrap.get(name).locks]


def resolve(img, workdir: Path, install: tuple[str, ...] = (), seen: dict | None = None) -> Lock:
    """Bootstrap the cell of ``img`` (an unlocked ImagePlan) and return its lock. ``install`` (an app's
    packages): then ``apt-get install`` them in the chroot, as an app's build does, and lock only the
    packages that adds (and the named ones, even when the base has them already). ``seen``: for
    :func:`from_index`."""
    cell = img.cell
    if not bootstrap.get(cell.bootstrapper).locks:
        raise BaseforgeError(f"cell {cell.id}: {cell.bootstrapper} cells cannot be locked yet",
                             hint=f"locks cover the {', '.join(lockable())} bootstrappers")
    if cell.bootstrapper == "dnf":
        return lockrpm.resolve(img, workdir)
    if bootstrap.get(cell.bootstrapper).locks_from_index:
        return from_index(img, workdir, seen)
    with bootstrap.isolated(Path(workdir) / ".baseforge", ".lock-") as tmp:  # (as a bootstrap: a killed lock leaves nothing for long)
        out, incoming = Path(tmp) / "out", Path(tmp) / "debs"
        out.mkdir()
        incoming.mkdir()
        cache = str(Path(cell.package_cache).resolve()) if cell.package_cache else None
        if cache:
            Path(cache).mkdir(parents=True, exist_ok=True)
        cell = dataclasses.replace(cell, package_cache=cache)
        plugin = bootstrap.get(cell.bootstrapper)
        argv = plugin.argv(cell, Path(tmp) / "rootfs.tar", incoming if cache else None)
        argv[1:1] = [f'--customize-hook=cp "$1"/var/lib/dpkg/status {shlex.quote(str(out))}/base-status',
                     *([f'--customize-hook=chroot "$1" apt-get install --yes -- {shlex.join(install)}'] if install else []),
                     f'--customize-hook=cp -a "$1"/var/lib/dpkg/status "$1"/var/lib/apt/lists {shlex.quote(str(out))}/']
        run(argv, env=environment(cell))
        if cache:
            pkgcache.merge(incoming, Path(cache))
        # epoch: release (the plan says "Date of <Release URL>"): the lock's epoch is its first suite's Date
        epoch = None if img.epoch_source.startswith("Date of") else cell.epoch
        lock = from_tree(cell, out / "status", out / "lists", epoch, indices_dir(cache))
        if not install:
            return lock
        base, named = set(aptrepo.installed((out / "base-status").read_text())), {re.split(r"[=:/]", p)[0] for p in install}
        return dataclasses.replace(lock, packages=tuple(p for p in lock.packages
                                                        if (p.name, p.version, p.arch) not in base or p.name in named))


def from_index(img, workdir: Path, seen: dict | None = None) -> Lock:
    """The lock of a cell whose bootstrapper picks its packages from the signed indices (busybox,
    distroless): apt-get update in a scratch apt root verifies the suites' signatures, the plugin's
    :meth:`~baseforge.bootstrap.Bootstrapper.choose` names the packages. No index records: a locked build
    takes the .deb files by their locked sha256 and needs no index. ``seen``: the suites and Packages texts
    of earlier cells of this run, by (sources, architecture, keyrings), so they are fetched once."""
    cell, plugin = img.cell, bootstrap.get(img.cell.bootstrapper)
    key = (cell.sources, cell.arch, cell.keyrings)
    if seen is None or key not in seen:
        with scratch.owned_dir(Path(workdir) / ".baseforge", ".lock-") as tmp:  # a killed lock's goes next run
            lists = distroless.update(cell, tmp)
            read = [_suite(cell, src, lists, indices_dir(cell.package_cache), with_indices=False) for src in cell.sources]
        found = [(suite, texts) for suite, _, texts in read]
        seen = {} if seen is None else seen
        seen[key] = found
    found = seen[key]
    chosen = plugin.choose(cell, [t for _, texts in found for t in texts])

    def suite(p) -> str:  # the first source whose indices have it (apt's order)
        return next(s.name for s, texts in found if any(f"SHA256: {p['SHA256']}" in t for t in texts))

    packages = [Package(p["Package"], p["Version"], p["Architecture"], suite(p), p["SHA256"], int(p["Size"]), p["Filename"])
                for p in chosen.values()]
    epoch = aptrepo.iso_epoch(found[0][0].date) if img.epoch_source.startswith("Date of") else cell.epoch
    return Lock(cell.id, epoch, tuple(s for s, _ in found), (), tuple(packages))


def _suite(cell, src, lists: Path, keep: Path | None, with_indices: bool = True) -> tuple[Suite, list[Index], list[str]]:
    """The suite's InRelease as apt verified it, the indices apt read (as the mirror serves them, fetched
    and checked against the InRelease; none with ``with_indices=False``), and the text of its Packages indices."""
    found = [p for p in lists.iterdir() if p.name.endswith(f"_dists_{src.suite}_InRelease")]
    if len(found) != 1:
        raise BaseforgeError(f"cell {cell.id}: apt kept {len(found)} signed InRelease files for suite {src.suite}",
                             hint="a locked suite needs exactly one source with an InRelease file")
    inrelease = found[0]
    text = inrelease.read_text()
    suite = Suite(src.suite, aptrepo.release_date(text), aptrepo.sha256_file(inrelease))
    if keep:
        _keep(inrelease, keep / suite.sha256)
    files = aptrepo.release_files(text)
    plain = {sha: path for path, (sha, _) in files.items()}
    prefix = inrelease.name[: -len("InRelease")]
    indices, packages = [], []
    for listed in sorted(lists.iterdir()):
        if not listed.is_file() or not listed.name.startswith(prefix) or listed == inrelease:
            continue
        path = plain.get(aptrepo.sha256_file(listed))
        if path is None:
            raise BaseforgeError(f"cell {cell.id}: {listed.name} is not listed in the InRelease of {src.suite}")
        if with_indices:
            indices.append(_served(cell, src, path, files, keep, lists.parent))
        if path.endswith("Packages"):
            packages.append(listed.read_text())
    return suite, indices, packages


def _served(cell, src, path: str, files: dict, keep: Path | None, scratch: Path) -> Index:
    """The form of index ``path`` the mirror serves (xz, gz, plain), fetched and verified."""
    errors = []
    for name in (f"{path}.xz", f"{path}.gz", path):
        if name not in files:
            continue
        sha, size = files[name]
        dest = (keep or scratch) / sha
        if dest.is_file() and aptrepo.sha256_file(dest) == sha:
            return Index(src.suite, name, sha, size)
        # the path, else by hash (Acquire-By-Hash: the mirror may have moved on since apt read it)
        dists = f"{src.url}/dists/{src.suite}"
        for url in (f"{dists}/{name}", f"{dists}/{name.rsplit('/', 1)[0]}/by-hash/SHA256/{sha}"):
            why = aptrepo.fetch(url, dest, sha)
            if why is None:
                return Index(src.suite, name, sha, size)
            errors.append(why)
    raise BaseforgeError(f"cell {cell.id}: cannot fetch the index {path} of {src.suite}: {'; '.join(errors)}",
                         hint="the mirror moved while locking: run the lock again")


def _keep(src: Path, dest: Path) -> None:
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(dest, src.read_bytes())


def from_tree(cell, status: Path, lists: Path, epoch: int | None, keep: Path | None) -> Lock:
    """A lock from dpkg's status and apt's lists of a bootstrap of ``cell``; ``epoch=None``: the Date of
    the first suite's Release."""
    suites, indices, table = [], [], {}
    for src in cell.sources:
        suite, found, texts = _suite(cell, src, lists, keep)
        suites.append(suite)
        indices += found
        for text in texts:
            for s in aptrepo.stanzas(text):
                table.setdefault((s["Package"], s["Version"], s["Architecture"]), (src.suite, s))
    packages = []
    for name, version, arch in aptrepo.installed(status.read_text()):
        if (name, version, arch) not in table:
            raise BaseforgeError(f"cell {cell.id}: installed package {name} {version} ({arch}) is in none of the "
                                 "signed indices",
                                 hint="every package of a locked cell must come from its configured sources")
        suite, s = table[(name, version, arch)]
        packages.append(Package(name, version, arch, suite, s["SHA256"], int(s["Size"]), s["Filename"]))
    epoch = aptrepo.iso_epoch(suites[0].date) if epoch is None else epoch
    return Lock(cell.id, epoch, tuple(suites), tuple(indices), tuple(packages))


def command(config_path: Path, cells: list[str], workdir: Path, mode: str = "write") -> int:
    """``mode``: ``write`` (cells and apps without a lock get one), ``update`` (rewrite every chosen lock) or
    ``check`` (write nothing; exit 1 and say what changed when a lock is missing or the mirror moved).
    ``cells``: cell ids and ``apps/<app>`` (none: all)."""
    from . import config

    plan = config.plan(config.load(config_path), workdir, locks=False)
    todo = _lockables(plan)
    unknown = sorted(set(cells) - set(todo))
    if unknown:
        raise BaseforgeError(f"no such cell or app: {', '.join(unknown)}", hint=f"cells and apps: {', '.join(todo)}")
    resolved: dict[tuple, Lock] = {}
    seen: dict = {}  # the indices read for busybox and distroless cells, once per set of sources
    moved = False
    for lock_id, (img, install, why) in todo.items():
        if cells and lock_id not in cells:
            continue
        if why:
            print(f"{lock_id}: not locked ({why})")
            continue
        file = lockfile.path(workdir, lock_id)
        if mode == "write" and file.is_file():
            print(f"{lock_id}: kept {file.relative_to(workdir)} (lock --update rewrites it)")
            continue
        key = (img.cell.image, img.cell.release, img.cell.arch, img.raw_key, img.cell.packages, img.epoch_source,
               img.cell.epoch, install)
        if key not in resolved:
            resolved[key] = resolve(img, workdir, install, seen)
        new = dataclasses.replace(resolved[key], cell=lock_id)
        if mode == "check":
            moved |= _report(lock_id, file, new)
        else:
            write_atomic(file, new.text())
            print(f"{lock_id}: wrote {file.relative_to(workdir)} ({len(new.packages)} packages)")
    return 1 if moved else 0


def _lockables(plan) -> dict[str, tuple]:
    """Lock id (a cell's, ``apps/<app>``) -> (the ImagePlan to bootstrap, the packages to install on it, why it
    cannot be locked or ""). An app with packages is resolved on its root cell with the packages of the apps
    between them: what its own install adds is its lock."""
    out = {cell_id: (img, (), "" if bootstrap.get(img.cell.bootstrapper).locks
                     else f"{img.cell.bootstrapper} cells cannot be locked yet") for cell_id, img in plan.images.items()}
    for name, app in plan.apps.items():
        if not app.packages:
            continue
        root, below, base = plan.images[app.root], (), app.base
        while base.startswith("apps/"):  # apps on apps: their packages are in the tree this app installs on
            below, base = plan.apps[base[len("apps/"):]].packages + below, plan.apps[base[len("apps/"):]].base
        img = dataclasses.replace(root, cell=dataclasses.replace(root.cell, packages=root.cell.packages + below))
        why = "" if bootstrap.get(root.cell.bootstrapper).locks_through_apt else \
            f"its base chain starts at a {root.cell.bootstrapper} cell, whose apt a locked install cannot serve"
        out[f"apps/{name}"] = (img, tuple(app.packages), why)
    return out


def _report(cell_id: str, file: Path, new: Lock) -> bool:
    if not file.is_file():
        print(f"{cell_id}: no lock ({file.name} would be written by `lock`)")
        return True
    old = lockfile.read(file)
    if old.text() == new.text():
        print(f"{cell_id}: up to date")
        return False
    print(f"{cell_id}: the mirror has moved")
    for line in lockfile.changes(old, new):
        print(f"  {line}")
    for a in old.suites:
        b = next((s for s in new.suites if s.name == a.name), None)
        if b != a:
            print(f"  suite {a.name}: {a.date} -> {b.date if b else '(none)'}")
    return True
