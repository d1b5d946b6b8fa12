"""`baseforge verify`: rebuild cells in a fresh directory and compare with what was recorded.

A reproducible build gives the same rootfs.tar bytes and the same image ID and manifest digest. On a
mismatch it says which files differ: diffoscope when installed, else a listing diff of the two tars.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from . import config, paths
from .download import sha256_file as sha256
from .errors import BaseforgeError
from .run import log, run

WORKFLOW = ("Snakefile", "rules", "scripts", "config", "apps")


def listing(tar: Path) -> dict[str, str]:
    """name -> one line of metadata and content hash, for every entry."""
    out = {}
    with tarfile.open(tar) as tf:
        for m in tf:
            content = hashlib.sha256(tf.extractfile(m).read()).hexdigest()[:16] if m.isfile() else m.linkname
            out[m.name] = f"{m.type.decode() if isinstance(m.type, bytes) else m.type} {m.mode:o} {m.uid}:{m.gid} {m.size} {m.mtime} {content}"
    return out


def tar_diff(a: Path, b: Path, limit: int = 40) -> list[str]:
    la, lb = listing(a), listing(b)
    lines = []
    for name in sorted(set(la) | set(lb)):
        if la.get(name) != lb.get(name):
            lines.append(f"{name}: recorded [{la.get(name, 'absent')}] rebuilt [{lb.get(name, 'absent')}]")
    return lines[:limit] + ([f"… and {len(lines) - limit} more"] if len(lines) > limit else [])


def explain(recorded: Path, rebuilt: Path) -> list[str]:
    if shutil.which("diffoscope"):
        proc = subprocess.run(["diffoscope", "--text", "-", str(recorded), str(rebuilt)], capture_output=True, text=True)
        return proc.stdout.splitlines()[:80]
    return tar_diff(recorded, rebuilt)


def _choose(plan: config.Plan, names: list[str], workdir: Path) -> tuple[list[str], list[str]]:
    """The cells and apps (``apps/<name>``) to verify: those named, else every cell and every recorded app."""
    if not names:
        return sorted(plan.images), [a for a in plan.apps if (workdir / paths.app(paths.APP_OCI, a)).exists()]
    cells = [n for n in names if not n.startswith("apps/")]
    apps = [n.removeprefix("apps/") for n in names if n.startswith("apps/")]
    unknown = [c for c in cells if c not in plan.images] + [f"apps/{a}" for a in apps if a not in plan.apps]
    if unknown:
        raise BaseforgeError(f"unknown cell(s) or app(s): {', '.join(unknown)}",
                             hint=f"choose from: {', '.join([*sorted(plan.images), *(f'apps/{a}' for a in plan.apps)])}")
    missing = [c for c in cells if not (workdir / paths.cell(paths.ROOTFS, c)).exists()]
    missing += [f"apps/{a}" for a in apps if not (workdir / paths.app(paths.APP_OCI, a)).exists()]
    if missing:
        raise BaseforgeError(f"nothing recorded to verify for {', '.join(missing)}", hint="build them first: snakemake --cores 4")
    return cells, apps


def _compare_cell(cell: str, workdir: Path, fresh: Path) -> bool:
    rec_tar, new_tar = workdir / paths.cell(paths.ROOTFS, cell), fresh / paths.cell(paths.ROOTFS, cell)
    rec_img = json.loads((workdir / paths.cell(paths.OCI_INFO, cell)).read_text())
    new_img = json.loads((fresh / paths.cell(paths.OCI_INFO, cell)).read_text())
    same_tar = sha256(rec_tar) == sha256(new_tar)
    same_img = (rec_img["image_id"], rec_img["manifest_digest"]) == (new_img["image_id"], new_img["manifest_digest"])
    print(f"{cell}: rootfs {'identical' if same_tar else 'DIFFERS'} ({sha256(new_tar)[:16]}), "
          f"image {'identical' if same_img else 'DIFFERS'} ({new_img['manifest_digest'][:23]})")
    if not same_tar:
        for line in explain(rec_tar, new_tar):
            print(f"    {line}")
    elif not same_img:
        print(f"    recorded {rec_img['image_id']} {rec_img['manifest_digest']}")
        print(f"    rebuilt  {new_img['image_id']} {new_img['manifest_digest']}")
    return same_tar and same_img


def _compare_app(app: str, workdir: Path, fresh: Path) -> bool:
    """An app reproduced when its image ID and manifest digest are the same; else the files that differ
    between the two images' trees (every layer flattened)."""
    from .layers import flatten

    rec = json.loads((workdir / paths.app(paths.APP_INFO, app)).read_text())
    new = json.loads((fresh / paths.app(paths.APP_INFO, app)).read_text())
    same = (rec["image_id"], rec["manifest_digest"]) == (new["image_id"], new["manifest_digest"])
    print(f"apps/{app}: {'reproduced' if same else 'DIFFERS'} (image {new['image_id'][:19]}, "
          f"manifest {new['manifest_digest'][:19]})")
    if not same:
        print(f"    recorded {rec['image_id']} {rec['manifest_digest']}")
        with tempfile.TemporaryDirectory(prefix="baseforge-verify-app-") as tmp:
            trees = []
            for name, root in (("recorded", workdir), ("rebuilt", fresh)):
                (Path(tmp) / name).mkdir()
                trees.append(Path(tmp) / f"{name}.tar")
                flatten(root / paths.app(paths.APP_OCI, app), trees[-1], Path(tmp) / name)
            lines = tar_diff(*trees)
            for line in lines or ["the files are the same: the image config or layer order differs"]:
                print(f"    {line}")
    return same


def verify(config_path: Path, cells: list[str], workdir: Path, keep: bool = False) -> int:
    """Rebuild ``cells`` and apps (``apps/<name>``; all when empty) from scratch and compare; 0 when all match."""
    plan = config.plan(config.load(config_path), workdir)
    chosen, apps = _choose(plan, cells, workdir)
    fresh = Path(tempfile.mkdtemp(prefix="baseforge-verify-"))
    try:
        for name in WORKFLOW:
            if (workdir / name).is_dir():
                shutil.copytree(workdir / name, fresh / name)
            elif (workdir / name).exists():
                shutil.copy2(workdir / name, fresh / name)
        shutil.copy2(config_path, fresh / "config/config.yaml")
        targets = [paths.cell(paths.OCI, c) for c in chosen] + [paths.app(paths.APP_OCI, a) for a in apps]
        run(["snakemake", "--cores", str(os.cpu_count() or 2), *targets, "--config", f"package_cache={fresh / 'debs'}"], cwd=fresh)
        results = [_compare_cell(c, workdir, fresh) for c in chosen] + [_compare_app(a, workdir, fresh) for a in apps]
        return 0 if all(results) else 1
    finally:
        if keep:
            log.info("rebuild kept in %s", fresh)
        else:
            shutil.rmtree(fresh, ignore_errors=True)
