#!/usr/bin/env python3
"""How much does baseforge rebuild, and how fast is it against the plain pipeline and debuerreotype?

    python3 benchmarks/bench.py [--keep] [--dir DIR] [--repeat N] [--only-cell]

Runs, in a scratch directory (never this checkout's build/), on the default matrix (config/config.yaml)
plus an extra Debian variant with ``packages: [curl]`` (its own bootstrap):

  1. cold build: empty package cache, empty between-workflow cache (``--cache``);
  2. no-op rerun of the same command;
  3. a fresh clone with the warm between-workflow cache: how long, and how many bootstraps really ran;
  4. the curl variant's bootstrap alone: as the second variant of its release (the default bootstrap
     built and the package cache warm) against cold (nothing built, empty package cache); and, from
     scratch (``layer_variants: false``), with a warm package cache against a cold one;
  5. one cold Debian cell (bootstrap -> rootfs.tar -> image in the engine), side by side with
     the floor ``mmdebstrap … - | docker import -`` (also with TMPDIR on a tmpfs, as ours runs) and
     Debian's recipe through debuerreotype (init, minimizing-config, fixup, tar, then docker import),
     for the same suite and mirror; ``--repeat N`` runs them N times, interleaved, and takes medians.

  6. foreign architectures (``--only-foreign``): one cold ``debian:bookworm`` cell for amd64, for arm64
     (chrootless, the default) and for arm64 under qemu (``options: {foreign: qemu}``), each with its own
     empty package cache;
  7. distroless (``--only-distroless``): the cold static and base variants of the default matrix, their
     size in the engine and compressed, next to Google's distroless (static-debian12 "around 2 MiB", its README).

Needs root (mmdebstrap --mode=root, debuerreotype), a Docker Engine (DOCKER_HOST) and the Debian
mirror of the host's apt sources (baseforge.mirror). Prints one table; it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from baseforge import config as bfconfig
from baseforge import engine
from baseforge.mirror import default_mirror

WORKFLOW = ("Snakefile", "rules", "scripts", "config", "apps", "profiles")
NAMESPACE = "bfbench"
CELL = "debian/bookworm/default/amd64"
SUITE = "bookworm"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def timed(argv: list[str], cwd: Path, env: dict | None = None, shell: bool = False, logfile: Path | None = None) -> float:
    """Run a command to completion; its seconds of wall time. Output goes to ``logfile``."""
    logfile = logfile or cwd / "bench.log"
    with open(logfile, "ab") as out:
        out.write(f"\n$ {argv if shell else ' '.join(map(str, argv))}\n".encode())
        out.flush()
        start = time.monotonic()
        proc = subprocess.run(argv, check=False, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                              shell=shell, executable="/bin/bash" if shell else None)
        took = time.monotonic() - start
    if proc.returncode != 0:
        tail = logfile.read_text(errors="replace")[-3000:]
        raise SystemExit(f"bench: {argv} failed ({proc.returncode}); see {logfile}:\n{tail}")
    return took


SOURCE = ROOT  # snapshot() points it at a copy taken when the benchmark starts


def snapshot(dest: Path) -> None:
    """Benchmark one version of the code: copy the workflow and the baseforge package once, and run
    every clone from that copy (PYTHONPATH), so edits to this checkout during a run change nothing."""
    global SOURCE
    dest.mkdir(parents=True)
    for name in (*WORKFLOW, "baseforge"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    SOURCE = dest
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(dest), os.environ.get("PYTHONPATH")) if p)


def clone(dest: Path, cfg: dict, namespace: str) -> Path:
    """A copy of the workflow, as a user's clone would have it, with ``cfg`` as its config."""
    dest.mkdir(parents=True)
    for name in WORKFLOW:
        src = SOURCE / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    (dest / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    dockerfile = dest / "apps/greeter/Dockerfile"
    if dockerfile.exists():  # the greeter builds FROM this clone's namespace
        dockerfile.write_text(dockerfile.read_text().replace("baseforge/debian", f"{namespace}/debian"))
    return dest


#: labels every image of one benchmark run (and of each cold cell its own): the engine cannot already hold
#: an image ID this run makes (the same config built by the tests or by hand gives the same IDs), so "cold"
#: really loads; labels change only the image config, not what is bootstrapped, packed or cached
RUN = time.strftime("%Y%m%dT%H%M%S")


def matrix(pkgcache: Path, namespace: str = NAMESPACE, apps: bool = True, run: str = RUN) -> dict:
    """config/config.yaml plus a curl variant of the Debian image (which needs its own bootstrap)."""
    cfg = yaml.safe_load((SOURCE / "config/config.yaml").read_text())
    cfg["namespace"] = namespace
    cfg["package_cache"] = str(pkgcache)
    cfg["images"]["debian"]["variants"] = list(cfg["images"]["debian"]["variants"]) + [{"name": "curl", "packages": ["curl"]}]
    for spec in [*cfg["images"].values(), *cfg.get("apps", {}).values()]:
        spec["labels"] = {**spec.get("labels", {}), "org.baseforge.bench": run}
    if not apps:
        cfg.pop("apps", None)
    return cfg


def snakemake(work: Path, *args: str, env: dict | None = None) -> float:
    return timed(["snakemake", "--cores", "4", *args], work, env=env)


def bootstraps_run(work: Path) -> int:
    """Bootstrap jobs that really ran: a job fetched from the between-workflow cache writes no log."""
    return len([p for p in work.glob("logs/bootstrap/**/*.log") if p.stat().st_size])  # an empty one may be created


def downloaded(work: Path) -> int:
    """.deb files the bootstraps of ``work`` downloaded: what they added to the package cache (apt fetches
    packages silently; its "Fetched" lines count only the indices, ~10 MB per bootstrap either way)."""
    return sum(int(n) for f in work.glob("logs/bootstrap/**/*.log")
               for n in re.findall(r"package cache .*: (\d+) new \.deb files", f.read_text(errors="replace")))


def loads_skipped(work: Path) -> int:
    """Load jobs that found their image already in the engine."""
    return sum("engine already holds" in f.read_text(errors="replace") for f in work.glob("logs/load/**/*.log"))


def remove_images(prefixes: tuple[str, ...]) -> None:
    """Drop our earlier benchmark images from the engine, so "cold" really loads."""
    out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True, check=True)
    tags = [t for t in out.stdout.split() if t.startswith(prefixes)]
    if tags:
        subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True, check=False)
    subprocess.run(["docker", "image", "prune", "-f"], capture_output=True, check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, help="scratch directory (default: a new one under /var/tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--repeat", type=int, default=1, help="run the side-by-side (floor, debuerreotype, our cell) N times, interleaved; the median counts")
    ap.add_argument("--only-cell", action="store_true", help="only the side-by-side")
    ap.add_argument("--only-foreign", action="store_true", help="only arm64 (chrootless and qemu) next to amd64")
    ap.add_argument("--only-distroless", action="store_true", help="only the distroless variants' time and size")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="baseforge-bench-", dir="/var/tmp"))
    base.mkdir(parents=True, exist_ok=True)
    log(f"scratch directory {base}; command output in */bench.log")
    os.environ.setdefault("DOCKER_HOST", engine.host())  # the docker CLI finds a private engine too
    remove_images((f"{NAMESPACE}/", f"{NAMESPACE}-"))
    snapshot(base / "src")
    results: dict[str, float] = {}
    notes: dict[str, str] = {}
    try:
        if args.only_foreign or args.only_distroless:
            rows = (foreign(base) if args.only_foreign else []) + (distroless(base) if args.only_distroless else [])
            return print_rows(rows)
        mirror = default_mirror()
        plan = bfconfig.plan(matrix(base / "unused", apps=False), base)
        sources = [s.deb_line() for s in plan.images[CELL].cell.sources]
        epoch = plan.images[CELL].cell.epoch
        sizes: dict[str, int] = {}
        runs: dict[str, list[float]] = {"floor": [], "floor_tmpfs": [], "debuerreotype": [], "cell": []}
        # 5. the side-by-side: each command cold, interleaved ``--repeat`` times (the median counts), so a
        # slow spell of the mirror or the disk hits all of them alike
        for n in range(args.repeat):
            # 5a. the floor: the plain pipeline, cold, same sources; and the same with mmdebstrap's tree on a
            # tmpfs, as ours is (how much of the difference is the RAM disk)
            for name, tmpdir in (("floor", None), ("floor_tmpfs", "/dev/shm")):
                floor = base / f"{name}{n}"
                floor.mkdir()
                cmd = ("set -o pipefail; mmdebstrap --mode=root --variant=minbase --architectures=amd64 --format=tar "
                       f"{SUITE} - " + " ".join(f"'{s}'" for s in sources) + f" | tee rootfs.tar | docker import - {NAMESPACE}-floor:{SUITE}")
                log(f"{name}: mmdebstrap | docker import -" + (f" (TMPDIR={tmpdir})" if tmpdir else ""))
                runs[name].append(timed(cmd, floor, shell=True, env={"SOURCE_DATE_EPOCH": str(epoch), **({"TMPDIR": tmpdir} if tmpdir else {})}))
                sizes[name] = (floor / "rootfs.tar").stat().st_size
                (floor / "rootfs.tar").unlink()

            # 5b. Debian's recipe via debuerreotype (its init needs a mirror: --non-debian takes ours, not snapshot)
            deb = base / f"debuerreotype{n}"
            deb.mkdir()
            log("debuerreotype: init, minimizing-config, fixup, tar, docker import")
            cmd = ("set -e; debuerreotype-init --non-debian rootfs " + SUITE + " " + mirror + "; "
                   "debuerreotype-minimizing-config rootfs; debuerreotype-fixup rootfs; "
                   "debuerreotype-tar rootfs rootfs.tar; "
                   f"docker import rootfs.tar {NAMESPACE}-debuerreotype:{SUITE}")
            runs["debuerreotype"].append(timed(cmd, deb, shell=True))
            sizes["debuerreotype"] = (deb / "rootfs.tar").stat().st_size
            shutil.rmtree(deb, ignore_errors=True)

            # 5c. one cold Debian cell through the workflow, with its own empty package cache
            ns = f"{NAMESPACE}-cell{n}"
            cell = clone(base / f"cell{n}", matrix(base / f"cell{n}-debs", ns, apps=False, run=f"{RUN}-{n}"), ns)
            log(f"cold Debian cell: snakemake build/engine/{CELL}.json")
            runs["cell"].append(snakemake(cell, f"build/engine/{CELL}.json"))
            sizes["ours"] = (cell / f"build/rootfs/{CELL}/rootfs.tar").stat().st_size
        results.update({name: statistics.median(times) for name, times in runs.items()})
        if args.only_cell:
            return report(results, notes, sizes, runs)

        # 1. cold build of the matrix; 2. no-op rerun
        outcache = base / "output-cache"
        outcache.mkdir()
        env = {"SNAKEMAKE_OUTPUT_CACHE": str(outcache)}
        pkgcache = base / "debs"
        a = clone(base / "a", matrix(pkgcache), NAMESPACE)
        log("cold build of the matrix (--cache)")
        results["cold"] = snakemake(a, "--cache", env=env)
        notes["cold"] = f"{bootstraps_run(a)} bootstraps, {downloaded(a)} .debs downloaded, {loads_skipped(a)} loads skipped"
        log("no-op rerun")
        results["noop"] = snakemake(a, "--cache", env=env)
        results["noop_plain"] = snakemake(a)

        # 3. a fresh clone, warm between-workflow cache
        b = clone(base / "b", matrix(pkgcache), NAMESPACE)
        log("fresh clone, warm between-workflow cache")
        results["clone"] = snakemake(b, "--cache", env=env)
        notes["clone"] = f"{bootstraps_run(b)} bootstraps ran"
        results["clone_bootstraps"] = bootstraps_run(b)

        # 4. the curl variant: what its bootstrap costs as the second variant of its release (the matrix
        # built the default bootstrap and filled the package cache: the work directory gets a's default
        # bootstrap and metadata, and shares its package cache) against the same cold (a fresh directory,
        # empty package cache: it bootstraps the default one too). And the package cache alone: the curl
        # variant from scratch (layer_variants: false), warm vs cold package cache.
        curl = next(img for img in bfconfig.plan(matrix(pkgcache, apps=False), base).images.values() if img.cell.variant == "curl")
        raw = f"build/raw/debian/{SUITE}/amd64/{curl.raw_key}.tar"
        for name, cache, layered in (("variant_cold", base / "variant-debs", True), ("variant_warm", pkgcache, True),
                                     ("scratch_cold", base / "scratch-debs", False), ("scratch_warm", pkgcache, False)):
            cfg = matrix(cache)
            cfg["images"]["debian"]["layer_variants"] = layered
            work = clone(base / name, cfg, NAMESPACE)
            if name == "variant_warm":  # the default bootstrap of the cold build, as it is in "a"
                parent = f"build/raw/debian/{SUITE}/amd64/{curl.parent_raw}.tar"
                (work / parent).parent.mkdir(parents=True)
                shutil.copy2(a / parent, work / parent)
                shutil.copytree(a / ".snakemake", work / ".snakemake", symlinks=True)
            log(f"curl variant bootstrap, {name}")
            results[name] = snakemake(work, raw)
            notes[name] = f"{bootstraps_run(work)} bootstraps, {downloaded(work)} .debs downloaded"
        extra = foreign(base) + distroless(base)
        return report(results, notes, sizes, runs, extra)
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
        remove_images((f"{NAMESPACE}-floor", f"{NAMESPACE}-debuerreotype", f"{NAMESPACE}-cell", f"{NAMESPACE}-amd64",
                       f"{NAMESPACE}-arm64", f"{NAMESPACE}-distroless"))



#: Google's distroless README: "The smallest distroless image, gcr.io/distroless/static-debian12, is around 2 MiB"
GOOGLE_STATIC = 2 * 2**20


def foreign(base: Path) -> list[tuple]:
    """6. one cold Debian cell per architecture and strategy, each in a fresh clone with an empty package cache."""
    took = {}
    for name, arch, options in (("amd64", "amd64", {}), ("arm64", "arm64", {}), ("arm64-qemu", "arm64", {"foreign": "qemu"})):
        ns = f"{NAMESPACE}-{name}"
        cfg = {"namespace": ns, "package_cache": str(base / f"{name}-debs"),
               "images": {"debian": {"releases": [SUITE], "architectures": [arch], "options": options,
                                     "labels": {"org.baseforge.bench": f"{RUN}-{name}"}}}}
        log(f"cold Debian cell, {name}")
        took[name] = snakemake(clone(base / name, cfg, ns), f"build/engine/debian/{SUITE}/default/{arch}.json")
    fast, slow, native = took["arm64"], took["arm64-qemu"], took["amd64"]
    return [("amd64 cell, cold", native, "", "", ""),
            ("arm64 cell, cold (chrootless)", fast, "<= 2 x amd64", fast <= 2 * native,
             f"{fast / native:.2f} x amd64, {fast / slow:.2f} x qemu"),
            ("arm64 cell, cold (qemu)", slow, "", "", f"{slow / native:.2f} x amd64")]


def distroless(base: Path) -> list[tuple]:
    """7. the distroless variants of config/config.yaml, cold: time, size in the engine and compressed."""
    cfg = matrix(base / "distroless-debs", f"{NAMESPACE}-distroless", apps=False)
    cfg["images"] = {"distroless": cfg["images"]["distroless"]}
    work = clone(base / "distroless", cfg, f"{NAMESPACE}-distroless")
    variants = [v["name"] for v in cfg["images"]["distroless"]["variants"]]
    log("cold distroless variants")
    took = snakemake(work, *[f"build/{step}/distroless/{SUITE}/{v}/amd64.{ext}" for v in variants
                             for step, ext in (("engine", "json"), ("oci", "oci.tar"))])
    rows: list[tuple] = [("distroless variants, cold", took, "", "", ", ".join(variants))]
    for v in variants:
        size = json.loads((work / f"build/engine/distroless/{SUITE}/{v}/amd64.json").read_text())["size"]
        packed = (work / f"build/oci/distroless/{SUITE}/{v}/amd64.oci.tar").stat().st_size
        target, met = ("<= Google's static-debian12 (~2 MiB)", size <= GOOGLE_STATIC) if v == "static" else ("", "")
        rows.append((f"distroless {v} (MiB in the engine)", size / 2**20, target, met, f"compressed image {packed / 2**20:.2f} MiB"))
    return rows


def print_rows(rows: list[tuple]) -> int:
    print(f"{'measurement':40} {'value':>8}  {'target':38} {'met':4} notes")
    for name, value, target, ok, note in rows:
        met = "" if ok == "" else ("yes" if ok else "NO")
        print(f"{name:40} {value:8.1f}  {target:38} {met:4} {note}")
    return 0


def report(results: dict[str, float], notes: dict[str, str], sizes: dict[str, int], runs: dict[str, list[float]],
           extra: list[tuple] = ()) -> int:
    """Print the table (a row per measurement: value, target, met) and the raw figures as JSON on stderr."""
    floor, deb, cell = results["floor"], results["debuerreotype"], results["cell"]
    spread = {k: " / ".join(f"{t:.1f}" for t in v) for k, v in runs.items()}
    rows = [
        ("floor: mmdebstrap | docker import", floor, "", "", f"tar {sizes['floor'] / 1e6:.1f} MB; runs {spread['floor']}"),
        ("  the same, TMPDIR on tmpfs", results["floor_tmpfs"], "", "", f"runs {spread['floor_tmpfs']}"),
        ("debuerreotype recipe + docker import", deb, "", "", f"tar {sizes['debuerreotype'] / 1e6:.1f} MB; runs {spread['debuerreotype']}"),
        ("cold Debian cell (ours)", cell, "<= 1.15 x floor, <= 0.8 x debuerreotype",
         cell <= 1.15 * floor and cell <= 0.8 * deb,
         f"{cell / floor:.2f} x floor, {cell / deb:.2f} x debuerreotype, {cell / results['floor_tmpfs']:.2f} x tmpfs floor; "
         f"our slowest run against their fastest {max(runs['cell']) / min(runs['floor']):.2f} x floor, "
         f"{max(runs['cell']) / min(runs['debuerreotype']):.2f} x debuerreotype; runs {spread['cell']}"),
        ("default-variant tar size (ours, MB)", sizes["ours"] / 1e6, "<= debuerreotype", sizes["ours"] <= sizes["debuerreotype"],
         f"{sizes['ours'] / sizes['debuerreotype']:.2f} x debuerreotype, {sizes['ours'] / sizes['floor']:.2f} x floor"),
    ]
    if "cold" in results:
        cold = results["cold"]
        # the variant's cold time: built from nothing, layered or from scratch, whichever is faster
        variant_cold = min(results["variant_cold"], results["scratch_cold"])
        rows[:0] = [
            ("cold build (matrix + curl variant)", cold, "", "", notes["cold"]),
            ("no-op rerun (--cache)", results["noop"], "<= 2 s", results["noop"] <= 2, ""),
            ("no-op rerun (plain)", results["noop_plain"], "<= 2 s", results["noop_plain"] <= 2, ""),
            ("fresh clone, warm output cache", results["clone"], "<= 0.10 x cold, 0 bootstraps",
             results["clone"] <= 0.10 * cold and results["clone_bootstraps"] == 0,
             f"{results['clone'] / cold:.2f} x cold; {notes['clone']}"),
            ("curl variant, cold (nothing built)", results["variant_cold"], "", "", notes["variant_cold"]),
            ("curl variant, 2nd of its release", results["variant_warm"], "<= 0.6 x cold",
             results["variant_warm"] <= 0.6 * variant_cold,
             f"{results['variant_warm'] / variant_cold:.2f} x the faster cold build; {notes['variant_warm']}"),
            ("  from scratch, cold pkg cache", results["scratch_cold"], "", "", notes["scratch_cold"]),
            ("  from scratch, warm pkg cache", results["scratch_warm"], "", "",
             f"{results['scratch_warm'] / results['scratch_cold']:.2f} x cold; {notes['scratch_warm']}"),
        ]
    print_rows([*rows, *extra])
    print(json.dumps({"seconds": results, "runs": runs, "bytes": sizes}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
