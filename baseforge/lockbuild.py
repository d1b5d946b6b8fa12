"""Building a locked cell: gather every locked file, verified by sha256, then let apt install from them.

Each file the lock names (the suites' signed InRelease, the package indices, every .deb) comes from the
first source that has it with the locked sha256: the package cache (indices: the index cache beside it),
then the configured mirror, then ``mirrors.snapshot`` (Debian's snapshot layout,
``<snapshot>/<archive>/<YYYYMMDDTHHMMSSZ>/``, the archive being the last path segment of the mirror's URL
and the timestamp the suite's Release date). A file no source serves fails the job before the
bootstrapper runs. mmdebstrap then runs with the cell's own sources and keyring, and apt reaches them
through a proxy on 127.0.0.1 that answers only with the gathered files: apt verifies the InRelease
signature as always (``Check-Valid-Until`` is off: a lock's Release may be older than its Valid-Until),
the image names the configured mirror, and nothing but the locked packages can be installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import aptrepo, lockfile
from .errors import BaseforgeError
from .lockfile import indices_dir
from .run import run, step

log = logging.getLogger("baseforge")
APT_CONF = "etc/apt/apt.conf.d/00baseforge-lock"


def load(cell, workdir: Path = Path(".")) -> lockfile.Lock:
    """The cell's lock file, checked against the key the plan put in the job's params."""
    lock = lockfile.read(Path(workdir) / cell.lock)
    if lock.key != cell.lock_key:
        raise BaseforgeError(f"cell {cell.id}: {cell.lock} changed after the workflow was planned",
                             hint="run snakemake again: the plan reads the lock files")
    return lock


def _key(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.netloc.lower(), re.sub("/+", "/", urllib.parse.unquote(parts.path))  # apt sends + as %2b


#: a snapshot service stamps an import when it happens, after the Date of the Release it imports: try the
#: Release date itself (a snapshot taken at that moment), then up to a day later; the sha256 picks the right one
SNAPSHOT_DELAYS = (0, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600)


def _snapshots(cell, url: str, suite: lockfile.Suite) -> list[str]:
    """``<mirrors.snapshot>/<archive>/<timestamp>`` for each timestamp to try, the archive being the last
    path segment of the mirror's URL (``debian``, ``debian-security``)."""
    if not cell.snapshot:
        return []
    archive = urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "debian"
    when = aptrepo.iso_epoch(suite.date)
    stamps = [time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when + d)) for d in SNAPSHOT_DELAYS]
    return [f"{cell.snapshot.rstrip('/')}/{archive}/{t}" for t in stamps]


@dataclasses.dataclass(frozen=True)
class Wanted:
    """One locked file: what it is, where it goes, its sha256, and where to look (cache first)."""

    label: str
    package: bool
    dest: Path
    sha256: str
    cached: Path | None
    urls: tuple[str, ...]

    def get(self) -> list[str]:
        """Put the file at ``dest``; returns [] or, per source tried, why it did not serve it."""
        if self.cached and self.cached.is_file() and aptrepo.sha256_file(self.cached) == self.sha256:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.cached, self.dest)
            return []
        tried = [f"{self.cached}: not there (or another sha256)"] if self.cached else ["no package cache"]
        for url in self.urls:
            why = aptrepo.fetch(url, self.dest, self.sha256)
            if why is None:
                return []
            tried.append(why)
        return tried


def _check_suites(cell, lock: lockfile.Lock) -> None:
    missing = [s.name for s in lock.suites if s.name not in {s.suite for s in cell.sources}]
    if missing:
        raise BaseforgeError(f"cell {cell.id}: the lock names suites the config no longer has: {', '.join(missing)}",
                             hint="write the lock again: python3 -m baseforge lock --update " + cell.id)


def wanted(cell, lock: lockfile.Lock, into: Path) -> tuple[list[Wanted], dict[tuple[str, str], Path]]:
    """Every file the lock names, and the proxy's routes (URL apt asks for -> file)."""
    by_suite = {s.suite: s.url for s in cell.sources}
    _check_suites(cell, lock)
    indices, out, routes = indices_dir(cell.package_cache), [], {}
    for suite in lock.suites:
        bases = [by_suite[suite.name], *_snapshots(cell, by_suite[suite.name], suite)]
        dest = into / "indices" / suite.sha256
        cached = indices / suite.sha256 if indices else None
        urls = tuple(f"{b}/dists/{suite.name}/InRelease" for b in bases)
        out.append(Wanted(f"{suite.name} InRelease", False, dest, suite.sha256, cached, urls))
        routes[_key(f"{bases[0]}/dists/{suite.name}/InRelease")] = dest
    for index in lock.indices:
        bases = [by_suite[index.suite], *_snapshots(cell, by_suite[index.suite], lock.suite(index.suite))]
        by_hash = f"{index.path.rsplit('/', 1)[0]}/by-hash/SHA256/{index.sha256}"
        dest = into / "indices" / index.sha256
        cached = indices / index.sha256 if indices else None
        urls = tuple(f"{b}/dists/{index.suite}/{p}" for b in bases for p in (index.path, by_hash))
        out.append(Wanted(f"{index.suite} {index.path}", False, dest, index.sha256, cached, urls))
        for p in (index.path, by_hash):
            routes[_key(f"{bases[0]}/dists/{index.suite}/{p}")] = dest
    for f, p in zip(package_files(cell, lock, into / "debs"), lock.packages):
        out.append(f)
        for url in set(by_suite.values()):
            routes[_key(f"{url}/{p.filename}")] = f.dest
    return out, routes


def package_files(cell, lock: lockfile.Lock, into: Path) -> list[Wanted]:
    """The lock's .deb files (in its order), each to ``into/<name as apt caches it>``, from the package cache,
    the mirror of its suite, or the snapshot archive."""
    by_suite = {s.suite: s.url for s in cell.sources}
    cache = Path(cell.package_cache).resolve() if cell.package_cache else None
    out = []
    for p in lock.packages:
        bases = [by_suite[p.suite], *_snapshots(cell, by_suite[p.suite], lock.suite(p.suite))]
        cached = cache / p.cache_name if cache else None
        urls = tuple(f"{b}/{p.filename}" for b in bases)
        out.append(Wanted(f"{p.name} {p.version} ({p.arch})", True, into / p.cache_name, p.sha256, cached, urls))
    return out


def debs(cell, into: Path) -> dict[str, Path]:
    """Every locked .deb of ``cell`` in ``into``, verified by sha256 and kept in the package cache; name -> file,
    by name. For bootstrappers that unpack the packages themselves (busybox, distroless): no apt, no index."""
    lock = load(cell)
    _check_suites(cell, lock)
    with step(f"gather the {len(lock.packages)} locked packages of {cell.id}"):
        files = package_files(cell, lock, into)
        fetch_all(cell, files)
    keep(files)
    return {p.name: f.dest for p, f in sorted(zip(lock.packages, files), key=lambda pf: pf[0].name)}


def gather(cell, lock: lockfile.Lock, into: Path, who: str = "") -> tuple[list[Wanted], dict[tuple[str, str], Path]]:
    """Every locked file in ``into``, verified; returns them and the proxy's routes. Raises, naming the packages no
    source serves and what was tried, before anything is installed."""
    files, routes = wanted(cell, lock, into)
    fetch_all(cell, files, who=who)
    return files, routes


def fetch_all(cell, files: list[Wanted], snapshots: bool = True, who: str = "") -> None:
    """Get every file (8 at a time); raise one paragraph naming what no source served, and what was tried, for
    ``who`` (default: the cell)."""
    with ThreadPoolExecutor(8) as pool:
        failed = [(f, tried) for f, tried in zip(files, pool.map(Wanted.get, files)) if tried]
    if not failed:
        return
    packages = [f.label for f, _ in failed if f.package]
    others = [f.label for f, _ in failed if not f.package]
    what = [f"{len(packages)} locked package(s): {', '.join(packages)}"] if packages else []
    what += [f"{len(others)} signed index file(s): {', '.join(others)}"] if others else []
    first, tried = next(((f, t) for f, t in failed if f.package), failed[0])
    tried += [] if cell.snapshot or not snapshots else ["no snapshot archive (mirrors.snapshot is not set)"]
    hint = "keep the package cache (package_cache:) of the build that made the lock"
    hint += (", or set mirrors.snapshot to a snapshot archive (Debian's snapshot layout) that still holds these "
             "versions") if snapshots else ", or point the mirror at one that still serves these versions"
    raise BaseforgeError(f"{who or 'cell ' + cell.id}: no source serves {'; and '.join(what)}. For {first.label} the sources "
                         f"tried were: {'; '.join(tried)}", hint=hint)


class _Proxy(http.server.BaseHTTPRequestHandler):
    """apt's HTTP proxy: absolute URLs answered from the gathered files, everything else 404."""

    def _send(self, body: bool) -> None:
        path = self.server.routes.get(_key(self.path))
        if path is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()
        if body:
            with open(path, "rb") as f:
                shutil.copyfileobj(f, self.wfile)

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        self._send(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(False)

    def log_message(self, fmt: str, *args) -> None:
        pass


@contextlib.contextmanager
def serving(handler, port: int = 0, **attrs) -> Iterator[str]:
    """An HTTP server of ``handler`` on 127.0.0.1:``port`` (0: any free port) in a thread, with ``attrs`` set
    on it; yields its base URL (no trailing slash)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    for name, value in attrs.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def proxy(routes: dict) -> Iterator[str]:
    """The proxy that serves only ``routes`` (the locked files)."""
    with serving(_Proxy, routes=routes) as url:
        yield url + "/"


def bootstrap(plugin, cell, out_tar: Path, workdir: Path, env: dict[str, str]) -> None:
    """Build locked ``cell`` with ``plugin`` (mmdebstrap, run with ``env``) into ``out_tar`` from exactly its
    locked files."""
    lock = load(cell)
    with step(f"gather the {len(lock.packages)} locked packages of {cell.id}"):
        files, routes = gather(cell, lock, workdir / "locked")
    with proxy(routes) as url:
        run(through(plugin.argv(dataclasses.replace(cell, package_cache=None), out_tar), url, cell), env=env)
    keep(files)


def through(argv: list[str], url: str, cell) -> list[str]:
    """mmdebstrap's ``argv`` with apt pointed at the proxy at ``url`` (and ``Check-Valid-Until`` off) from
    the setup until the last customize hook, which removes that setting again (after any apt-get install
    in the chroot); its last arguments are the suite, the output and one source line per source."""
    conf = f'Acquire::http::Proxy "{url}";\nAcquire::Check-Valid-Until "false";\n'
    tail = len(argv) - 2 - len(cell.sources)
    return [argv[0], f"--setup-hook=mkdir -p \"$1\"/etc/apt/apt.conf.d && printf '%s' '{conf}' > \"$1\"/{APT_CONF}",
            *argv[1:tail], f'--customize-hook=rm -f "$1"/{APT_CONF}', *argv[tail:]]


def keep(files: list[Wanted]) -> int:
    """Put every gathered file in its cache (package cache, index cache) unless the cache already holds it
    with the locked sha256; a cached file with another sha256 (damaged, tampered) is replaced. Each file
    arrives by an atomic rename, so parallel jobs and readers only ever see whole files."""
    added = 0
    for f in files:
        if f.cached is None or (f.cached.is_file() and aptrepo.sha256_file(f.cached) == f.sha256):
            continue
        # half-copied files wait beside the cache, not in it: unlocked bootstraps copy the whole folder in
        staging = f.cached.parent.parent / f".{f.cached.parent.name}.incoming"
        staging.mkdir(parents=True, exist_ok=True)
        f.cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=staging, prefix=f.cached.name, suffix=".part")
        os.close(fd)
        try:
            shutil.copyfile(f.dest, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, f.cached)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        added += 1
    log.info("caches: %d locked files added or repaired", added)
    return added
