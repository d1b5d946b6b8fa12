"""The Docker Engine, through the docker SDK: connect (respecting DOCKER_HOST), load, import, build, run."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from . import faults, oci, scratch
from .errors import BaseforgeError
from .host import docker_host as host  # the engine's address (a failed job's paragraph reads it there too)
from .ocilayout import image_labels
from .run import write_json
from .spec import ImageMeta

log = logging.getLogger("baseforge")


def connect(timeout: int = 900) -> docker.DockerClient:
    """A client for a Docker Engine that answers, or a BaseforgeError saying how to point at one."""
    url = host()
    try:
        client = docker.DockerClient(base_url=url, version="auto", timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, OSError) as err:
        why = faults.root_cause(err)
        if isinstance(why, PermissionError):
            raise BaseforgeError(
                f"no Docker Engine answers at {url}: permission denied on its socket",
                hint="whoever may use a Docker socket is root on the host: run as root, or as a member of the "
                "socket's group (tools/engine start with BASEFORGE_ENGINE_GROUP=<group>)") from None
        what = {FileNotFoundError: "no socket there (no engine runs)", ConnectionRefusedError: "connection refused (no engine listens)"}
        raise BaseforgeError(
            f"no Docker Engine answers at {url}: {what.get(type(why), f'{type(why).__name__}: {why}')}",
            hint="start one with `tools/engine start` (a private dockerd; it prints the export line), "
            "or point DOCKER_HOST at a running engine, e.g. export DOCKER_HOST=unix:///path/to/docker.sock",
        ) from None
    return client


def has_image(client: docker.DockerClient, image_id: str) -> bool:
    try:
        return client.images.get(image_id).id == image_id
    except docker.errors.ImageNotFound:
        return False


def tag(client: docker.DockerClient, image_id: str, tags: tuple[str, ...] | list[str]) -> None:
    image = client.images.get(image_id)
    for full in tags:
        repo, _, name = full.rpartition(":")
        image.tag(repo, name)


def load(client: docker.DockerClient, archive: Path | Iterator[bytes], image_id: str, tags: tuple[str, ...]) -> str:
    """``docker load`` ``archive`` (a file, or a stream from :func:`oci.docker_archive`) unless the engine
    already holds ``image_id``; then (re)tag it."""
    if has_image(client, image_id):
        log.info("engine already holds %s: not loading it again", image_id)
    else:
        if isinstance(archive, Path):
            with open(archive, "rb") as f:
                loaded = client.images.load(f)
        else:
            loaded = client.images.load(archive)
        ids = {img.id for img in loaded}
        if image_id not in ids:
            raise BaseforgeError(f"docker load gave {sorted(ids)}, expected {image_id}",
                                 hint="the archive does not match its recorded image ID: rebuild it")
    tag(client, image_id, tags)
    return image_id


def changes(meta: ImageMeta) -> list[str]:
    """Dockerfile instructions for ``docker import --change`` (the classic, non-reproducible method)."""
    out = [f"ENV {e.split('=', 1)[0]}={json.dumps(e.split('=', 1)[1])}" for e in meta.env]
    if meta.cmd:
        out.append(f"CMD {json.dumps(list(meta.cmd))}")
    labels = {**meta.labels, **image_labels(meta)}
    out += [f"LABEL {k}={json.dumps(v)}" for k, v in sorted(labels.items())]
    return out


def import_rootfs(client: docker.DockerClient, rootfs: Path, meta: ImageMeta) -> str:
    """The classic ``tar -C rootfs -c . | docker import -`` path: a new image ID on every import."""
    repo, _, name = meta.tags[0].rpartition(":")
    platform = meta.arch
    result = client.api.import_image(src=str(rootfs), repository=repo, tag=name, changes=changes(meta))
    image_id = client.images.get(meta.tags[0]).id
    log.info("imported %s as %s (%s; %s)", rootfs, image_id, platform, str(result)[:200])
    tag(client, image_id, meta.tags)
    return image_id


def build(client: docker.DockerClient, context: Path, tags: tuple[str, ...], labels: dict[str, str]) -> str:
    """``docker build`` a Dockerfile directory, never pulling: its FROM images are ours, already loaded."""
    try:
        image, logs = client.images.build(path=str(context), tag=tags[0], pull=False, rm=True, forcerm=True,
                                          network_mode="host", labels=labels)
    except docker.errors.BuildError as err:
        tail = "\n    ".join(str(line.get("stream", line.get("error", ""))).strip() for line in list(err.build_log)[-15:])
        raise BaseforgeError(f"docker build of {context} failed: {err.msg}\n    {tail}") from None
    for line in logs:
        if "stream" in line and line["stream"].strip():
            log.info("build: %s", line["stream"].rstrip())
    tag(client, image.id, tags)
    return image.id


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    stdout: str
    stderr: str


#: the label of every container baseforge makes: its owner (:func:`baseforge.scratch.owner`), so that the
#: next run removes what a killed job left (:func:`remove_stale_containers`)
OWNER_LABEL = "org.baseforge.owner"


def create(client: docker.DockerClient, image: str, **kwargs: Any) -> Any:
    """A container of ``image`` (no network), labelled with its owner."""
    return client.containers.create(image, network_mode="none", labels={OWNER_LABEL: json.dumps(scratch.owner())}, **kwargs)


def remove_stale_containers(timeout: int = 5) -> list[str]:
    """Remove the containers of baseforge jobs that are dead (a smoke test killed mid-run); one line for the
    console, or none. Nothing when no engine answers (a cluster node, no engine yet): a run that needs one says so."""
    url = host()
    if url.startswith("unix://") and not Path(url.removeprefix("unix://")).exists():
        return []
    try:
        client = docker.DockerClient(base_url=url, version="auto", timeout=timeout)
        stale = [c for c in client.containers.list(all=True, filters={"label": OWNER_LABEL})
                 if not scratch.alive(json.loads(c.labels.get(OWNER_LABEL) or "{}"))]
        for container in stale:
            container.remove(force=True)
    except (docker.errors.DockerException, OSError, ValueError):
        return []
    return [f"removed {len(stale)} container{'s' if len(stale) > 1 else ''} a killed job left in the engine"] if stale else []


def run(client: docker.DockerClient, image: str, command: Any = None, entrypoint: Any = None) -> RunResult:
    """Run ``image`` once with no network and return what it printed."""
    container = create(client, image, command=command, entrypoint=entrypoint, detach=True)
    try:
        container.start()
        status = container.wait(timeout=300)
        return RunResult(status.get("StatusCode", -1), container.logs(stdout=True, stderr=False).decode(errors="replace"),
                         container.logs(stdout=False, stderr=True).decode(errors="replace"))
    finally:
        container.remove(force=True)


def inspect(client: docker.DockerClient, image_id: str) -> dict[str, Any]:
    return client.api.inspect_image(image_id)


def write_record(client: docker.DockerClient, record: Path | str, image_id: str, tags: tuple[str, ...] | list[str],
                 method: str) -> None:
    """The load/build job's output: which image the engine holds for this target, its tags and size."""
    size = inspect(client, image_id).get("Size")
    write_json(record, {"image_id": image_id, "tags": list(tags), "method": method, "size": size})


def load_job(record: str, meta: dict[str, Any], method: str, archive: str | None = None, info: str | None = None,
             rootfs: str | None = None, rootfs_info: str | None = None) -> None:
    """Rules load/app_load: put an image into the engine and record it.

    ``method`` "oci": an app's archive (``archive`` + its ``info``), or a base image straight from its
    ``rootfs`` tar and ``rootfs_info`` (the same image ID as its OCI archive, without waiting for it);
    "import": the classic ``docker import`` of ``rootfs``.
    """
    image_meta = ImageMeta.from_dict(meta)
    client = connect()
    if method == "import":
        image_id = import_rootfs(client, Path(rootfs), image_meta)
    elif rootfs is not None:
        diff_id = "sha256:" + json.loads(Path(rootfs_info).read_text())["sha256"]
        image_id, stream = oci.docker_archive(Path(rootfs), diff_id, image_meta)
        image_id = load(client, stream, image_id, image_meta.tags)
    else:
        image_id = load(client, Path(archive), json.loads(Path(info).read_text())["image_id"], image_meta.tags)
    write_record(client, record, image_id, image_meta.tags, method)


def forget_missing(records: Path, reports: Path, summaries: list[Path], remove: bool = True) -> list[Path]:
    """Remove the records of images the engine no longer holds, their smoke reports and the summary.

    Snakemake does not rerun a job for a missing intermediate file while the outputs that consume it are
    present (that is how temp() works), so everything downstream that speaks of the engine's images goes
    too: then the summary, the smoke test and through them the load run again. Does nothing when no engine
    answers (the load job will say so) or there are no records. ``remove=False`` (a dry run) only says so.
    """
    files = sorted(records.rglob("*.json")) if records.is_dir() else []
    if not files:
        return []
    try:
        client = docker.DockerClient(base_url=host(), version="auto", timeout=10)
        present = {img.id for img in client.images.list(all=True)}
    except (docker.errors.DockerException, OSError):
        return []
    gone = []
    for f in files:
        try:
            image_id = json.loads(f.read_text())["image_id"]
        except (ValueError, KeyError, OSError):
            image_id = None
        if image_id not in present:
            log.warning("engine no longer holds %s (%s): it will be loaded again%s", image_id, f,
                        "" if remove else " by a real run (a dry run changes nothing)")
            gone.append(f)
            if not remove:
                continue
            f.unlink()
            (reports / f.relative_to(records)).with_suffix(".ok").unlink(missing_ok=True)
    for summary in summaries if gone and remove else []:
        summary.unlink(missing_ok=True)
    return gone
