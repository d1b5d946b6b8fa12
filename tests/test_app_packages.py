"""Declarative apps with packages, end to end: the real archive, mmdebstrap, snakemake and a Docker Engine.

The shipped greeter (packages: [hello] on debian:bookworm), the same on the slim variant, and an app on the
greeter that adds jq (apps on apps): each is one layer on its base's exact layers, runs, lists base and
added packages in its SBOM, and a second build from scratch of the apps gives the same bytes.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import docker
import pytest

pytestmark = pytest.mark.e2e

CONFIG = """
namespace: bfpkg
epoch: release
package_cache: {cache}
images:
  debian:
    releases: [bookworm]
    variants: [default, slim]
    latest: false
apps:
{greeter}  greeter-slim:
    base: debian:bookworm-slim
    packages: [hello]
    cmd: [hello]
    expect: Hello, world!
  jqtool:
    base: greeter
    packages: [jq]
    cmd: [jq, --version]
    expect: jq-1.6
"""
APPS = ("greeter", "greeter-slim", "jqtool")


@pytest.fixture(scope="module")
def built(tmp_path_factory, engine, workflow):
    cache = tmp_path_factory.mktemp("debs")
    work = workflow.make(tmp_path_factory.mktemp("pkgs"), CONFIG.format(cache=cache, greeter=workflow.shipped_app("greeter")))
    workflow.run(work)
    return work


def manifest(archive: Path) -> dict:
    with tarfile.open(archive) as tf:
        index = json.load(tf.extractfile("index.json"))
        return json.load(tf.extractfile("blobs/" + index["manifests"][0]["digest"].replace(":", "/")))


def top_layer(archive: Path) -> list[str]:
    import gzip

    with tarfile.open(archive) as tf:
        blob = tf.extractfile("blobs/" + manifest(archive)["layers"][-1]["digest"].replace(":", "/"))
        with tarfile.open(fileobj=gzip.GzipFile(fileobj=blob)) as layer:
            return layer.getnames()


def test_each_app_is_one_layer_on_its_bases_exact_layers(built):
    deb = manifest(built / "build/oci/debian/bookworm/default/amd64.oci.tar")["layers"]
    greeter = manifest(built / "build/apps/greeter.oci.tar")["layers"]
    jqtool = manifest(built / "build/apps/jqtool.oci.tar")["layers"]
    assert greeter[:-1] == deb and jqtool[:-1] == greeter
    names = top_layer(built / "build/apps/greeter.oci.tar")
    assert "usr/bin/hello" in names and "var/lib/dpkg/status" in names
    # normalized like a base: no apt lists or caches, no logs with the build's date, no host resolv.conf
    assert not [n for n in names if n.startswith(("var/lib/apt/lists/", "var/cache/apt/", "var/log/", "etc/resolv.conf"))]
    # slim: dpkg's path-excludes of the base kept the docs and man pages out
    slim = top_layer(built / "build/apps/greeter-slim.oci.tar")
    assert "usr/bin/hello" in slim and not [n for n in slim if n.startswith("usr/share/man/")]
    assert [n for n in names if n.startswith("usr/share/man/")]


def test_the_apps_run_and_their_sboms_list_base_and_added_packages(built, engine):
    client = docker.DockerClient(base_url=engine)
    assert b"Hello, world!" in client.containers.run("bfpkg/greeter", remove=True, network_mode="none")
    assert b"jq-1.6" in client.containers.run("bfpkg/jqtool", remove=True, network_mode="none")
    record = json.loads((built / "build/engine/apps/jqtool.json").read_text())
    assert record["image_id"] == json.loads((built / "build/apps/jqtool.json").read_text())["image_id"]
    names = {p["name"] for p in json.loads((built / "build/apps/jqtool.spdx.json").read_text())["packages"]}
    assert {"bash", "dpkg", "hello", "jq", "libjq1"} <= names
    names = {p["name"] for p in json.loads((built / "build/apps/greeter.spdx.json").read_text())["packages"]}
    assert "hello" in names and "jq" not in names


def test_a_second_build_of_the_apps_gives_the_same_bytes(built, workflow):
    first = {a: (built / f"build/apps/{a}.oci.tar").read_bytes() for a in APPS}
    for a in APPS:
        (built / f"build/apps/{a}.oci.tar").unlink()
    workflow.run(built, *(f"build/apps/{a}.oci.tar" for a in APPS))
    for a in APPS:
        assert (built / f"build/apps/{a}.oci.tar").read_bytes() == first[a], a
