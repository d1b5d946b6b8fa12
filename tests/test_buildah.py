"""Dockerfile apps with buildah: on the exact base archive (never pulled), --timestamp, written like the OCI
writer writes; two builds of a deterministic Dockerfile are the same bytes, and `verify` names the files
that make a non-deterministic one differ. Real buildah, a real static busybox, a real engine."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import docker
import pytest

from baseforge import buildah
from baseforge import engine as bfengine
from baseforge.errors import BaseforgeError
from baseforge.oci import write_image
from baseforge.ociread import read
from baseforge.spec import ImageMeta
from baseforge.verify import _compare_app

EPOCH = 1700000000
BUSYBOX = shutil.which("busybox") or "/bin/busybox"  # busybox-static (tools/install-deps)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A busybox image written by the OCI writer, as a workflow base would be."""
    tmp = tmp_path_factory.mktemp("base")
    layer = tmp / "layer.tar"
    with tarfile.open(layer, "w") as tf:
        for name in ("bin", "tmp"):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755, EPOCH
            tf.addfile(ti)
        ti = tarfile.TarInfo("bin/busybox")
        data = Path(BUSYBOX).read_bytes()
        ti.size, ti.mode, ti.mtime = len(data), 0o755, EPOCH
        tf.addfile(ti, io.BytesIO(data))
        for tool in ("sh", "echo", "mkdir", "cat", "date"):
            ti = tarfile.TarInfo(f"bin/{tool}")
            ti.type, ti.linkname, ti.mtime = tarfile.SYMTYPE, "busybox", EPOCH
            tf.addfile(ti)
    meta = ImageMeta(title="bfb/base:1", version="1", created=EPOCH, arch="amd64", tags=("bfb/base:1",),
                     env=("PATH=/bin",), cmd=("sh",))
    write_image(tmp / "base.oci.tar", [layer], meta)
    return tmp / "base.oci.tar"


def build(tmp: Path, base: Path, dockerfile: str, ref: str = "bfb/base:1") -> dict:
    context = tmp / "ctx"
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(dockerfile)
    (context / "file.txt").write_text("from the context\n")
    meta = ImageMeta(title="bfb/app:latest", version="latest", created=EPOCH, arch="amd64", tags=("bfb/app:latest",))
    app = {"name": "app", "context": str(context), "from_refs": [[ref, "base/1/default/amd64"]],
           "meta": meta.to_dict()}
    (tmp / "build/apps").mkdir(parents=True, exist_ok=True)
    return buildah.build_dockerfile_app(app, str(base), str(tmp / "build/apps/app.oci.tar"),
                                        str(tmp / "build/apps/app.json"), str(tmp / "build/apps/app.spdx.json"),
                                        archives={ref: str(base)})


GOOD = "FROM bfb/base:1\nRUN mkdir -p /srv && echo hi > /srv/hi\nCOPY file.txt /srv/\nCMD [\"cat\", \"/srv/hi\"]\n"


@pytest.mark.root  # buildah builds as root (chroot isolation, vfs)
def test_a_deterministic_dockerfile_gives_the_same_bytes_on_the_exact_base(tmp_path, base, engine):
    first = build(tmp_path / "one", base, GOOD)
    second = build(tmp_path / "two", base, GOOD)
    a, b = (tmp_path / d / "build/apps/app.oci.tar" for d in ("one", "two"))
    assert a.read_bytes() == b.read_bytes() and first == second
    image, base_image = read(a), read(base)
    # the base's layers, byte for byte (its compressed blobs); one new layer; created is the epoch
    assert image.manifest["layers"][:1] == base_image.manifest["layers"]
    assert len(image.manifest["layers"]) == 2 and image.config["created"].startswith("2023-11-14T22:13:20")
    with tarfile.open(a) as tf:
        assert {m.mtime for m in tf.getmembers()} == {EPOCH}
    # docker load takes it, with buildah's image ID
    client = docker.DockerClient(base_url=engine)
    assert engine_load(client, a, first["image_id"]) == first["image_id"]
    assert client.containers.run(first["image_id"], remove=True, network_mode="none") == b"hi\n"


def engine_load(client, archive: Path, image_id: str) -> str:
    return bfengine.load(client, archive, image_id, ("bfb/app:latest",))


@pytest.mark.root  # buildah builds as root (chroot isolation, vfs)
def test_verify_names_the_files_a_nondeterministic_dockerfile_changes(tmp_path, base, capsys):
    bad = GOOD.replace("echo hi > /srv/hi", "echo hi > /srv/hi && date +%s%N > /srv/stamp")
    build(tmp_path / "one", base, bad)
    build(tmp_path / "two", base, bad)
    assert not _compare_app("app", tmp_path / "one", tmp_path / "two")["reproduced"]
    out = capsys.readouterr().out
    assert "apps/app: DIFFERS" in out and "srv/stamp" in out and "srv/hi:" not in out
    assert _compare_app("app", tmp_path / "one", tmp_path / "one")["reproduced"]
    assert "apps/app: reproduced" in capsys.readouterr().out


def test_from_names_are_resolved_as_buildah_does():
    assert buildah.qualified("bfb/base:1") == "docker.io/bfb/base:1"
    assert buildah.qualified("debian") == "docker.io/library/debian:latest"
    assert buildah.qualified("127.0.0.1:5000/x/y") == "127.0.0.1:5000/x/y:latest"
    argv = buildah.build_argv(Path("/r"), Path("/c"), "t", EPOCH)
    assert argv[argv.index("--timestamp") + 1] == str(EPOCH) and "--pull=never" in argv


@pytest.mark.root
def test_from_a_base_pinned_by_digest_builds_and_a_stale_digest_is_refused(tmp_path, base):
    """FROM name:tag@sha256:… resolves in buildah's private store when it is the digest this workflow built;
    another digest (the base was rebuilt since the Dockerfile was written) is refused naming both."""
    from baseforge.errors import BaseforgeError

    digest = read(base).manifest_digest
    pinned = f"bfb/base:1@{digest}"
    built = build(tmp_path / "one", base, f"FROM {pinned}\nCOPY file.txt /srv/\n", ref=pinned)
    assert read(tmp_path / "one/build/apps/app.oci.tar").manifest["layers"][:1] == read(base).manifest["layers"]
    assert built["image_id"].startswith("sha256:")
    stale = "bfb/base:1@sha256:" + "0" * 64
    with pytest.raises(BaseforgeError, match=rf"Dockerfile\): {stale} is pinned to sha256:0+, but this workflow built {digest}"):
        build(tmp_path / "two", base, f"FROM {stale}\nCOPY file.txt /srv/\n", ref=stale)
    assert list((tmp_path / "two/build/apps").iterdir()) == []  # nothing left behind, no scratch store


@pytest.mark.root  # buildah builds as root (chroot isolation, vfs)
def test_a_dockerfile_cannot_relabel_an_insecure_base_as_secure(tmp_path, base):
    """buildah inherits the base's io.baseforge.insecure=true; a LABEL line saying false would hide it."""
    labels = {"io.baseforge.insecure": "true"}
    meta = ImageMeta(title="bfb/base:1", version="1", created=EPOCH, arch="amd64", tags=("bfb/base:1",),
                     env=("PATH=/bin",), cmd=("sh",), labels=labels)
    insecure = tmp_path / "insecure.oci.tar"
    write_image(insecure, [base.parent / "layer.tar"], meta)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM bfb/base:1\nLABEL io.baseforge.insecure=false\nCMD [\"sh\"]\n")
    app_meta = ImageMeta(title="bfb/app:latest", version="latest", created=EPOCH, arch="amd64", tags=("bfb/app:latest",),
                         labels=labels)
    app = {"name": "app", "context": str(context), "from_refs": [["bfb/base:1", "base/1/default/amd64"]],
           "meta": app_meta.to_dict()}
    with pytest.raises(BaseforgeError, match=r"app app: the Dockerfile sets labels in baseforge's own namespace .*io.baseforge.insecure=false"):
        buildah.build_dockerfile_app(app, str(insecure), str(tmp_path / "app.oci.tar"), str(tmp_path / "app.json"),
                                     str(tmp_path / "app.spdx.json"), archives={"bfb/base:1": str(insecure)})
    assert not (tmp_path / "app.oci.tar").exists()
