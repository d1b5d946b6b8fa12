"""`baseforge verify`: rebuild cells in a fresh directory and compare with what was recorded.

A reproducible build gives the same rootfs.tar bytes and the same image ID and manifest digest. On a
mismatch it says which files differ: diffoscope when installed, else a listing diff of the two tars.
Every verdict is kept in results/verify.json, for the report.
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
from .run import log, run, write_json

WORKFLOW = ("Snakefile", "rules", "scripts", "config", "apps")
#: what a build writes (and the rebuild must make afresh): never linked into the rebuild's directory
OUTPUTS = (paths.BUILD, paths.RESULTS, "logs", ".snakemake", ".baseforge", "report.html", "report.zip")
#: every verdict so far, per cell and app (the report shows it; one never verified is "not run")
RESULTS = Path(paths.VERIFY_RESULTS)


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


def image_line(img: dict) -> str:
    """The image ID as results/images.tsv has it, with the 12 digits `docker images` shows, and the digest."""
    image_id = img["image_id"]
    return f"image ID {image_id} (docker images: {image_id.removeprefix('sha256:')[:12]}), manifest {img['manifest_digest']}"


def compare(cell: str, workdir: Path, fresh: Path) -> dict:
    """Compare the recorded and the rebuilt rootfs and image of ``cell``; print the verdict; return it."""
    rec_tar, new_tar = workdir / paths.cell(paths.ROOTFS, cell), fresh / paths.cell(paths.ROOTFS, cell)
    rec_img = json.loads((workdir / paths.cell(paths.OCI_INFO, cell)).read_text())
    new_img = json.loads((fresh / paths.cell(paths.OCI_INFO, cell)).read_text())
    new_sha = sha256(new_tar)
    same_tar = sha256(rec_tar) == new_sha
    same_img = (rec_img["image_id"], rec_img["manifest_digest"]) == (new_img["image_id"], new_img["manifest_digest"])
    print(f"{cell}: rootfs {'identical' if same_tar else 'DIFFERS'} ({new_sha[:16]}), "
          f"image {'identical' if same_img else 'DIFFERS'}")
    if not same_tar:
        for line in explain(rec_tar, new_tar):
            print(f"    {line}")
    if same_img:
        print(f"    {image_line(new_img)}")
    else:
        print(f"    recorded {image_line(rec_img)}")
        print(f"    rebuilt  {image_line(new_img)}")
    return {"reproduced": same_tar and same_img, "rootfs_identical": same_tar, "image_identical": same_img,
            "recorded_image_id": rec_img["image_id"], "rebuilt_image_id": new_img["image_id"],
            "rebuilt_manifest_digest": new_img["manifest_digest"]}


def _compare_app(app: str, workdir: Path, fresh: Path) -> dict:
    """An app reproduced when its image ID and manifest digest are the same; else the files that differ
    between the two images' trees (every layer flattened)."""
    from .layers import flatten

    rec = json.loads((workdir / paths.app(paths.APP_INFO, app)).read_text())
    new = json.loads((fresh / paths.app(paths.APP_INFO, app)).read_text())
    same = (rec["image_id"], rec["manifest_digest"]) == (new["image_id"], new["manifest_digest"])
    print(f"apps/{app}: {'reproduced' if same else 'DIFFERS'}, {image_line(new)}")
    if not same:
        print(f"    recorded {rec['image_id']} {rec['manifest_digest']}")
        with tempfile.TemporaryDirectory(prefix="baseforge-verify-app-") as tmp:
            trees = []
            for name, root in (("recorded", workdir), ("rebuilt", fresh)):
                (Path(tmp) / name).mkdir()
                trees.append(Path(tmp) / f"{name}.tar")
                flatten(root / paths.app(paths.APP_OCI, app), trees[-1], Path(tmp) / name)
            archives = (root / paths.app(paths.APP_OCI, app) for root in (workdir, fresh))
            lines = tar_diff(*trees) or config_diff(*archives)
            for line in lines or ["the files and the image config are the same: the layers are split differently"]:
                print(f"    {line}")
    return {"reproduced": same, "recorded_image_id": rec["image_id"], "rebuilt_image_id": new["image_id"],
            "rebuilt_manifest_digest": new["manifest_digest"]}


def config_diff(recorded: Path, rebuilt: Path) -> list[str]:
    """The image config fields that differ (``config.Env``, ``created`` …), each with both values."""
    from .ociread import read

    def flat(cfg: dict) -> dict[str, object]:
        out = {k: v for k, v in cfg.items() if k not in ("config", "rootfs")}
        out.update({f"config.{k}": v for k, v in (cfg.get("config") or {}).items()})
        return out

    a, b = flat(read(recorded).config), flat(read(rebuilt).config)
    return [f"image config {k}: recorded {json.dumps(a.get(k))} rebuilt {json.dumps(b.get(k))}"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def record(path: Path, outcomes: dict[str, dict]) -> None:
    """Merge this run's verdicts into ``path`` (results/verify.json): the report's "reproduced" column."""
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {**known, **outcomes})


def stage(workdir: Path, fresh: Path) -> None:
    """The work directory's inputs in ``fresh``: the workflow copied, and every other entry (app contexts and
    Dockerfiles, keyrings, tarballs a config names by a relative path) linked; never its outputs."""
    for entry in sorted(workdir.iterdir()):
        if entry.name in WORKFLOW:
            if entry.is_dir():
                shutil.copytree(entry, fresh / entry.name)
            else:
                shutil.copy2(entry, fresh / entry.name)
        elif entry.name not in OUTPUTS:
            (fresh / entry.name).symlink_to(entry.resolve())


def verify(config_path: Path, cells: list[str], workdir: Path, keep: bool = False) -> int:
    """Rebuild ``cells`` and apps (``apps/<name>``; all when empty) from scratch and compare; 0 when all match."""
    plan = config.plan(config.load(config_path), workdir)
    chosen, apps = _choose(plan, cells, workdir)
    fresh = Path(tempfile.mkdtemp(prefix="baseforge-verify-"))
    try:
        stage(workdir, fresh)
        shutil.copy2(config_path, fresh / "config/config.yaml")
        targets = [paths.cell(paths.OCI, c) for c in chosen] + [paths.app(paths.APP_OCI, a) for a in apps]
        run(["snakemake", "--cores", str(os.cpu_count() or 2), *targets, "--config", f"package_cache={fresh / 'debs'}"], cwd=fresh)
        outcomes = {c: compare(c, workdir, fresh) for c in chosen}
        outcomes.update({f"apps/{a}": _compare_app(a, workdir, fresh) for a in apps})
        record(workdir / RESULTS, outcomes)
        return 0 if all(o["reproduced"] for o in outcomes.values()) else 1
    finally:
        if keep:
            log.info("rebuild kept in %s", fresh)
        else:
            shutil.rmtree(fresh, ignore_errors=True)
