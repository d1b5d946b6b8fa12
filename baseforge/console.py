"""What a run shows at its end, like `docker images`: one line per image with its tags, image ID, size and
smoke-test verdict, read from results/images.json (and build/smoke/).

The Snakefile calls :func:`show_images` from ``onsuccess``; Snakemake does not run ``onsuccess`` when there
is nothing to do, so :func:`on_nothing_to_do` watches its log for that message and shows the same table.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from . import paths
from .report import megabytes, short, smoke_report, smoke_result

IMAGES_JSON = Path(paths.SUMMARY_JSON)
HEADER = ("IMAGE", "IMAGE ID", "SIZE", "SMOKE TEST")


def tag_list(tags: str) -> str:
    """``repo:a,repo:b,repo:c`` -> ``repo:a :b :c`` (the README's way of writing one image's tags)."""
    first, *rest = [t for t in tags.split(",") if t]
    repo = first.rsplit(":", 1)[0]
    return " ".join([first] + [t.removeprefix(repo) if t.startswith(repo + ":") else t for t in rest])


def table(rows: list[dict], root: Path = Path(".")) -> str:
    """The image table: aligned columns, one line per image (the order of results/images.json)."""
    lines = [HEADER] + [(tag_list(r["tags"]) if r.get("tags") else r["image"], short(r["image_id"]), megabytes(r["size"]),
                         smoke_result(root / smoke_report(r["image"]))) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER) - 1)]
    return "\n".join("   ".join([*(c.ljust(w) for c, w in zip(line, widths)), line[-1]]) for line in lines)


def images_table(images_json: Path = IMAGES_JSON) -> str | None:
    """The table of the last summary, or None before the first one."""
    try:
        rows = json.loads(images_json.read_text())
    except (OSError, ValueError):
        return None
    return f"baseforge: {len(rows)} images ({images_json}):\n" + table(rows, images_json.parent.parent)


def show_images(logger: logging.Logger, images_json: Path = IMAGES_JSON) -> None:
    text = images_table(images_json)
    if text:
        logger.info(text)


class NothingToDo(logging.Handler):
    """On Snakemake's "Nothing to be done" message: say so, and show the image table."""

    def __init__(self, logger: logging.Logger, message: str, images_json: Path = IMAGES_JSON) -> None:
        super().__init__(logging.INFO)
        self.logger, self.message, self.images_json = logger, message, images_json

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == self.message:
            text = images_table(self.images_json)
            if text:
                self.logger.info("baseforge: nothing to do, every image is up to date.\n" + text)


def on_nothing_to_do(logger: logging.Logger, message: str) -> None:
    """Show the image table after ``message`` (Snakemake's NOTHING_TO_BE_DONE_MSG), once per process."""
    if not any(isinstance(h, NothingToDo) for h in logger.handlers):
        logger.addHandler(NothingToDo(logger, message))
