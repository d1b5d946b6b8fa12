"""Every distribution family: presets and their bootstrappers, against repositories the tests build.

Real runs: Rocky (dnf --installroot) from a signed RPM repository, Ubuntu (mmdebstrap) from a signed apt
repository, an imported rootfs tarball; all three through the library and then the real workflow into a
real Docker Engine. Alpine has no static apk in Debian or PyPI: its argv and config are unit-tested.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import docker
import pytest
import yaml
from fixtures import repos

from baseforge import bootstrap, config, distro, pack
from baseforge.bootstrap import Bootstrapper
from baseforge.bootstrap.apk import Apk, fetch_apk
from baseforge.bootstrap.dnf import Dnf, repo_file
from baseforge.bootstrap.tarball import copy_checked
from baseforge.distro import Distro
from baseforge.errors import BaseforgeError

M = "http://mirror.invalid"


def plan(images: dict, mirrors: dict | None = None, **top):
    cfg = {"epoch": 1_700_000_000, "mirrors": mirrors or {}, "package_cache": None, "images": images, **top}
    return config.plan(cfg, resolve_epochs=False)


def one(images: dict, mirrors: dict | None = None, **top):
    (img,) = plan(images, mirrors, **top).images.values()
    return img


def members(tar: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tar) as tf:
        return {m.name: m for m in tf.getmembers()}


def read(tar: Path, name: str) -> str:
    with tarfile.open(tar) as tf:
        return tf.extractfile(name).read().decode()


# --- presets: config expansion (no root, no network) ---------------------------------------------------


def test_ubuntu_preset_sources_tags_and_os_release():
    img = one({"ubuntu": {"releases": ["noble"], "keyrings": ["ubuntu.gpg"]}}, {"ubuntu": f"{M}/ubuntu/"})
    cell = img.cell
    assert [(s.url, s.suite, s.components) for s in cell.sources] == [
        (f"{M}/ubuntu", "noble", ("main", "universe")), (f"{M}/ubuntu", "noble-updates", ("main", "universe")),
        (f"{M}/ubuntu", "noble-security", ("main", "universe"))]
    assert img.family == "debian" and cell.bootstrapper == "mmdebstrap" and cell.keyrings == ("ubuntu.gpg",)
    assert img.meta.tags == ("baseforge/ubuntu:noble", "baseforge/ubuntu:24.04", "baseforge/ubuntu:latest")
    assert img.os_release == {"ID": "ubuntu", "VERSION_CODENAME": "noble"}
    other = one({"ubuntu": {"releases": ["jammy"], "bootstrapper": "debootstrap", "components": ["main"], "keyrings": ["u.gpg"],
                            "options": {"mirror": f"{M}/ports"}}}, {"ubuntu-security": f"{M}/sec"})
    assert [(s.url, s.components) for s in other.cell.sources] == [(f"{M}/ports", ("main",))] * 2 + [(f"{M}/sec", ("main",))]
    assert other.cell.bootstrapper == "debootstrap"


def test_debian_still_defaults_to_main():
    img = one({"debian": {"releases": ["bookworm"]}}, {"archive": f"{M}/debian", "security": f"{M}/sec"})
    assert {s.components for s in img.cell.sources} == {("main",)}


@pytest.mark.parametrize("name, release, url, os_release, first_package", [
    ("fedora", "41", f"{M}/fedora/releases/41/Everything/$basearch/os/", {"ID": "fedora", "VERSION_ID": "41"}, "fedora-release-container"),
    ("rocky", "9", f"{M}/rocky/9/BaseOS/$basearch/os/", {"ID": "rocky"}, "rocky-release"),
    ("almalinux", "9", f"{M}/almalinux/9/BaseOS/$basearch/os/", {"ID": "almalinux"}, "almalinux-release"),
    ("centos-stream", "10", f"{M}/centos-stream/10-stream/BaseOS/$basearch/os/", {"ID": "centos", "VERSION_ID": "10"}, "centos-stream-release"),
])
def test_rpm_presets(name, release, url, os_release, first_package):
    img = one({name: {"releases": [release], "keyrings": ["RPM-GPG-KEY"]}}, {name: f"{M}/{name}"})
    assert img.family == "rpm" and img.cell.bootstrapper == "dnf" and img.meta.cmd == ("sh",)
    assert img.cell.sources[0].url == url and len(img.cell.sources) == 2  # + updates / AppStream
    assert img.os_release == os_release and img.cell.packages[0] == first_package


def test_alpine_preset_and_apk_argv():
    img = one({"alpine": {"releases": ["3.20"], "keyrings": ["k.rsa.pub"], "options": {"apk": "/opt/apk.static"}}},
              {"alpine": f"{M}/alpine"})
    assert img.family == "alpine" and img.os_release == {"ID": "alpine"} and img.cell.packages == ("alpine-base",)
    argv = Apk().argv(img.cell, Path("/opt/apk.static"), Path("/r"), Path("/k"), Path("/w/repositories"))
    assert argv == ["/opt/apk.static", "--root", "/r", "--initdb", "--keys-dir", "/k", "--arch", "x86_64",
                    "--repositories-file", "/w/repositories", "--update-cache", "--no-progress", "add", "--", "alpine-base"]
    arm = one({"alpine": {"releases": ["edge"], "architectures": ["arm64"], "keyrings": ["k.rsa.pub"]}}, {"alpine": f"{M}/alpine"}).cell
    assert Apk().argv(arm, Path("apk"), Path("/r"), Path("/k"), Path("/w/r"))[7:8] == ["aarch64"] and "edge/main" in arm.sources[0].url


def test_apk_needs_a_binary_keys_and_a_checksum_for_urls(tmp_path):
    cell = one({"alpine": {"releases": ["3.20"], "keyrings": ["k.rsa.pub"]}}, {"alpine": f"{M}/alpine"}).cell
    with pytest.raises(BaseforgeError, match="no static apk configured"):
        fetch_apk(cell, tmp_path)
    with pytest.raises(BaseforgeError, match="config images.alpine.options.apk_sha256: options.apk is a URL"):  # before any job
        one({"alpine": {"releases": ["3.20"], "keyrings": ["k.rsa.pub"], "options": {"apk": f"{M}/apk.static"}}},
            {"alpine": f"{M}/alpine"})


def test_a_preset_without_a_mirror_says_where_to_set_one():
    with pytest.raises(BaseforgeError) as exc:
        plan({"rocky": {"releases": ["9"], "keyrings": ["K"]}})
    assert "no mirror configured for rocky" in str(exc.value) and "mirrors: {rocky:" in str(exc.value)
    with pytest.raises(BaseforgeError, match=r"mirrors\.fedroa|Additional properties"):
        plan({"fedora": {"releases": ["41"], "keyrings": ["K"]}}, {"fedroa": M})


def test_dnf_argv_and_repo_file(tmp_path):
    cell = one({"rocky": {"releases": ["9"], "keyrings": ["keys/RPM-GPG-KEY", "https://k.invalid/K"],
                          "options": {"repo_gpgcheck": True}}}, {"rocky": f"{M}/rocky"}).cell
    argv = Dnf().argv(cell, Path("/r"), Path("/w"))
    for arg in ("--installroot=/r", "--releasever=9", "--forcearch=x86_64", "--setopt=reposdir=/w/repos.d",
                "--config=/w/dnf.conf", "--setopt=install_weak_deps=False", "--setopt=tsflags=nodocs", "--nodocs", "-y"):
        assert arg in argv
    assert argv[-len(cell.packages) - 2:] == ["install", "--", *cell.packages]
    text = repo_file(cell)
    assert "[BaseOS]\n" in text and "[AppStream]\n" in text and "baseurl=http://mirror.invalid/rocky/9/BaseOS/$basearch/os/" in text
    assert text.count("gpgcheck=1\n") == 4  # gpgcheck and repo_gpgcheck, both repositories
    assert f"gpgkey={(Path.cwd() / 'keys/RPM-GPG-KEY').as_uri()} https://k.invalid/K" in text
    with pytest.raises(BaseforgeError, match=r"images\.rocky\.keyrings: .*no keyring"):
        one({"rocky": {"releases": ["9"]}}, {"rocky": f"{M}/rocky"})


def test_tarball_preset_needs_a_source_and_a_checksum():
    with pytest.raises(BaseforgeError, match="exactly one of options.path and options.url"):
        plan({"t": {"distro": "tarball", "releases": ["1"], "options": {"sha256": "0" * 64}}})
    with pytest.raises(BaseforgeError, match="needs options.sha256"):
        plan({"t": {"distro": "tarball", "releases": ["1"], "options": {"path": "x.tar"}}})
    img = one({"t": {"distro": "tarball", "releases": ["1"], "options": {"path": "x.tar", "sha256": "0" * 64, "family": "alpine"}}})
    assert img.family == "alpine" and img.cell.bootstrapper == "tarball" and img.os_release == {}
    with pytest.raises(BaseforgeError, match=r"options\.family: 'arch' is not one of"):
        plan({"t": {"distro": "tarball", "releases": ["1"], "options": {"path": "x", "sha256": "0" * 64, "family": "arch"}}})


# --- third-party plugins: entry points of an installed distribution ---------------------------------------

PLUGIN = '''
from baseforge.bootstrap import Bootstrapper
from baseforge.distro import Distro
from baseforge.spec import Source

class Acme(Distro, name="acme"):
    family = "none"
    bootstrappers = ("acme-strap",)
    releases = {"1": "one"}
    os_id = "acme"
    def sources(self, release, mirrors, options):
        return (Source(options["mirror"], release, ()),)

class AcmeStrap(Bootstrapper, name="acme-strap"):
    def bootstrap(self, cell, out_tar, workdir):
        import tarfile, io
        with tarfile.open(out_tar, "w") as tf:
            data = b"ID=acme\\n"
            ti = tarfile.TarInfo("etc/os-release"); ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
'''


def test_third_party_plugins_from_entry_points(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "acme_baseforge-1.0.dist-info").mkdir(parents=True)
    (site / "acme_baseforge.py").write_text(PLUGIN)
    (site / "acme_baseforge-1.0.dist-info/METADATA").write_text("Metadata-Version: 2.1\nName: acme-baseforge\nVersion: 1.0\n")
    (site / "acme_baseforge-1.0.dist-info/entry_points.txt").write_text(
        "[baseforge.distros]\nacme = acme_baseforge\n\n[baseforge.bootstrappers]\nacme-strap = acme_baseforge\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(Distro, "registry", dict(Distro.registry))
    monkeypatch.setattr(Bootstrapper, "registry", dict(Bootstrapper.registry))
    monkeypatch.delitem(sys.modules, "acme_baseforge", raising=False)
    assert "acme" in distro.available() and "acme-strap" in bootstrap.available()
    img = one({"thing": {"distro": "acme", "releases": ["1"], "options": {"mirror": "http://acme.invalid"}}})
    assert img.cell.bootstrapper == "acme-strap" and img.os_release == {"ID": "acme"}
    assert img.meta.tags == ("baseforge/thing:1", "baseforge/thing:one", "baseforge/thing:latest")
    out = tmp_path / "raw.tar"
    bootstrap.build_raw(img.cell, out)
    assert read(out, "etc/os-release") == "ID=acme\n"
    sys.modules.pop("acme_baseforge", None)


# --- tarball import: what is refused ----------------------------------------------------------------------


def _tar(path: Path, entries: list[tuple[str, str, str]]) -> Path:
    """entries: (kind, name, data-or-target) with kind file|dir|sym|hard."""
    with tarfile.open(path, "w") as tf:
        for kind, name, extra in entries:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                ti.size = len(extra)
                tf.addfile(ti, io.BytesIO(extra.encode()))
                continue
            ti.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[kind]
            ti.linkname = extra
            tf.addfile(ti)
    return path


@pytest.mark.parametrize("entries, why", [
    ([("file", "../x", "evil")], "'../x' has a '..' path component"),
    ([("dir", "etc", ""), ("file", "etc/../../x", "evil")], "has a '..' path component"),
    ([("file", "/etc/passwd", "evil")], "'/etc/passwd' has an absolute path"),
    ([("sym", "etc", "/etc"), ("file", "etc/cron.d/evil", "evil")], "'etc/cron.d/evil' is written through the symlink 'etc'"),
    ([("sym", "up", "../../../etc")], "'up' is a symlink to '../../../etc', outside the root"),
    ([("dir", "a", ""), ("sym", "a/up", "../..")], "outside the root"),
    ([("hard", "passwd", "/etc/passwd")], "'passwd' is a hard link to '/etc/passwd'"),
    ([("hard", "passwd", "../../etc/passwd")], "is a hard link to '../../etc/passwd'"),
    ([("hard", "passwd", "etc/passwd")], "which is not an earlier entry"),
])
def test_malicious_tarballs_are_refused_naming_the_entry(tmp_path, entries, why):
    bad = _tar(tmp_path / "bad.tar", entries)
    with pytest.raises(BaseforgeError) as exc:
        copy_checked(bad, tmp_path / "out.tar", "bad.tar")
    assert why in str(exc.value) and "refusing to import" in str(exc.value)


def test_harmless_links_are_kept(tmp_path):
    good = _tar(tmp_path / "good.tar", [("dir", "usr", ""), ("dir", "usr/bin", ""), ("file", "usr/bin/x", "x"),
                                        ("sym", "bin", "usr/bin"), ("sym", "usr/bin/y", "../bin/x"),
                                        ("sym", "etc-mtab", "/proc/self/mounts"), ("hard", "usr/bin/z", "usr/bin/x")])
    assert copy_checked(good, tmp_path / "out.tar", "good.tar") == 7


def test_a_good_tarball_imports(tmp_path):
    src = repos.rootfs_tarball(tmp_path / "rootfs.tar.gz")
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    img = one({"t": {"distro": "tarball", "releases": ["1"], "options": {"path": str(src), "sha256": sha}}})
    bootstrap.build_raw(img.cell, tmp_path / "raw.tar")
    pack.pack(tmp_path / "raw.tar", tmp_path / "rootfs.tar", epoch=img.cell.epoch, family=img.family)
    out = members(tmp_path / "rootfs.tar")
    assert out["bin/sh"].linkname == "/usr/bin/busybox" and out["etc/os-release.link"].islnk()
    assert "ID=fixture" in read(tmp_path / "rootfs.tar", "etc/os-release")


def test_tarball_checksum_is_verified(tmp_path):
    src = repos.rootfs_tarball(tmp_path / "rootfs.tar.gz")
    img = one({"t": {"distro": "tarball", "releases": ["1"], "options": {"path": str(src), "sha256": "0" * 64}}})
    with pytest.raises(BaseforgeError, match="sha256 is [0-9a-f]{64}, the config says 0000"):
        bootstrap.build_raw(img.cell, tmp_path / "raw.tar")


# --- real bootstraps against fixture repositories ---------------------------------------------------------


@pytest.fixture(scope="module")
def keys():
    # apt verifies signatures as the _apt user: the keyrings must be readable by it, and pytest's
    # tmp_path is not (/tmp/pytest-of-root is 0700)
    where = Path(tempfile.mkdtemp(prefix="bf-keys-"))
    where.chmod(0o755)
    made = {"good": repos.make_key(where, "good"), "other": repos.make_key(where, "other")}
    yield made
    for key in made.values():
        repos.sh("gpgconf", "--homedir", key.home, "--kill", "gpg-agent")
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture(scope="module")
def rpm_mirror(tmp_path_factory, keys):
    root = repos.rpm_repo(tmp_path_factory.mktemp("rpm"), keys["good"], "rocky", "9.4", "rocky/9/BaseOS/x86_64/os",
                          empty=("rocky/9/AppStream/x86_64/os",))
    with repos.serve(root) as url:
        yield url


@pytest.fixture(scope="module")
def apt_mirror(tmp_path_factory, keys):
    root = repos.apt_repo(tmp_path_factory.mktemp("apt"), keys["good"], "ubuntu", "noble", "24.04",
                          ("noble", "noble-updates", "noble-security"))
    with repos.serve(root) as url:
        yield url


def rocky_image(url: str, key: Path, **options) -> dict:
    return {"releases": ["9"], "keyrings": [str(key)], "variants": [{"name": "default", "packages": ["fixture-shell"]}],
            "cmd": ["sh"], "options": {"mirror": f"{url}/rocky", **options}}


def ubuntu_image(url: str, key: Path) -> dict:
    # extract: unpack the .debs without running dpkg, so a two-package repository is enough
    return {"releases": ["noble"], "keyrings": [str(key)], "cmd": ["sh"], "options": {"mirror": url},
            "variants": [{"name": "default", "bootstrap_variant": "extract", "packages": ["fixture-base"]}]}


@pytest.mark.root
def test_rocky_with_dnf_from_a_signed_rpm_repository(tmp_path, rpm_mirror, keys):
    img = one({"rocky": rocky_image(rpm_mirror, keys["good"].armored, repo_gpgcheck=True)})
    bootstrap.build_raw(img.cell, tmp_path / "raw.tar")
    raw = members(tmp_path / "raw.tar")
    assert "./var/lib/rpm/rpmdb.sqlite" in raw and any(n.startswith("./var/cache/dnf/") for n in raw)
    pack.pack(tmp_path / "raw.tar", tmp_path / "rootfs.tar", epoch=img.cell.epoch, family=img.family)
    out = members(tmp_path / "rootfs.tar")
    assert "ID=rocky" in read(tmp_path / "rootfs.tar", "etc/os-release")
    assert out["usr/bin/sh"].linkname == "busybox" and "var/lib/rpm/rpmdb.sqlite" in out  # rpmdb kept
    assert not [n for n in out if n.startswith(("var/cache/dnf/", "var/log/dnf", "var/lib/dnf/history"))]
    assert {m.mtime for m in out.values()} == {img.cell.epoch}
    # rpm takes the rpmdb's install times from SOURCE_DATE_EPOCH: a second build is byte-identical
    bootstrap.build_raw(img.cell, tmp_path / "raw2.tar")
    again = pack.pack(tmp_path / "raw2.tar", tmp_path / "rootfs2.tar", epoch=img.cell.epoch, family=img.family)
    assert again.sha256 == hashlib.sha256((tmp_path / "rootfs.tar").read_bytes()).hexdigest()


@pytest.mark.root
def test_rpm_signed_by_another_key_fails(tmp_path, rpm_mirror, keys, capfd):
    img = one({"rocky": rocky_image(rpm_mirror, keys["other"].armored)})
    with pytest.raises(BaseforgeError, match=r"dnf exited with code"):
        bootstrap.build_raw(img.cell, tmp_path / "raw.tar")
    log = "".join(capfd.readouterr())
    assert "GPG check FAILED" in log and "Public key for fixture-release-9.4-1.noarch.rpm is not installed" in log
    assert not (tmp_path / "raw.tar").exists()


@pytest.mark.root
def test_ubuntu_with_mmdebstrap_from_a_signed_apt_repository(tmp_path, apt_mirror, keys):
    img = one({"ubuntu": ubuntu_image(apt_mirror, keys["good"].keyring)})
    bootstrap.build_raw(img.cell, tmp_path / "raw.tar")
    pack.pack(tmp_path / "raw.tar", tmp_path / "rootfs.tar", epoch=img.cell.epoch, family=img.family)
    assert "VERSION_CODENAME=noble" in read(tmp_path / "rootfs.tar", "etc/os-release")
    sources = read(tmp_path / "rootfs.tar", "etc/apt/sources.list")
    assert f"deb {apt_mirror} noble-security main universe" in sources
    assert "etc/apt/apt.conf.d/docker-clean" in members(tmp_path / "rootfs.tar")  # family debian: minimized


@pytest.mark.root
def test_apt_repository_signed_by_another_key_fails_clearly(tmp_path, apt_mirror, keys, capfd):
    img = one({"ubuntu": ubuntu_image(apt_mirror, keys["other"].keyring)})
    with pytest.raises(BaseforgeError, match=r"mmdebstrap exited with code"):
        bootstrap.build_raw(img.cell, tmp_path / "raw.tar")
    log = "".join(capfd.readouterr())
    assert "NO_PUBKEY" in log and "is not signed" in log


# --- the real workflow, into a real engine ----------------------------------------------------------------


@pytest.mark.root
def test_workflow_builds_rocky_ubuntu_and_a_tarball_and_smoke_tests_them(tmp_path, workflow, engine, rpm_mirror, apt_mirror, keys):
    tarball = repos.rootfs_tarball(tmp_path / "rootfs.tar.gz", os_id="fixture")
    sha = hashlib.sha256(tarball.read_bytes()).hexdigest()
    cfg = {
        "namespace": "bfdistros", "epoch": 1_700_000_000, "package_cache": None,
        "images": {
            "rocky": rocky_image(rpm_mirror, keys["good"].armored),
            "ubuntu": {**ubuntu_image(apt_mirror, keys["good"].keyring), "epoch": "release"},
            "imported": {"distro": "tarball", "releases": ["1"], "options": {"path": str(tarball), "sha256": sha},
                         "checks": ["grep -q ID=fixture /etc/os-release", "test -L /bin/sh"]},
        },
    }
    work = workflow.make(tmp_path / "work", yaml.safe_dump(cfg))
    workflow.run(work)
    client = docker.DockerClient(base_url=engine)
    for path, os_id in (("rocky/9/default/amd64", "rocky"), ("ubuntu/noble/default/amd64", "ubuntu"),
                        ("imported/1/default/amd64", None)):
        report = (work / f"build/smoke/{path}.ok").read_text()
        if os_id:
            assert "PASS\tos-release" in report, report
        rec = json.loads((work / f"build/engine/{path}.json").read_text())
        out = client.containers.run(rec["image_id"], ["cat", "/etc/os-release"], remove=True, network_mode="none")
        assert f"ID={os_id or 'fixture'}".encode() in out
    assert "PASS\tgrep -q ID=fixture /etc/os-release" in (work / "build/smoke/imported/1/default/amd64.ok").read_text()
    assert client.images.get("bfdistros/ubuntu:24.04").attrs["Created"].startswith("20")


@pytest.mark.root
@pytest.mark.parametrize("name, release, layout, empty", [
    ("fedora", "41", "fedora/releases/41/Everything/x86_64/os", ("fedora/updates/41/Everything/x86_64",)),
    ("almalinux", "9", "almalinux/9/BaseOS/x86_64/os", ("almalinux/9/AppStream/x86_64/os",)),
    ("centos-stream", "10", "centos-stream/10-stream/BaseOS/x86_64/os", ("centos-stream/10-stream/AppStream/x86_64/os",)),
])
def test_every_rpm_preset_builds_with_dnf_from_its_own_mirror_layout(tmp_path, keys, name, release, layout, empty):
    """Each RHEL-family preset, for real: its repository layout served on 127.0.0.1, dnf --installroot, pack."""
    os_id = "centos" if name == "centos-stream" else name
    root = repos.rpm_repo(tmp_path / "mirror", keys["good"], os_id, release, layout, empty=empty)
    with repos.serve(root) as url:
        img = one({name: {**rocky_image(url, keys["good"].armored), "releases": [release],
                          "options": {"mirror": f"{url}/{name}"}}})
        bootstrap.build_raw(img.cell, tmp_path / "raw.tar")
    pack.pack(tmp_path / "raw.tar", tmp_path / "rootfs.tar", epoch=img.cell.epoch, family=img.family)
    os_release = read(tmp_path / "rootfs.tar", "etc/os-release")
    for key, value in img.os_release.items():
        assert f"{key}={value}" in os_release or f'{key}="{value}"' in os_release
    out = members(tmp_path / "rootfs.tar")  # the rpmdb is kept (newer releases keep it in /usr/lib/sysimage)
    assert "var/lib/rpm/rpmdb.sqlite" in out or "usr/lib/sysimage/rpm/rpmdb.sqlite" in out
