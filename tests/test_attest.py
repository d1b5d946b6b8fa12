"""Attestations: an image pushed to the real registry on 127.0.0.1 gets its SPDX SBOM and an in-toto SLSA
provenance statement as OCI 1.1 referrers, listed under the sha256-<digest> fallback tag; skopeo finds
them, and what comes back names the image's manifest as its subject."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import urllib.request
from pathlib import Path

from baseforge import attest
from baseforge.oci import write_image
from baseforge.spec import ImageMeta

EPOCH = 1700000000


def built(tmp_path: Path, text: str) -> tuple[Path, Path, Path, Path]:
    """An image archive, its OCI record, an SBOM and a provenance record as the workflow writes them."""
    layer = tmp_path / f"{text}.tar"
    with tarfile.open(layer, "w") as tf:
        ti = tarfile.TarInfo("hello.txt")
        ti.size, ti.mtime = len(text), EPOCH
        tf.addfile(ti, io.BytesIO(text.encode()))
    meta = ImageMeta(title=text, version="1", created=EPOCH, arch="amd64", tags=(f"x/{text}:1",))
    result = write_image(tmp_path / f"{text}.oci.tar", [layer], meta)
    info = tmp_path / f"{text}.json"
    info.write_text(json.dumps(result.to_dict()))
    sbom = tmp_path / f"{text}.spdx.json"
    sbom.write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": text, "packages": [{"name": "bash"}]}))
    prov = tmp_path / f"{text}.provenance.json"
    prov.write_text(json.dumps({
        "cell": "debian/bookworm/default/amd64", "bootstrapper": {"name": "mmdebstrap", "version": "1.3.5"},
        "sources": ["deb http://mirror.invalid/debian bookworm main"], "suite": "bookworm", "epoch": EPOCH,
        "release_file": {"url": "http://mirror.invalid/debian/dists/bookworm/Release", "sha256": "ab" * 32},
        "rootfs_sha256": "cd" * 32}))
    return tmp_path / f"{text}.oci.tar", info, sbom, prov


def skopeo_raw(ref: str) -> dict:
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", ref], capture_output=True, check=True)
    return json.loads(out.stdout)


def blob(registry: str, repo: str, digest: str) -> bytes:
    with urllib.request.urlopen(f"http://{registry}/v2/{repo}/blobs/{digest}") as resp:
        data = resp.read()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    return data


def test_sbom_and_provenance_are_referrers_of_the_pushed_image(registry, tmp_path):
    archive, info, sbom, prov = built(tmp_path, "attested")
    reg = {"url": registry, "tls_verify": False}
    record = attest.push_with_attestations(str(archive), reg, ["bfatt/img:1"], str(tmp_path / "push.json"),
                                           oci=[str(info)], sbom=[str(sbom)], provenance=[str(prov)])
    subject = json.loads(info.read_text())["manifest_digest"]
    assert record["digest"] == subject and len(record["attestations"][f"bfatt/img@{subject}"]) == 2

    # found with skopeo: the fallback tag lists them; each manifest names the image as its subject
    index = skopeo_raw(f"docker://{registry}/bfatt/img:{subject.replace(':', '-')}")
    assert index["mediaType"] == attest.MEDIA_INDEX
    assert sorted(d["artifactType"] for d in index["manifests"]) == [attest.SPDX, attest.INTOTO]
    docs = {}
    for desc in index["manifests"]:
        manifest = skopeo_raw(f"docker://{registry}/bfatt/img@{desc['digest']}")
        assert manifest["subject"]["digest"] == subject and manifest["artifactType"] == desc["artifactType"]
        assert manifest["config"]["mediaType"] == attest.MEDIA_EMPTY
        docs[desc["artifactType"]] = blob(registry, "bfatt/img", manifest["layers"][0]["digest"])
    assert docs[attest.SPDX] == sbom.read_bytes()
    statement = json.loads(docs[attest.INTOTO])
    assert statement["_type"] == "https://in-toto.io/Statement/v1" and statement["predicateType"] == attest.SLSA
    assert statement["subject"][0]["digest"]["sha256"] == subject.split(":")[1]
    assert statement["subject"][0]["name"] == f"{registry}/bfatt/img"
    predicate = statement["predicate"]
    assert predicate["buildDefinition"]["internalParameters"]["SOURCE_DATE_EPOCH"] == EPOCH
    materials = {m["name"]: m for m in predicate["buildDefinition"]["resolvedDependencies"]}
    assert materials["Release"]["digest"]["sha256"] == "ab" * 32 and materials["rootfs.tar"]["digest"]["sha256"] == "cd" * 32
    config_digest = json.loads(info.read_text())["image_id"]
    assert predicate["runDetails"]["byproducts"][0]["digest"]["sha256"] == config_digest.split(":")[1]
    assert predicate["runDetails"]["builder"]["id"]

    # pushing again changes nothing (the same bytes); another image in the repository gets its own list
    again = attest.push_with_attestations(str(archive), reg, ["bfatt/img:1"], str(tmp_path / "push2.json"),
                                          oci=[str(info)], sbom=[str(sbom)], provenance=[str(prov)])
    assert again["attestations"] == record["attestations"]
    assert skopeo_raw(f"docker://{registry}/bfatt/img:{subject.replace(':', '-')}") == index
    archive2, info2, sbom2, _ = built(tmp_path, "second")
    attest.push_with_attestations(str(archive2), reg, ["bfatt/img:2"], str(tmp_path / "push3.json"),
                                  oci=[str(info2)], sbom=[str(sbom2)], provenance=[str(prov)])
    assert skopeo_raw(f"docker://{registry}/bfatt/img:{subject.replace(':', '-')}") == index


def test_an_apps_statement_names_its_base_and_the_fallback_index_merges(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"manifest_digest": "sha256:" + "11" * 32}))
    materials = attest._materials({"release_file": {"url": "u", "sha256": "22" * 32}, "rootfs_sha256": "33" * 32, "cell": "c"},
                                  {"name": "ns/debian:bookworm", "manifest_digest": "sha256:" + "11" * 32})
    assert [m["name"] for m in materials] == ["Release", "base"] and materials[1]["digest"]["sha256"] == "11" * 32
    one = {"digest": "sha256:b", "mediaType": attest.MEDIA_MANIFEST, "size": 1}
    two = {"digest": "sha256:a", "mediaType": attest.MEDIA_MANIFEST, "size": 2}
    merged = json.loads(attest.referrers_index(json.loads(attest.referrers_index(None, [one])), [two, one]))
    assert [d["digest"] for d in merged["manifests"]] == ["sha256:a", "sha256:b"]
