"""`baseforge lock`: resolve cells against their mirrors and write, check or update their lock files.

A cell is resolved the way it is built: its own bootstrapper runs (mmdebstrap, with the package cache),
and a customize hook copies out dpkg's status and the package lists apt fetched and verified against the
cell's keyring. Every installed (name, version, architecture) is looked up in those signed indices for
its sha256 and archive path. The InRelease files and the indices are kept in the index cache beside the
package cache (keyed by sha256), so a locked build needs no mirror when the caches are warm. dnf cells
are resolved by :mod:`baseforge.lockrpm`, in the same format.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
from pathlib import Path

from . import aptrepo, bootstrap, lockfile, lockrpm, pkgcache
from .bootstrap.mmdebstrap import environment
from .errors import BaseforgeError
from .lockfile import Index, Lock, Package, Suite, indices_dir
from .run import run, write_atomic

log = logging.getLogger("baseforge")


def lockable() -> list[str]:
    """The bootstrappers that build locked cells."""
    return [name for name in bootstrap.available() if bootstrap.get(name).locks]


def resolve(img, workdir: Path) -> Lock:
    """Bootstrap the cell of ``img`` (an unlocked ImagePlan) and return its lock."""
    cell = img.cell
    if not bootstrap.get(cell.bootstrapper).locks:
        raise BaseforgeError(f"cell {cell.id}: {cell.bootstrapper} cells cannot be locked yet",
                             hint=f"locks cover the {', '.join(lockable())} bootstrappers")
    if cell.bootstrapper == "dnf":
        return lockrpm.resolve(img, workdir)
    scratch = Path(workdir) / ".baseforge"
    scratch.mkdir(parents=True, exist_ok=True)
    with bootstrap.isolated(scratch, ".lock-") as tmp:  # (as a bootstrap: a killed lock leaves nothing for long)
        out, incoming = Path(tmp) / "out", Path(tmp) / "debs"
        out.mkdir()
        incoming.mkdir()
        cache = str(Path(cell.package_cache).resolve()) if cell.package_cache else None
        if cache:
            Path(cache).mkdir(parents=True, exist_ok=True)
        cell = dataclasses.replace(cell, package_cache=cache)
        plugin = bootstrap.get(cell.bootstrapper)
        argv = plugin.argv(cell, Path(tmp) / "rootfs.tar", incoming if cache else None)
        argv[1:1] = [f'--customize-hook=cp -a "$1"/var/lib/dpkg/status "$1"/var/lib/apt/lists {shlex.quote(str(out))}/']
        run(argv, env=environment(cell))
        if cache:
            pkgcache.merge(incoming, Path(cache))
        # epoch: release (the plan says "Date of <Release URL>"): the lock's epoch is its first suite's Date
        epoch = None if img.epoch_source.startswith("Date of") else cell.epoch
        return from_tree(cell, out / "status", out / "lists", epoch, indices_dir(cache))


def _suite(cell, src, lists: Path, keep: Path | None) -> tuple[Suite, list[Index], list[str]]:
    """The suite's InRelease as apt verified it, the indices apt read (as the mirror serves them, fetched
    and checked against the InRelease), and the text of its Packages indices."""
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
    """``mode``: ``write`` (cells without a lock get one), ``update`` (rewrite every chosen lock) or
    ``check`` (write nothing; exit 1 and say what changed when a lock is missing or the mirror moved)."""
    from . import config

    plan = config.plan(config.load(config_path), workdir, locks=False)
    unknown = sorted(set(cells) - set(plan.images))
    if unknown:
        raise BaseforgeError(f"no such cell: {', '.join(unknown)}", hint=f"cells: {', '.join(plan.images)}")
    resolved: dict[tuple, Lock] = {}
    moved = False
    for cell_id, img in plan.images.items():
        if cells and cell_id not in cells:
            continue
        if not bootstrap.get(img.cell.bootstrapper).locks:
            print(f"{cell_id}: not locked ({img.cell.bootstrapper} cells cannot be locked yet)")
            continue
        file = lockfile.path(workdir, cell_id)
        if mode == "write" and file.is_file():
            print(f"{cell_id}: kept {file.relative_to(workdir)} (lock --update rewrites it)")
            continue
        key = (img.cell.image, img.cell.release, img.cell.arch, img.raw_key, img.epoch_source, img.cell.epoch)
        if key not in resolved:
            resolved[key] = resolve(img, workdir)
        new = dataclasses.replace(resolved[key], cell=cell_id)
        if mode == "check":
            moved |= _report(cell_id, file, new)
        else:
            write_atomic(file, new.text())
            print(f"{cell_id}: wrote {file.relative_to(workdir)} ({len(new.packages)} packages)")
    return 1 if moved else 0


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
