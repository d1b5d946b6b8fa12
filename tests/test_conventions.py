"""Tags and dates that surprise no one (the official images' bashbrew habits), and busybox's own records.

No root, no daemon, no network: configs are planned with given epochs, rootfs tars are written in tmp_path.
"""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from baseforge import config, manifest, provenance, verify
from baseforge.bootstrap import busybox
from baseforge.errors import BaseforgeError

MIRRORS = {"archive": "http://mirror.invalid/debian", "security": "http://mirror.invalid/debian-security"}
BANNER = "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.\nBusyBox is copyrighted by many authors"


def plan(images, apps=None, epoch=1700000000):
    cfg = {"mirrors": MIRRORS, "epoch": epoch, "images": images, **({"apps": apps} if apps else {})}
    return config.plan(cfg, resolve_epochs=False)


def all_tags(p) -> set[str]:
    return {t for img in p.images.values() for t in img.meta.tags}


def test_slim_alone_is_never_latest():
    p = plan({"debian": {"releases": ["bookworm", "trixie"], "variants": ["slim"]}})
    assert "baseforge/debian:latest" not in all_tags(p)
    assert p.images["debian/bookworm/slim/amd64"].meta.tags == ("baseforge/debian:bookworm-slim", "baseforge/debian:12-slim")


def test_latest_follows_the_default_variant_wherever_it_is_listed():
    p = plan({"debian": {"releases": ["bookworm", "trixie"], "variants": ["slim", "default"]}})
    assert "baseforge/debian:latest" in p.images["debian/bookworm/default/amd64"].meta.tags
    assert [path for path, img in p.images.items() if "baseforge/debian:latest" in img.meta.tags] == [
        "debian/bookworm/default/amd64"]


def test_latest_false_still_means_no_latest():
    assert not any(t.endswith(":latest") for t in all_tags(plan({"debian": {"releases": ["bookworm"], "latest": False}})))


def test_a_scratch_app_is_created_at_the_configs_epoch():
    apps = {"tool": {"base": "scratch", "cmd": ["/tool"], "expect": "x"}}
    assert plan({"debian": {"releases": ["bookworm"]}}, apps, epoch=1690000000).apps["tool"].meta.created == 1690000000


def test_a_scratch_app_under_epoch_release_takes_the_newest_image_epoch():
    images = {"debian": {"releases": ["bookworm"], "epoch": 1600000000},
              "busybox": {"releases": ["bookworm"], "epoch": 1650000000}}
    p = config.plan({"mirrors": MIRRORS, "images": images, "apps": {"tool": {"base": "scratch", "cmd": ["/t"], "expect": "x"}}},
                    resolve_epochs=False)
    assert p.apps["tool"].meta.created == 1650000000


def test_busybox_version_comes_from_its_banner():
    assert busybox.package_version(BANNER) == "1:1.35.0-4+deb12u1+b1"
    with pytest.raises(BaseforgeError, match="Debian version"):
        busybox.package_version("BusyBox v1.36.1 (2023-06-01) multi-call binary.")


@pytest.fixture
def busybox_rootfs(tmp_path):
    tar = tmp_path / "rootfs.tar"
    status = busybox.status_stanza(busybox.package_version(BANNER), "arm64")
    busybox.Busybox.write(tar, b"\x7fELF fake", ["/bin/sh"], 1700000000, status)
    return tar


def test_busybox_rootfs_records_busybox_static(busybox_rootfs):
    with tarfile.open(busybox_rootfs) as tf:
        record = tf.extractfile("var/lib/dpkg/status.d/busybox-static").read().decode()
    assert "Package: busybox-static\n" in record and "Version: 1:1.35.0-4+deb12u1+b1\n" in record
    pkgs = manifest.packages(busybox_rootfs)
    assert manifest.manifest_text(pkgs) == "busybox-static\t1:1.35.0-4+deb12u1+b1\tarm64\n"
    doc = manifest.sbom(pkgs, name="baseforge/busybox:bookworm", created=1700000000, namespace_seed="x")
    assert [(p["name"], p["versionInfo"]) for p in doc["packages"]] == [("busybox-static", "1:1.35.0-4+deb12u1+b1")]
    assert doc["packages"][0]["externalRefs"][0]["referenceLocator"].startswith("pkg:deb/debian/busybox-static@1:1.35.0")


def test_status_d_beside_a_status_file_is_not_read_twice(tmp_path):
    tar = tmp_path / "r.tar"
    with tarfile.open(tar, "w") as tf:
        for name, text in {"var/lib/dpkg/status": "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n",
                           "var/lib/dpkg/status.d/b": "Package: b\nVersion: 2\nArchitecture: all\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tf.addfile(info, io.BytesIO(text.encode()))
    assert [p.name for p in manifest.packages(tar)] == ["a"]


def test_busybox_provenance_names_busybox_not_mmdebstrap(busybox_rootfs):
    pkgs = manifest.packages(busybox_rootfs)
    rec = provenance.bootstrapper_record("busybox", busybox.Busybox.product, "mmdebstrap 1.3.5", pkgs)
    assert rec == {"name": "busybox", "package": "busybox-static", "version": "1:1.35.0-4+deb12u1+b1",
                   "fetched_with": "mmdebstrap 1.3.5"}
    # a distribution bootstrapper keeps its own version
    assert provenance.bootstrapper_record("mmdebstrap", None, "1.3.5", pkgs) == {"name": "mmdebstrap", "version": "1.3.5"}


def test_verify_prints_the_image_id_of_images_tsv_and_docker_images(tmp_path, capsys):
    image_id = "sha256:" + "ab" * 32
    img = {"image_id": image_id, "manifest_digest": "sha256:" + "cd" * 32}
    for root in (tmp_path / "rec", tmp_path / "new"):
        (root / "build/rootfs/c/x").mkdir(parents=True)
        (root / "build/rootfs/c/x/rootfs.tar").write_bytes(b"same bytes")
        (root / "build/oci/c").mkdir(parents=True)
        (root / "build/oci/c/x.json").write_text(json.dumps(img))
    outcome = verify.compare("c/x", tmp_path / "rec", tmp_path / "new")
    out = capsys.readouterr().out
    assert outcome["reproduced"] and outcome["rebuilt_image_id"] == image_id
    assert f"image ID {image_id} (docker images: {'ab' * 6})" in out
    verify.record(tmp_path / "results/verify.json", {"c/x": outcome})
    verify.record(tmp_path / "results/verify.json", {"c/y": {"reproduced": False}})
    assert set(json.loads((tmp_path / "results/verify.json").read_text())) == {"c/x", "c/y"}


def test_verify_rebuilds_with_every_input_of_the_work_directory_and_none_of_its_outputs(tmp_path):
    """An app's context or Dockerfile may sit anywhere in the work directory (not only apps/): the rebuild's
    directory has it, linked, and the workflow copied; build outputs are made afresh, never linked."""
    work, fresh = tmp_path / "work", tmp_path / "fresh"
    for d in ("rules", "config", "ctx/sub", "build/apps", "results", ".snakemake", "logs"):
        (work / d).mkdir(parents=True)
    (work / "Snakefile").write_text("x")
    (work / "ctx/sub/f").write_text("f")
    (work / "keyring.gpg").write_text("k")
    fresh.mkdir()
    verify.stage(work, fresh)
    assert sorted(p.name for p in fresh.iterdir()) == ["Snakefile", "config", "ctx", "keyring.gpg", "rules"]
    assert (fresh / "ctx/sub/f").read_text() == "f" and (fresh / "ctx").is_symlink()
    assert not (fresh / "rules").is_symlink() and not (fresh / "Snakefile").is_symlink()


def test_verify_names_the_config_fields_that_make_an_app_differ(tmp_path):
    """Same files, another config (the Env order, a label): verify says which field, with both values."""
    import tarfile as tf_

    from baseforge.oci import write_image
    from baseforge.spec import ImageMeta

    layer = tmp_path / "layer.tar"
    with tf_.open(layer, "w"):
        pass
    for name, env in (("rec", ("A=1", "PATH=/bin")), ("new", ("PATH=/bin", "A=1"))):
        write_image(tmp_path / f"{name}.oci.tar", [layer],
                    ImageMeta(title="x", version="1", created=1, arch="amd64", tags=("x:1",), env=env))
    lines = verify.config_diff(tmp_path / "rec.oci.tar", tmp_path / "new.oci.tar")
    assert lines == ['image config config.Env: recorded ["A=1", "PATH=/bin"] rebuilt ["PATH=/bin", "A=1"]']
