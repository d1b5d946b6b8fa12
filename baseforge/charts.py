"""The report's charts, drawn by matplotlib as SVG: image sizes beside the official images', build time per rule.

The same data give the same bytes (no date in the SVG, fixed ids), so a rerun that changes nothing does
not change the report.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import report
from .run import atomic_file

OURS, THEIRS = "#3b6ea8", "#b0b0b0"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: a job on a server or a cluster node
    matplotlib.rcParams.update({"svg.hashsalt": "baseforge", "svg.fonttype": "none", "font.size": 10})
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path | str) -> None:
    with atomic_file(out) as tmp:
        fig.savefig(tmp, format="svg", metadata={"Date": None}, bbox_inches="tight")


def size_rows(images: list[dict], official: dict[str, tuple[str, float]]) -> list[tuple[str, float, float | None, str]]:
    """(our first tag, our MB, the official image's MB or None, its name) per image, smallest first."""
    rows = []
    for img in images:
        if not str(img.get("size", "")).isdigit():
            continue
        cell = "/".join(img["image"].split("/")[:3])
        name, size = official.get(cell, ("", None))
        rows.append((img["tags"].split(",")[0], int(img["size"]) / report.MB, size, name))
    return sorted(rows, key=lambda r: r[1])


def sizes_chart(images_json: Path | str, out: Path | str, official: Path = report.OFFICIAL_SIZES) -> None:
    """Horizontal bars: each image's size in the engine, with the official image of the same cell under it."""
    rows = size_rows(json.loads(Path(images_json).read_text()), report.official_sizes(official))
    plt = _pyplot()
    labels, values, colors = [], [], []
    for tag, ours, theirs, name in rows:
        if theirs is not None:
            labels.append(f"{name} (official)")
            values.append(theirs)
            colors.append(THEIRS)
        labels.append(tag)
        values.append(ours)
        colors.append(OURS)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.2))
    bars = ax.barh(range(len(labels)), values, color=colors)
    ax.bar_label(bars, labels=[f"{v:.1f} MB" for v in values], padding=3)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("size in the Docker Engine (MB)")
    ax.set_title("Image sizes: baseforge (blue) and the official images (grey)")
    ax.set_xlim(0, max(values or [1]) * 1.2)
    ax.spines[["top", "right"]].set_visible(False)
    _save(fig, out)
    plt.close(fig)


def times_chart(logs: Path | str, out: Path | str, skip: Path | str | None = None) -> None:
    """Horizontal bars: seconds spent per rule in the jobs whose logs are under ``logs`` (but not under
    ``skip``: the report's own); cache hits and skipped jobs cost nothing and have no log line."""
    times = report.build_times(sorted(p for p in Path(logs).rglob("*.log") if not (skip and Path(skip) in p.parents)))
    plt = _pyplot()
    rules = list(times)[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.4 * max(len(rules), 1) + 1.2))
    bars = ax.barh(range(len(rules)), [times[r][0] for r in rules], color=OURS)
    ax.bar_label(bars, labels=[f"{times[r][0]:.1f} s ({times[r][1]} job{'s' if times[r][1] > 1 else ''})" for r in rules],
                 padding=3)
    ax.set_yticks(range(len(rules)), rules)
    ax.set_xlabel("seconds (sum over the rule's jobs, as each job's log records)")
    ax.set_title("Where the build time went, per rule")
    ax.set_xlim(0, max([t for t, _ in times.values()] or [1]) * 1.3)
    ax.spines[["top", "right"]].set_visible(False)
    _save(fig, out)
    plt.close(fig)
