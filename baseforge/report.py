"""What `snakemake --report` shows: the columns of the image matrix and the two charts.

Snakemake's report machinery does the HTML (rules/report.smk flags the files with ``report()``); this
module gives it the labels of each image (read from build/ and results/ when the report is made, so a
later ``baseforge verify`` shows up without a rebuild), a chart of image sizes beside the official
images' sizes (``data/official_sizes.tsv``), and a chart of where the build time went per rule (the
"✔ rule …" line that :func:`baseforge.run.job` writes at the end of every job's log).
"""

from __future__ import annotations

import calendar
import json
import re
import tarfile
import time
from collections import defaultdict
from pathlib import Path

from . import paths

OFFICIAL_SIZES = Path(__file__).parent / "data" / "official_sizes.tsv"
VERIFY_RESULTS = Path(paths.VERIFY_RESULTS)
#: the last line of a job's log (baseforge.run.step): "<time> INFO ✔ rule pack {'image': …} (1.2s)"
JOB_DONE = re.compile(r"✔ rule (\w+) (\{.*\}) \(([\d.]+)s\)$")
MB = 1e6  # the engine's (and Docker Hub's) megabytes


def short(digest: str) -> str:
    """The 12 hex digits `docker images` shows."""
    return digest.removeprefix("sha256:")[:12] if digest else ""


def megabytes(size: object) -> str:
    return f"{int(size) / MB:.1f} MB" if str(size).isdigit() else "–"


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def compressed_size(oci_tar: Path, layers: list[str]) -> int | None:
    """The bytes a registry stores for the image: its gzip'd layer blobs in the OCI archive."""
    try:
        with tarfile.open(oci_tar) as tf:
            sizes = {m.name: m.size for m in tf if m.name.startswith("blobs/sha256/")}
    except (OSError, tarfile.TarError):
        return None
    found = [sizes.get(f"blobs/sha256/{d.removeprefix('sha256:')}") for d in layers]
    return sum(found) if found and None not in found else None


def smoke_result(report: Path) -> str:
    """PASS when every line of the smoke report passed, else the first failure."""
    try:
        lines = [line.split("\t") for line in report.read_text().splitlines()[1:]]
    except OSError:
        return "not run"
    failed = [text for verdict, *text in lines if verdict != "PASS"]
    if failed:
        return f"FAIL: {' '.join(failed[0])}"
    return f"PASS ({len(lines)} check{'s' if len(lines) != 1 else ''})"


def verify_result(path: str, results: Path = VERIFY_RESULTS, image_id: str | None = None) -> str:
    """What `baseforge verify` said about this cell the last time it ran, or "not run" (also when it
    verified another image than ``image_id``, the one build/ holds now)."""
    outcome = _json(results).get(path)
    if outcome is None or (image_id and outcome.get("recorded_image_id", image_id) != image_id):
        return "not run"
    return "reproduced" if outcome.get("reproduced") else "DIFFERS"


def _of(path: str, cell_pattern: str, app_pattern: str) -> str:
    """A cell's (``debian/bookworm/default/amd64``) or an app's (``apps/hello``) file of that kind."""
    if path.startswith("apps/"):
        return paths.app(app_pattern, path.removeprefix("apps/"))
    return paths.cell(cell_pattern, path)


def _engine_record(path: str) -> str:
    return _of(path, paths.ENGINE, paths.APP_ENGINE)


def smoke_report(path: str) -> str:
    """The smoke report of a cell or an app."""
    return _of(path, paths.SMOKE, paths.APP_SMOKE)


def image_labels(path: str, root: Path = Path(".")) -> dict[str, str]:
    """The matrix row of one image (``debian/bookworm/default/amd64`` or ``apps/hello``), from build/."""
    app = path.startswith("apps/")
    record = _json(root / _engine_record(path))
    oci = _json(root / _of(path, paths.OCI_INFO, paths.APP_INFO))
    rootfs = _app_facts(root / paths.app(paths.APP_SBOM, path.removeprefix("apps/"))) if app else \
        _json(root / paths.cell(paths.ROOTFS_INFO, path))
    packed = compressed_size(root / _of(path, paths.OCI, paths.APP_OCI), oci.get("layers", []))
    epoch = rootfs.get("epoch")
    return {
        "image": path,
        "tags": " ".join(record.get("tags", [])) or "(not in the engine)",
        "size": megabytes(record.get("size", "")),
        "compressed": megabytes(packed) if packed is not None else "–",
        "packages": str(rootfs.get("packages", "–")),
        "image ID": short(record.get("image_id", "")),
        "manifest digest": short(oci.get("manifest_digest", "")) or "–",
        "epoch": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch)) if isinstance(epoch, int) else "–",
        "smoke test": smoke_result(root / smoke_report(path)),
        "verify": verify_result(path, root / VERIFY_RESULTS, oci.get("image_id")),
    }


def _app_facts(sbom: Path) -> dict[str, int]:
    """An app's package count and epoch, as rootfs.json has them for a cell: from its SBOM (base + added)."""
    doc = _json(sbom)
    if not doc:
        return {}
    created = doc.get("creationInfo", {}).get("created", "")
    try:
        epoch = calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return {"packages": len(doc.get("packages", []))}
    return {"packages": len(doc.get("packages", [])), "epoch": epoch}


def document_labels(path: str, document: str) -> dict[str, str]:
    """Labels of an SBOM or provenance record in the report: the image it describes and what it is."""
    tags = _json(Path(_engine_record(path))).get("tags", [])
    return {"image": tags[0] if tags else path, "document": document}


def official_sizes(path: Path = OFFICIAL_SIZES) -> dict[str, tuple[str, float]]:
    """``image/release/variant`` -> (official image name, size in MB), from the data file."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, name, size, *_ = line.split("\t")
            out[key] = (name, float(size))
    return out


def build_times(logs: list[Path]) -> dict[str, tuple[float, int]]:
    """rule -> (seconds, jobs), from the last "✔ rule" line of each job log (jobs that ran, not cache hits)."""
    totals: dict[str, list[float]] = defaultdict(list)
    for log in logs:
        done = [m for m in map(JOB_DONE.search, Path(log).read_text(errors="replace").splitlines()) if m]
        if done:
            rule, _wildcards, seconds = done[-1].groups()
            totals[rule].append(float(seconds))
    return {rule: (sum(s), len(s)) for rule, s in sorted(totals.items(), key=lambda kv: -sum(kv[1]))}
