"""Multi-arch under qemu-user, and publishing image indexes to a real registry (docker-registry on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
import subprocess

import docker
import pytest

pytestmark = pytest.mark.e2e

CONFIG = """
namespace: bfpub
package_cache: {cache}
registry:
  url: {registry}
  tls_verify: false
images:
  busybox:
    releases: [bookworm]
    architectures: [amd64, arm64]
    cmd: [sh]
    checks: ["busybox --help >/dev/null"]
apps:
{hello}  note:
    dockerfile: apps/note
    expect: built by docker
"""


@pytest.fixture(scope="module")
def published(tmp_path_factory, engine, registry, workflow):
    work = tmp_path_factory.mktemp("pub")
    (work / "apps/note").mkdir(parents=True)
    (work / "apps/note/Dockerfile").write_text(
        "FROM bfpub/busybox:bookworm\nRUN echo built by docker > /note\nCMD [\"cat\", \"/note\"]\n")
    workflow.make(work, CONFIG.format(cache=tmp_path_factory.mktemp("debs"), registry=registry,
                                     hello=workflow.shipped_app("hello")))
    workflow.run(work)
    return work


def skopeo_raw(ref: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", ref], check=True, capture_output=True).stdout


def test_foreign_image_says_arm64_and_runs_under_qemu(published, engine):
    client = docker.DockerClient(base_url=engine)
    info = json.loads((published / "build/oci/busybox/bookworm/default/arm64.json").read_text())
    attrs = client.images.get("bfpub/busybox:bookworm-arm64").attrs
    assert attrs["Id"] == info["image_id"]
    assert (attrs["Architecture"], attrs.get("Variant")) == ("arm64", "v8")
    out = client.containers.run("bfpub/busybox:bookworm-arm64", ["uname", "-m"], remove=True, network_mode="none")
    assert out.strip() == b"aarch64"
    assert "PASS\tuname -m" in (published / "build/smoke/busybox/bookworm/default/arm64.ok").read_text()


def test_registry_holds_the_index_with_both_architectures(published, registry):
    index_raw = skopeo_raw(f"docker://{registry}/bfpub/busybox:bookworm")
    index = json.loads(index_raw)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    platforms = sorted((m["platform"]["architecture"], m["platform"].get("variant", "")) for m in index["manifests"])
    assert platforms == [("amd64", ""), ("arm64", "v8")]
    record = json.loads((published / "build/push/busybox/bookworm/default.json").read_text())
    assert record["digest"] == "sha256:" + hashlib.sha256(index_raw).hexdigest()
    # every per-arch manifest is the one written on disk
    for arch in ("amd64", "arm64"):
        local = json.loads((published / f"build/oci/busybox/bookworm/default/{arch}.json").read_text())
        assert local["manifest_digest"] in {m["digest"] for m in index["manifests"]}
    assert skopeo_raw(f"docker://{registry}/bfpub/busybox:latest") == index_raw
    app = json.loads(skopeo_raw(f"docker://{registry}/bfpub/hello:latest"))
    local = json.loads((published / "build/apps/hello.json").read_text())
    assert app["config"]["digest"] == local["image_id"]
    built = json.loads(skopeo_raw(f"docker://{registry}/bfpub/note:latest"))
    engine_id = json.loads((published / "build/engine/apps/note.json").read_text())["image_id"]
    assert built["config"]["digest"] == engine_id


def test_pushing_the_same_digest_again_is_a_no_op(published, workflow):
    for record in (published / "build/push").rglob("*.json"):
        record.unlink()
    workflow.run(published)
    record = json.loads((published / "build/push/busybox/bookworm/default.json").read_text())
    assert record["pushed"] == [] and set(record["unchanged"]) == {"bfpub/busybox:bookworm", "bfpub/busybox:latest"}
    for app in ("hello", "note"):
        record = json.loads((published / f"build/push/apps/{app}.json").read_text())
        assert record["pushed"] == [] and record["unchanged"] == [f"bfpub/{app}:latest"]


def test_each_pushed_image_has_its_sbom_and_provenance_as_referrers(published, registry):
    """baseforge.attest: per architecture, and for each app (declarative or buildah), the sha256-<digest> tag."""
    subjects = {"bfpub/busybox": [f"build/oci/busybox/bookworm/default/{a}.json" for a in ("amd64", "arm64")],
                "bfpub/hello": ["build/apps/hello.json"], "bfpub/note": ["build/apps/note.json"]}
    for repo, infos in subjects.items():
        for info in infos:
            digest = json.loads((published / info).read_text())["manifest_digest"]
            index = json.loads(skopeo_raw(f"docker://{registry}/{repo}:{digest.replace(':', '-')}"))
            assert sorted(d["artifactType"] for d in index["manifests"]) == ["application/spdx+json",
                                                                             "application/vnd.in-toto+json"], info
            for desc in index["manifests"]:
                manifest = json.loads(skopeo_raw(f"docker://{registry}/{repo}@{desc['digest']}"))
                assert manifest["subject"]["digest"] == digest
