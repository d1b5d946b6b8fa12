"""Distroless variants: dependency resolution, the generated files, config, manifest (no root, no network),
and end to end: the real archive, the real workflow and engine, a static and a dynamic app, built twice."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest

from baseforge import config, manifest
from baseforge.bootstrap import distroless as dl
from baseforge.errors import BaseforgeError

PACKAGES = """\
Package: base-files
Version: 12.4
Architecture: arm64
Essential: yes
Pre-Depends: awk

Package: mawk
Version: 1.3.4
Architecture: arm64
Provides: awk

Package: libc6
Version: 2.36-9
Architecture: arm64
Depends: libgcc-s1
Recommends: libidn2-0

Package: libc6
Version: 2.36-9+deb12u4
Architecture: arm64
Depends: libgcc-s1

Package: libc6
Version: 2.36-9
Architecture: amd64
Depends: not-for-arm64

Package: libgcc-s1
Version: 12.2.0-14
Architecture: arm64
Depends: gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)

Package: gcc-12-base
Version: 12.2.0-14
Architecture: arm64

Package: gcc-12-base
Version: 12.3.0-1
Architecture: arm64

Package: libidn2-0
Version: 2.3.3
Architecture: arm64

Package: tzdata
Version: 2024a
Architecture: all
Depends: debconf (>= 0.5) | debconf-2.0

Package: debconf
Version: 1.5.82
Architecture: all
Pre-Depends: perl-base

Package: perl-base
Version: 5.36
Architecture: arm64
Essential: yes

Package: ca-certificates
Version: 20230311
Architecture: all
Depends: openssl (>= 1.1.1), debconf (>= 0.5) | debconf-2.0

Package: openssl
Version: 3.0.11
Architecture: arm64

Package: app
Version: 1.0
Architecture: arm64
Depends: mail-transport-agent, coreutils, libfoo [amd64], libbar [!amd64], logger | bsdutils

Package: postfix
Version: 3.7
Architecture: arm64
Provides: mail-transport-agent

Package: exim4
Version: 4.96
Architecture: arm64
Provides: mail-transport-agent

Package: coreutils
Version: 9.1
Architecture: arm64
Essential: yes

Package: libbar
Version: 1
Architecture: arm64

Package: bsdutils
Version: 2.38
Architecture: arm64

Package: needs-missing
Version: 1
Architecture: arm64
Depends: nowhere (>= 2) | neither
"""


def resolve(*names: str) -> dict[str, str]:
    return {n: p["Version"] for n, p in dl.resolve(dl.Index([PACKAGES], "arm64"), list(names)).items()}


def test_depends_and_pre_depends_are_followed_with_the_newest_version_that_fits_and_no_recommends():
    assert resolve("libc6") == {"base-files": "12.4", "libc6": "2.36-9+deb12u4", "libgcc-s1": "12.2.0-14",
                                "gcc-12-base": "12.2.0-14"}  # (= 12.2.0-14), not the newer 12.3.0-1


def test_install_time_dependencies_are_not_followed():
    # tzdata's debconf group, ca-certificates' openssl, base-files' awk: only maintainer scripts use them
    assert resolve("tzdata", "ca-certificates") == {"base-files": "12.4", "ca-certificates": "20230311", "tzdata": "2024a"}
    assert set(resolve("tzdata", "debconf")) == {"base-files", "tzdata", "debconf"}  # unless named


def test_virtual_packages_alternatives_arch_restrictions_and_essential():
    got = resolve("app")
    assert got["exim4"] == "4.96" and "postfix" not in got  # providers in name order, one only
    assert "libbar" in got and "libfoo" not in got  # [!amd64] applies on arm64, [amd64] does not
    assert "coreutils" not in got  # Essential: yes comes only when named
    assert "bsdutils" in got  # logger has no candidate: the second alternative
    assert "postfix" in resolve("app", "postfix")
    assert "exim4" not in resolve("app", "postfix")  # an alternative already chosen satisfies the group


def test_unknown_and_unsatisfiable_packages_are_named():
    with pytest.raises(BaseforgeError, match="distroless package 'nope' is not in the arm64 indices"):
        resolve("nope")
    with pytest.raises(BaseforgeError, match=r"needs-missing needs nowhere \(>= 2\) \| neither"):
        resolve("needs-missing")


def test_ca_bundle_status_record_and_dropped_paths():
    assert dl.ca_bundle({"b/2.crt": b"TWO", "a/1.crt": b"ONE\n"}) == b"ONE\nTWO\n"
    record = dl.status_record("Package: x\nVersion: 1\nArchitecture: all\nDescription: d\n more\n")
    assert record.splitlines()[:3] == ["Package: x", "Status: install ok installed", "Version: 1"]
    assert manifest.parse_dpkg_status(record)[0].name == "x"
    assert dl.dropped("usr/share/doc/x/changelog.gz") and not dl.dropped("usr/share/doc/x/copyright")
    assert dl.dropped("usr/share/man/man1/x.1.gz") and not dl.dropped("usr/share/zoneinfo/UTC")


def test_manifest_reads_status_d_records(tmp_path):
    tar = tmp_path / "r.tar"
    with tarfile.open(tar, "w") as tf:
        for name, text in {"var/lib/dpkg/status.d/libc6": dl.status_record("Package: libc6\nVersion: 2\nArchitecture: arm64\n"),
                           "var/lib/dpkg/status.d/libc6.md5sums": "abc  lib/x\n",
                           "var/lib/dpkg/status.d/tzdata": dl.status_record("Package: tzdata\nVersion: 1\nArchitecture: all\n")}.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(text.encode())
            tf.addfile(ti, io.BytesIO(text.encode()))
    assert [(p.name, p.version, p.arch) for p in manifest.packages(tar)] == [("libc6", "2", "arm64"), ("tzdata", "1", "all")]


CFG = {"mirrors": {"archive": "http://mirror.invalid/debian", "security": "http://mirror.invalid/debian-security"},
       "epoch": 1700000000}


def test_config_makes_a_distroless_cell_without_shell_or_the_images_checks():
    p = config.plan({**CFG, "images": {"debian": {
        "releases": ["bookworm"], "checks": ["apt-get --version"],
        "variants": ["default", {"name": "static", "distroless": ["netbase"], "checks": [["/nothing"]]}]}}},
        resolve_epochs=False)
    img = p.images["debian/bookworm/static/amd64"]
    assert (img.cell.bootstrapper, img.cell.packages, img.family, img.meta.cmd) == ("distroless", ("netbase",), "none", ())
    assert img.checks == (["/nothing"],) and img.raw_key.startswith("distroless-")
    assert img.meta.tags == ("baseforge/debian:bookworm-static", "baseforge/debian:12-static")
    assert p.images["debian/bookworm/default/amd64"].checks == ("apt-get --version",)


@pytest.mark.parametrize(("images", "message"), [
    ({"bb": {"distro": "busybox", "releases": ["bookworm"], "variants": [{"name": "s", "distroless": ["netbase"]}]}},
     r"images.bb.variants\[0\].distroless: distroless variants are made of Debian packages"),
    ({"debian": {"releases": ["bookworm"], "variants": [{"name": "s", "distroless": ["netbase"], "packages": ["curl"]}]}},
     r"images.debian.variants\[0\]: distroless: names the whole package set; packages cannot go with it"),
    ({"debian": {"releases": ["bookworm"], "variants": [{"name": "s", "distroless": ["Bad Name"]}]}},
     r"images.debian.variants\[0\].distroless\[0\]"),
])
def test_bad_distroless_config_is_refused_before_any_job(images, message):
    with pytest.raises(BaseforgeError, match=message):
        config.plan({**CFG, "images": images}, resolve_epochs=False)


# --- end to end ----------------------------------------------------------------------------------------

E2E = """
namespace: bfdl
epoch: release
package_cache: {cache}
images:
  distroless:
    distro: debian
    releases: [bookworm]
    variants:
      - {{name: static, distroless: [base-files, netbase, tzdata, ca-certificates]}}
      - {{name: base, distroless: [base-files, netbase, tzdata, ca-certificates, libc6, libssl3]}}
apps:
{apps}"""


@pytest.fixture(scope="module")
def built(tmp_path_factory, engine, workflow):
    apps = workflow.shipped_app("hello-static") + workflow.shipped_app("hello-dynamic")
    text = E2E.format(cache=tmp_path_factory.mktemp("debs"), apps=apps)
    work = workflow.make(tmp_path_factory.mktemp("distroless"), text)
    workflow.run(work)
    return work


def members(tar: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tar) as tf:
        return {m.name: m for m in tf.getmembers()}


@pytest.mark.e2e
def test_distroless_images_run_a_static_and_a_dynamic_app_and_have_no_shell(built, engine):
    for name in ("static", "base"):
        assert "PASS\tos-release" in (built / f"build/smoke/distroless/bookworm/{name}/amd64.ok").read_text()
    for app in ("hello-static", "hello-dynamic"):
        assert "PASS\tdefault command output" in (built / f"build/smoke/apps/{app}.ok").read_text()
    client = docker.DockerClient(base_url=engine)
    for tag in ("bfdl/distroless:bookworm-static", "bfdl/distroless:bookworm-base"):
        with pytest.raises(docker.errors.APIError, match="executable file not found"):
            client.containers.run(tag, ["sh", "-c", "true"], remove=True, network_mode="none")
    # the dynamic program really is dynamic: it names the loader of the base variant
    from baseforge.smoketest import read_file

    record = json.loads((built / "build/engine/apps/hello-dynamic.json").read_text())
    assert b"/lib64/ld-linux-x86-64.so.2" in read_file(client, record["image_id"], "/hello")
    assert read_file(client, record["image_id"], "/etc/os-release").startswith(b'PRETTY_NAME="Debian GNU/Linux 12')


@pytest.mark.e2e
def test_distroless_tree_manifest_and_sbom(built):
    rootfs = built / "build/rootfs/distroless/bookworm"
    static, base = members(rootfs / "static/amd64/rootfs.tar"), members(rootfs / "base/amd64/rootfs.tar")
    for tree in (static, base):
        assert not any(n in tree for n in ("bin/sh", "usr/bin/sh", "usr/bin/dpkg", "usr/bin/apt-get", "bin/bash"))
        assert tree["tmp"].mode == 0o1777 and (tree["home/nonroot"].uid, tree["home/nonroot"].mode) == (65532, 0o700)
        assert tree["etc/ssl/certs/ca-certificates.crt"].size > 100_000
        assert not any(n.startswith("usr/share/man/") or n.endswith("changelog.Debian.gz") for n in tree)
    assert "lib64/ld-linux-x86-64.so.2" in base and "lib64/ld-linux-x86-64.so.2" not in static
    with tarfile.open(rootfs / "static/amd64/rootfs.tar") as tf:
        passwd = tf.extractfile("etc/passwd").read().decode()
        bundle = tf.extractfile("etc/ssl/certs/ca-certificates.crt").read().decode()
    assert "nonroot:x:65532:65532:" in passwd and passwd.startswith("root:x:0:0:")
    assert bundle.count("BEGIN CERTIFICATE") > 100
    listed = [line.split("\t")[0] for line in (rootfs / "static/amd64/manifest.tsv").read_text().splitlines()]
    assert listed == ["base-files", "ca-certificates", "netbase", "tzdata"]
    assert sorted(n.rsplit("/", 1)[1] for n in static if n.startswith("var/lib/dpkg/status.d/") and not n.endswith(".md5sums")
                  and static[n].isfile()) == listed
    sbom = json.loads((rootfs / "base/amd64/sbom.spdx.json").read_text())
    names = {p["name"] for p in sbom["packages"]}
    assert {"libc6", "libssl3", "libgcc-s1", "gcc-12-base"} <= names and not names & {"openssl", "debconf", "mawk", "dpkg"}
    assert names == {line.split("\t")[0] for line in (rootfs / "base/amd64/manifest.tsv").read_text().splitlines()}


@pytest.mark.e2e
def test_distroless_cells_are_byte_reproducible(built, tmp_path, workflow):
    other = workflow.make(tmp_path, (built / "config/config.yaml").read_text())
    targets = [f"build/oci/distroless/bookworm/{v}/amd64.oci.tar" for v in ("static", "base")]
    # a private package cache, so the second build downloads every package again
    workflow.run(other, *targets, "--config", f"package_cache={tmp_path / 'debs'}")
    for v in ("static", "base"):
        a = built / f"build/rootfs/distroless/bookworm/{v}/amd64/rootfs.tar"
        b = other / f"build/rootfs/distroless/bookworm/{v}/amd64/rootfs.tar"
        assert subprocess.run(["cmp", a, b]).returncode == 0, v
        ja, jb = (json.loads((w / f"build/oci/distroless/bookworm/{v}/amd64.json").read_text()) for w in (built, other))
        assert (ja["image_id"], ja["manifest_digest"]) == (jb["image_id"], jb["manifest_digest"])


# --- signatures, against a signed repository the tests make (no mirror needed) ---------------------------


@pytest.fixture(scope="module")
def signed_repo(tmp_path_factory):
    import shutil
    import tempfile

    from fixtures import repos

    where = Path(tempfile.mkdtemp(prefix="bf-dlkeys-"))
    where.chmod(0o755)
    keys = {"good": repos.make_key(where, "good"), "other": repos.make_key(where, "other")}
    root = repos.apt_repo(tmp_path_factory.mktemp("apt"), keys["good"], "ubuntu", "noble", "24.04", ("noble",), ("main",))
    with repos.serve(root) as url:
        yield url, keys
    for key in keys.values():
        repos.sh("gpgconf", "--homedir", key.home, "--kill", "gpg-agent")
    shutil.rmtree(where, ignore_errors=True)


def fixture_cell(url: str, keyring: Path):
    from baseforge.spec import CellSpec, Source

    return CellSpec(image="u", distro="ubuntu", release="noble", variant="static", arch="amd64", bootstrapper="distroless",
                    sources=(Source(url, "noble", ("main",)),), packages=("fixture-base",), keyrings=(str(keyring),),
                    epoch=1700000000)


@pytest.mark.root
def test_distroless_verifies_the_index_signature_and_builds_from_the_packages_data(signed_repo, tmp_path):
    from baseforge.bootstrap import build_raw

    url, keys = signed_repo
    with pytest.raises(BaseforgeError, match="apt-get update"):
        build_raw(fixture_cell(url, keys["other"].keyring), tmp_path / "bad.tar")
    assert not (tmp_path / "bad.tar").exists() and not list(tmp_path.iterdir())
    build_raw(fixture_cell(url, keys["good"].keyring), tmp_path / "good.tar")
    tree = members(tmp_path / "good.tar")
    assert {"etc/os-release", "usr/bin/busybox", "var/lib/dpkg/status.d/fixture-base", "etc/passwd"} <= set(tree)
    assert tree["tmp"].mode == 0o1777 and "etc/ssl/certs/ca-certificates.crt" not in tree
    assert [p.name for p in manifest.packages(tmp_path / "good.tar")] == ["fixture-base"]


@pytest.mark.root
def test_distroless_downloads_with_the_cells_apt_config_from_a_relative_work_directory(signed_repo, tmp_path, monkeypatch):
    """As the workflow runs it: the output under build/ relative to the work directory. apt-get download runs in
    the download folder; a relative APT_CONFIG there is unreadable and apt falls back to the host's own
    configuration (its architecture and sources: amd64 packages for an arm64 cell, nothing from this repository)."""
    from baseforge.bootstrap import build_raw

    url, keys = signed_repo
    monkeypatch.chdir(tmp_path)
    (tmp_path / "build/raw").mkdir(parents=True)
    build_raw(fixture_cell(url, keys["good"].keyring), Path("build/raw/good.tar"))
    assert [p.name for p in manifest.packages(tmp_path / "build/raw/good.tar")] == ["fixture-base"]


def test_an_app_on_a_distroless_base_lists_the_bases_packages_in_its_sbom(tmp_path):
    """A distroless base has no dpkg status file, only status.d records: an app on it (a layer of its own, and
    one that deletes a record) lists what the layers leave, not nothing."""
    import io
    import tarfile

    from baseforge.app import installed
    from baseforge.oci import write_image
    from baseforge.spec import ImageMeta

    def layer(name: str, files: dict[str, str]) -> Path:
        path = tmp_path / f"{name}.tar"
        with tarfile.open(path, "w") as tf:
            for member, text in files.items():
                info = tarfile.TarInfo(member)
                info.size = len(text.encode())
                tf.addfile(info, io.BytesIO(text.encode()))
        return path

    record = "Package: {0}\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n"
    base = layer("base", {f"var/lib/dpkg/status.d/{p}": record.format(p) for p in ("base-files", "libc6", "tzdata")}
                 | {"var/lib/dpkg/status.d/libc6.md5sums": "x\n"})
    meta = ImageMeta(title="d", version="1", created=1, arch="amd64", tags=("d:1",))
    write_image(tmp_path / "base.oci.tar", [base], meta)
    app = [layer("app", {"hello": "hi"}), layer("drop", {"var/lib/dpkg/status.d/.wh.tzdata": ""})]
    write_image(tmp_path / "app.oci.tar", app, meta, base=tmp_path / "base.oci.tar")
    assert [p.name for p in installed(tmp_path / "app.oci.tar")] == ["base-files", "libc6"]
