"""manifest: the package list and SBOM read straight from a rootfs tar."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

from baseforge.manifest import Package, packages, parse_apk_installed, parse_dpkg_status, sbom, write_manifest, write_sbom

STATUS = """\
Package: libc6
Status: install ok installed
Architecture: arm64
Multi-Arch: same
Source: glibc (2.36-9+deb12u4)
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries.
 .
 Package: not-a-package

Package: removed-pkg
Status: deinstall ok config-files
Architecture: arm64
Version: 1.0

Package: bsdutils
Status: install ok installed
Architecture: arm64
Source: util-linux
Version: 1:2.38.1-5+deb12u1

Package: half
Status: install reinstreq half-installed
Architecture: arm64
Version: 2

Package: held
Status: hold ok installed
Architecture: all
Version: 0.1~rc1+b2
"""

APK = """\
C:Q1abc=
P:musl
V:1.2.4-r2
A:aarch64
o:musl
L:MIT

C:Q1def=
P:busybox
V:1.36.1-r5
A:aarch64
o:busybox
L:GPL-2.0-only
"""


def make_rootfs(path: Path, name: str, text: str) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        data = text.encode()
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    return path


def test_dpkg_status_installed_only():
    pkgs = parse_dpkg_status(STATUS)
    assert [p.name for p in pkgs] == ["bsdutils", "held", "libc6"]
    libc = pkgs[-1]
    assert libc == Package("libc6", "2.36-9+deb12u4", "arm64", "glibc")
    assert pkgs[0].source == "util-linux" and pkgs[0].version == "1:2.38.1-5+deb12u1"


def test_packages_from_tar_any_prefix(tmp_path):
    for name in ("var/lib/dpkg/status", "./var/lib/dpkg/status"):
        tar = make_rootfs(tmp_path / "rootfs.tar", name, STATUS)
        assert [p.name for p in packages(tar)] == ["bsdutils", "held", "libc6"]


def test_apk_installed(tmp_path):
    assert parse_apk_installed(APK)[0] == Package("busybox", "1.36.1-r5", "aarch64", "busybox", "GPL-2.0-only")
    tar = make_rootfs(tmp_path / "rootfs.tar", "lib/apk/db/installed", APK)
    assert [p.name for p in packages(tar)] == ["busybox", "musl"]


def test_no_database_is_empty(tmp_path):
    assert packages(make_rootfs(tmp_path / "rootfs.tar", "etc/os-release", "ID=fedora\n")) == []


def test_manifest_format(tmp_path):
    out = tmp_path / "manifest.txt"
    write_manifest(reversed(parse_dpkg_status(STATUS)), out)
    assert out.read_text() == (
        "bsdutils\t1:2.38.1-5+deb12u1\tarm64\n"
        "held\t0.1~rc1+b2\tall\n"
        "libc6\t2.36-9+deb12u4\tarm64\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.txt"]  # no temp file left


def test_sbom_deterministic_and_valid(tmp_path):
    pkgs = parse_dpkg_status(STATUS)
    a, b = tmp_path / "a.spdx.json", tmp_path / "b.spdx.json"
    write_sbom(pkgs, a, name="debian:bookworm", created=1_700_000_000, namespace_seed="cell-sha")
    write_sbom(list(reversed(pkgs)), b, name="debian:bookworm", created=1_700_000_000, namespace_seed="cell-sha")
    assert a.read_bytes() == b.read_bytes()
    doc = json.loads(a.read_text())
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    assert doc["SPDXID"] == "SPDXRef-DOCUMENT" and doc["name"] == "debian:bookworm"
    assert doc["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    assert doc["creationInfo"]["creators"][0].startswith("Tool: baseforge")
    assert re.fullmatch(r"https://\S+-[0-9a-f]{64}", doc["documentNamespace"])
    other = sbom(pkgs, name="debian:bookworm", created=1_700_000_000, namespace_seed="other")
    assert other["documentNamespace"] != doc["documentNamespace"]
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"SPDXRef-[A-Za-z0-9.-]+", i) for i in ids)
    for p in doc["packages"]:
        assert {"name", "SPDXID", "downloadLocation", "versionInfo"} <= set(p)
    purls = [r["referenceLocator"] for p in doc["packages"] for r in p["externalRefs"]]
    assert "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=arm64&upstream=glibc" in purls
    assert "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bdeb12u1?arch=arm64&upstream=util-linux" in purls
    described = {r["relatedSpdxElement"] for r in doc["relationships"] if r["relationshipType"] == "DESCRIBES"}
    assert described == set(ids)


def test_sbom_ids_unique_after_sanitizing():
    doc = sbom([Package("a+b", "1", "all"), Package("a-b", "1", "all")], name="x", created=0, namespace_seed="s")
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(set(ids)) == 2
