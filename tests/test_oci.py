"""The OCI writer: deterministic bytes, correct digests and config, base reuse, index, atomic writes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from baseforge import oci, ocigzip, ociread, ocilayout
from baseforge.errors import BaseforgeError
from baseforge.oci import write_image, write_index
from baseforge.spec import ImageMeta

EPOCH = 1700000000  # 2023-11-14T22:13:20Z


def make_layer(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in sorted(files.items()):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o755, EPOCH
            tf.addfile(ti, io.BytesIO(data))
    return path


def meta(**kw) -> ImageMeta:
    args = dict(title="demo", version="1.0", created=EPOCH, arch="amd64", tags=("example.org/demo:1.0",),
                cmd=("/hello",), env=("PATH=/bin",), labels={"x.y": "z"})
    args.update(kw)
    return ImageMeta(**args)


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    return make_layer(tmp_path / "layer.tar", {"hello": b"#!/bin/sh\necho hello\n", "etc/os-release": b"ID=demo\n"})



def read_image(archive: Path) -> dict:
    """The manifest and config of the one image in ``archive``, with its image ID and manifest digest."""
    image = ociread.read(archive)
    return {"manifest": image.manifest, "config": image.config, "image_id": image.image_id,
            "manifest_digest": image.manifest_digest}

def test_two_writes_are_byte_identical(tmp_path: Path, layer: Path) -> None:
    a = write_image(tmp_path / "a.tar", [layer], meta())
    b = write_image(tmp_path / "b.tar", [layer], meta())
    assert a == b
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


@pytest.mark.parametrize("size", [0, 1, ocigzip.CHUNK, 5 * ocigzip.CHUNK + 123])
def test_parallel_gzip_is_one_valid_stream_whatever_the_thread_count(tmp_path: Path, monkeypatch, size: int) -> None:
    import random

    rng = random.Random(size)
    data = bytes(rng.choice(b"abcdefgh \n") for _ in range(size // 2)) + rng.randbytes(size - size // 2)
    (tmp_path / "layer.tar").write_bytes(data)
    digests = set()
    for threads in (1, 2, 7):
        blobs = tmp_path / f"blobs{threads}"
        blobs.mkdir()
        lay = ocigzip.compress_layer(tmp_path / "layer.tar", blobs, 6, threads)
        blob = (blobs / lay.digest.split(":")[1]).read_bytes()
        assert gzip.decompress(blob) == data and lay.size == len(blob) and lay.raw_size == size
        assert lay.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
        digests.add(lay.digest)
    assert len(digests) == 1


def test_docker_archive_stream_is_the_same_image_with_the_layer_uncompressed(tmp_path: Path, layer: Path) -> None:
    written = write_image(tmp_path / "img.tar", [layer], meta())
    image_id, stream = oci.docker_archive(layer, sha(layer.read_bytes()), meta())
    assert image_id == written.image_id
    (tmp_path / "stream.tar").write_bytes(b"".join(stream))
    got = members(tmp_path / "stream.tar")
    manifest = json.loads(got["manifest.json"])
    assert manifest == [{"Config": f"blobs/sha256/{image_id[7:]}", "RepoTags": ["example.org/demo:1.0"],
                         "Layers": [f"blobs/sha256/{sha(layer.read_bytes())[7:]}"]}]
    assert got[manifest[0]["Layers"][0]] == layer.read_bytes()  # as it is: nothing to gunzip
    assert got[manifest[0]["Config"]] == members(tmp_path / "img.tar")[manifest[0]["Config"]]


def test_created_and_content_change_digests(tmp_path: Path, layer: Path) -> None:
    a = write_image(tmp_path / "a.tar", [layer], meta())
    b = write_image(tmp_path / "b.tar", [layer], meta(created=EPOCH + 1))
    assert a.layers == b.layers and a.diff_ids == b.diff_ids
    assert a.image_id != b.image_id and a.manifest_digest != b.manifest_digest

    other = make_layer(tmp_path / "other.tar", {"hello": b"#!/bin/sh\necho hellO\n", "etc/os-release": b"ID=demo\n"})
    c = write_image(tmp_path / "c.tar", [other], meta())
    assert c.diff_ids != a.diff_ids and c.layers != a.layers
    assert c.image_id != a.image_id and c.manifest_digest != a.manifest_digest


def test_outer_tar_is_normalized(tmp_path: Path, layer: Path) -> None:
    write_image(tmp_path / "a.tar", [layer], meta())
    with tarfile.open(tmp_path / "a.tar") as tf:
        infos = tf.getmembers()
    names = [m.name for m in infos]
    assert names == sorted(names)
    assert names[:2] == ["blobs", "blobs/sha256"] and names[-3:] == ["index.json", "manifest.json", "oci-layout"]
    for m in infos:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", EPOCH)
        assert m.mode == (0o755 if m.isdir() else 0o644)
        assert not m.pax_headers


@pytest.mark.parametrize("arch, architecture, variant", [("amd64", "amd64", None), ("arm64", "arm64", "v8"),
                                                         ("armhf", "arm", "v7")])
def test_config(tmp_path: Path, layer: Path, arch: str, architecture: str, variant: str | None) -> None:
    result = write_image(tmp_path / "a.tar", [layer], meta(arch=arch, comment="made by a test"))
    image = read_image(tmp_path / "a.tar")
    config = image["config"]
    assert config["architecture"] == architecture and config.get("variant") == variant and config["os"] == "linux"
    assert result.platform == "/".join(p for p in ("linux", architecture, variant) if p)
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert config["config"] == {
        "Cmd": ["/hello"],
        "Env": ["PATH=/bin"],
        "Labels": {"x.y": "z", "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
                   "org.opencontainers.image.title": "demo", "org.opencontainers.image.version": "1.0"},
    }
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha(layer.read_bytes())]}
    assert config["history"] == [{"created": "2023-11-14T22:13:20Z", "created_by": "made by a test"}]
    assert result.diff_ids == (sha(layer.read_bytes()),)
    assert result.size == layer.stat().st_size
    assert image["image_id"] == result.image_id and image["manifest_digest"] == result.manifest_digest


def test_blobs_and_docker_manifest(tmp_path: Path, layer: Path) -> None:
    result = write_image(tmp_path / "a.tar", [layer], meta())
    files = members(tmp_path / "a.tar")
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert sha(data) == "sha256:" + name.rsplit("/", 1)[1]
    assert sha(files[f"blobs/sha256/{result.image_id[7:]}"]) == result.image_id

    # the layer blob is a plain, reproducible gzip of the input: no name, mtime 0
    blob = files[f"blobs/sha256/{result.layers[0][7:]}"]
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    assert gzip.decompress(blob) == layer.read_bytes()

    (docker,) = json.loads(files["manifest.json"])
    assert docker["RepoTags"] == ["example.org/demo:1.0"]
    assert docker["Config"] == f"blobs/sha256/{result.image_id[7:]}"
    assert docker["Layers"] == [f"blobs/sha256/{d[7:]}" for d in result.layers]
    assert all(path in files for path in [docker["Config"], *docker["Layers"]])

    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (desc,) = json.loads(files["index.json"])["manifests"]
    assert desc["digest"] == result.manifest_digest
    assert desc["annotations"] == {"org.opencontainers.image.ref.name": "1.0",
                                   "io.containerd.image.name": "example.org/demo:1.0"}
    manifest = json.loads(files[f"blobs/sha256/{result.manifest_digest[7:]}"])
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert manifest["layers"][0]["size"] == len(blob)
    assert manifest["annotations"]["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"


def test_app_on_base(tmp_path: Path, layer: Path) -> None:
    base = write_image(tmp_path / "base.tar", [layer], meta(comment="base"))
    app_layer = make_layer(tmp_path / "app.tar", {"app": b"app\n"})
    app = write_image(tmp_path / "app.oci.tar", [app_layer], meta(title="app", base_name="example.org/demo:1.0"),
                      base=tmp_path / "base.tar")
    assert app.layers[:1] == base.layers and app.diff_ids[:1] == base.diff_ids and len(app.layers) == 2
    assert app.size == layer.stat().st_size + app_layer.stat().st_size

    image = read_image(tmp_path / "app.oci.tar")
    base_config = read_image(tmp_path / "base.tar")["config"]
    assert image["config"]["history"][0] == base_config["history"][0]
    assert len(image["config"]["history"]) == len(image["config"]["rootfs"]["diff_ids"]) == 2
    assert image["config"]["config"]["Labels"]["org.opencontainers.image.base.name"] == "example.org/demo:1.0"
    assert image["manifest"]["annotations"]["org.opencontainers.image.base.digest"] == base.manifest_digest
    assert image["manifest"]["annotations"]["org.opencontainers.image.base.name"] == "example.org/demo:1.0"

    files, base_files = members(tmp_path / "app.oci.tar"), members(tmp_path / "base.tar")
    key = f"blobs/sha256/{base.layers[0][7:]}"
    assert files[key] == base_files[key]


def test_base_of_another_arch_is_refused(tmp_path: Path, layer: Path) -> None:
    write_image(tmp_path / "base.tar", [layer], meta(arch="arm64"))
    with pytest.raises(BaseforgeError, match="linux/arm64/v8"):
        write_image(tmp_path / "app.tar", [layer], meta(), base=tmp_path / "base.tar")


def test_index(tmp_path: Path, layer: Path) -> None:
    per_arch = {arch: write_image(tmp_path / f"{arch}.tar", [layer], meta(arch=arch)) for arch in ("arm64", "amd64", "armhf")}
    archives = [tmp_path / f"{arch}.tar" for arch in per_arch]
    digest = write_index(tmp_path / "index.tar", archives, meta())
    assert write_index(tmp_path / "again.tar", archives[::-1], meta()) == digest
    assert (tmp_path / "index.tar").read_bytes() == (tmp_path / "again.tar").read_bytes()

    files = members(tmp_path / "index.tar")
    assert "manifest.json" not in files
    (desc,) = json.loads(files["index.json"])["manifests"]
    assert desc["digest"] == digest and desc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == "1.0"
    index = json.loads(files[f"blobs/sha256/{digest[7:]}"])
    platforms = {m["digest"]: m["platform"] for m in index["manifests"]}
    assert platforms == {
        per_arch["amd64"].manifest_digest: {"architecture": "amd64", "os": "linux"},
        per_arch["arm64"].manifest_digest: {"architecture": "arm64", "os": "linux", "variant": "v8"},
        per_arch["armhf"].manifest_digest: {"architecture": "arm", "os": "linux", "variant": "v7"},
    }
    for result in per_arch.values():  # every blob is there, the shared layer once
        for d in (result.manifest_digest, result.image_id, *result.layers):
            assert sha(files[f"blobs/sha256/{d[7:]}"]) == d
    assert sum(name.startswith("blobs/") for name in files) == 1 + 3 + 3 + 1


def test_index_refuses_duplicate_platforms(tmp_path: Path, layer: Path) -> None:
    write_image(tmp_path / "a.tar", [layer], meta())
    write_image(tmp_path / "b.tar", [layer], meta(version="2.0"))
    with pytest.raises(BaseforgeError, match="linux/amd64"):
        write_index(tmp_path / "index.tar", [tmp_path / "a.tar", tmp_path / "b.tar"], meta())
    assert not (tmp_path / "index.tar").exists()


def test_missing_layer_leaves_nothing(tmp_path: Path, layer: Path) -> None:
    out = tmp_path / "out" / "image.tar"
    with pytest.raises(BaseforgeError, match="not found"):
        write_image(out, [layer, tmp_path / "nope.tar"], meta())
    assert not out.exists()


def test_failure_midway_leaves_nothing_and_keeps_old_output(tmp_path: Path, layer: Path, monkeypatch) -> None:
    out = tmp_path / "image.tar"
    out.write_bytes(b"previous")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(oci, "write_layout", boom)
    with pytest.raises(OSError, match="disk full"):
        write_image(out, [layer], meta())
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.tar", "layer.tar"]  # no temp file or blob dir


def test_bad_input_is_a_user_error(tmp_path: Path, layer: Path) -> None:
    with pytest.raises(BaseforgeError, match="unknown architecture"):
        write_image(tmp_path / "a.tar", [layer], meta(arch="vax"))
    with pytest.raises(BaseforgeError, match="no layers"):
        write_image(tmp_path / "a.tar", [], meta())
    with pytest.raises(BaseforgeError, match="not an OCI image layout"):
        ociread.read(layer)


@pytest.mark.parametrize("tags, ref", [((), None), (("demo",), "latest"), (("registry:5000/demo",), "latest"),
                                       (("registry:5000/demo:2",), "2")])
def test_ref_name(tags: tuple[str, ...], ref: str | None) -> None:
    assert ocilayout.ref_annotations(tags).get("org.opencontainers.image.ref.name") == ref
