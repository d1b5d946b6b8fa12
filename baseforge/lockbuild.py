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
import functools
import http.server
import re
import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import aptrepo, lockfile, pkgcache
from .errors import BaseforgeError
from .lockfile import indices_dir
from .run import atomic_file, run, step

APT_CONF = "etc/apt/apt.conf.d/00baseforge-lock"


def load(cell, workdir: Path = Path(".")) -> lockfile.Lock:
    """The cell's lock file, checked against the key the plan put in the job's params."""
    lock = lockfile.read(Path(workdir) / cell.lock)
    if lock.key != cell.lock_key:
        raise BaseforgeError(f"cell {cell.id}: {cell.lock} changed after the workflow was planned",
                             hint="run snakemake again: the plan reads the lock files")
    for src in cell.sources:
        if not src.url.startswith("http://"):
            raise BaseforgeError(f"cell {cell.id}: the locked build serves apt through an HTTP proxy, and {src.url} is not http://",
                                 hint="use an http:// mirror for locked cells (apt verifies the signed InRelease either way)")
    return lock


def _key(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.netloc.lower(), re.sub("/+", "/", urllib.parse.unquote(parts.path))  # apt sends + as %2b


def _snapshot(cell, url: str, suite: lockfile.Suite) -> str | None:
    if not cell.snapshot:
        return None
    archive = urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "debian"
    return f"{cell.snapshot.rstrip('/')}/{archive}/{suite.snapshot_timestamp}"


def _get(dest: Path, sha256: str, cached: Path | None, urls: list[str]) -> str | None:
    """Put the file with ``sha256`` at ``dest`` from ``cached`` or the first URL; None, or why not."""
    if cached and cached.is_file() and aptrepo.sha256_file(cached) == sha256:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, dest)
        return None
    tried = [f"{cached} (not there, or another sha256)"] if cached else []
    for url in urls:
        why = aptrepo.fetch(url, dest, sha256)
        if why is None:
            return None
        tried.append(why)
    return "; ".join(tried) or "no source"


def gather(cell, lock: lockfile.Lock, into: Path) -> dict[tuple[str, str], Path]:
    """Every locked file in ``into``, verified; returns the proxy's routes (URL -> file). Raises, naming
    each package no source could serve, before anything is installed."""
    by_suite = {s.suite: s for s in cell.sources}
    missing = [s.name for s in lock.suites if s.name not in by_suite]
    if missing:
        raise BaseforgeError(f"cell {cell.id}: the lock names suites the config no longer has: {', '.join(missing)}",
                             hint="write the lock again: python3 -m baseforge lock --update " + cell.id)
    indices = indices_dir(cell.package_cache)
    jobs, routes = [], {}
    for suite in lock.suites:
        url, snap = by_suite[suite.name].url, _snapshot(cell, by_suite[suite.name].url, suite)
        bases = [f"{b}/dists/{suite.name}" for b in (url, snap) if b]
        dest = into / "indices" / suite.sha256
        jobs.append((suite.name, "InRelease", dest, suite.sha256, indices / suite.sha256 if indices else None,
                     [f"{b}/InRelease" for b in bases]))
        routes[_key(f"{url}/dists/{suite.name}/InRelease")] = dest
    for index in lock.indices:
        url, snap = by_suite[index.suite].url, _snapshot(cell, by_suite[index.suite].url, lock.suite(index.suite))
        by_hash = f"{index.path.rsplit('/', 1)[0]}/by-hash/SHA256/{index.sha256}"
        dest = into / "indices" / index.sha256
        urls = [f"{b}/dists/{index.suite}/{p}" for b in (url, snap) if b for p in (index.path, by_hash)]
        jobs.append((index.suite, index.path, dest, index.sha256, indices / index.sha256 if indices else None, urls))
        routes[_key(f"{url}/dists/{index.suite}/{index.path}")] = routes[_key(f"{url}/dists/{index.suite}/{by_hash}")] = dest
    cache = Path(cell.package_cache).resolve() if cell.package_cache else None
    for p in lock.packages:
        url = by_suite[p.suite].url
        snap = _snapshot(cell, url, lock.suite(p.suite))
        dest = into / "debs" / p.cache_name
        jobs.append((p.name, p.version, dest, p.sha256, cache / p.cache_name if cache else None,
                     [f"{b}/{p.filename}" for b in (url, snap) if b]))
        for src in cell.sources:
            routes[_key(f"{src.url}/{p.filename}")] = dest
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda j: _get(j[2], j[3], j[4], j[5]), jobs))
    failed = [(j, why) for j, why in zip(jobs, results) if why]
    if failed:
        raise BaseforgeError(
            f"cell {cell.id}: {len(failed)} locked file(s) are served by no source: "
            + "; ".join(f"{name} {version}: tried {why}" for (name, version, *_), why in failed[:5]),
            hint="keep the package cache (package_cache:) of the build that made the lock, or set mirrors.snapshot "
                 "to a snapshot archive (Debian's snapshot layout) that still holds these versions")
    return routes


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
def proxy(routes: dict) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Proxy))
    server.routes = routes
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def bootstrap(plugin, cell, out_tar: Path, workdir: Path, env: dict[str, str]) -> None:
    """Build locked ``cell`` with ``plugin`` (mmdebstrap, run with ``env``) into ``out_tar`` from exactly its
    locked files."""
    lock = load(cell)
    with step(f"gather the {len(lock.packages)} locked packages of {cell.id}"):
        routes = gather(cell, lock, workdir / "locked")
    with proxy(routes) as url:
        conf = f'Acquire::http::Proxy "{url}";\nAcquire::Check-Valid-Until "false";\n'
        argv = plugin.argv(dataclasses.replace(cell, package_cache=None), out_tar)
        argv[1:1] = [f"--setup-hook=mkdir -p \"$1\"/etc/apt/apt.conf.d && printf '%s' '{conf}' > \"$1\"/{APT_CONF}",
                     f'--customize-hook=rm -f "$1"/{APT_CONF}']
        run(argv, env=env)
    if cell.package_cache:
        cache = Path(cell.package_cache).resolve()
        cache.mkdir(parents=True, exist_ok=True)
        pkgcache.merge(workdir / "locked/debs", cache)
        keep = indices_dir(cell.package_cache)
        for f in sorted((workdir / "locked/indices").iterdir()):
            if not (keep / f.name).exists():
                with atomic_file(keep / f.name) as tmp:
                    shutil.copyfile(f, tmp)
