"""Trust: a table of attacks, each refused before any job runs with a message naming the field; signatures
always on unless ``insecure: true``; the private engine. What pack removes, tarball imports and the build
host's umask and xattrs: tests/test_trust_host.py; credentials: tests/test_credentials.py; the app
sandbox: tests/test_sandbox.py."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from baseforge import config
from baseforge.bootstrap import get as get_bootstrapper
from baseforge.bootstrap.dnf import repo_file
from baseforge.bootstrap.mmdebstrap import Mmdebstrap
from baseforge.errors import BaseforgeError

EPOCH = 1_700_000_000
M = "http://mirror.invalid"


def plan(images: dict, mirrors: dict | None = None, apps: dict | None = None, workdir: Path = Path(".")):
    cfg = {"epoch": EPOCH, "mirrors": mirrors or {}, "package_cache": None, "images": images, "apps": apps or {}}
    return config.plan(cfg, workdir, resolve_epochs=False)


def debian(**spec) -> dict:
    return {"debian": {"releases": ["bookworm"], **spec}}


# --- the table of attacks: refused at plan time, naming the field ------------------------------------------

ATTACKS = [
    (debian(packages=["--nogpgcheck"]), None, "images.debian.packages[0]"),
    (debian(packages=["--allow-untrusted"]), None, "images.debian.packages[0]"),
    (debian(packages=["curl", "foo;rm -rf /"]), None, "images.debian.packages[1]"),
    (debian(packages=["-o APT::Get::AllowUnauthenticated=true"]), None, "images.debian.packages[0]"),
    (debian(packages=["curl\n"]), None, "images.debian.packages[0]"),
    (debian(packages=["$(id)"]), None, "images.debian.packages[0]"),
    (debian(variants=[{"name": "x", "packages": ["--nogpgcheck"]}]), None, "images.debian.variants[0]"),
    (debian(variants=[{"name": "x", "bootstrap_variant": "minbase --include=evil"}]), None, "images.debian.variants[0]"),
    (debian(variants=[{"name": "x", "bootstrap_variant": "everything"}]), None, "images.debian.variants[0].bootstrap_variant"),
    (debian(), {"archive": f"{M}/debian\n"}, "mirrors.archive"),
    (debian(), {"archive": f"{M}/debian bookworm main\ndeb {M}/evil"}, "mirrors.archive"),
    (debian(), {"archive": f"[trusted=yes] {M}/debian"}, "mirrors.archive"),
    (debian(), {"archive": f"{M}/[trusted=yes]"}, "mirrors.archive"),
    (debian(), {"security": f"{M}/x\r"}, "mirrors.security"),
    (debian(), {"archive": "ftp://mirror.invalid/debian"}, "mirrors.archive"),
    (debian(), {"archive": f"{M}/de\x00bian"}, "mirrors.archive"),
    ({"ubuntu": {"releases": ["noble"], "keyrings": ["k.gpg"], "options": {"mirror": f"{M}/u\n"}}}, None, "images.ubuntu.options.mirror"),
    ({"ubuntu": {"releases": ["noble"], "keyrings": ["k.gpg"], "options": {"mirror": f"{M}/u", "security_mirror": f"{M} [trusted=yes]"}}},
     None, "images.ubuntu.options.security_mirror"),
    (debian(components=["main contrib"]), None, "images.debian.components[0]"),
    (debian(components=["main", "-o"]), None, "images.debian.components[1]"),
    (debian(keyrings=["--keyring=/etc/x"]), None, "images.debian.keyrings[0]"),
    (debian(keyrings=["a b.gpg"]), None, "images.debian.keyrings[0]"),
    (debian(aliases={"bookworm": ["x y"]}), None, "images.debian.aliases.bookworm[0]"),
    (debian(options={"gpgcheck": False}), None, "images.debian.options"),
    (debian(options={"mode": "root --customize-hook=evil"}), None, "images.debian.options.mode"),
    ({"t": {"distro": "tarball", "releases": ["1;rm"], "options": {"path": "x.tar", "sha256": "0" * 64}}}, None, "images.t.releases[0]"),
    ({"t": {"distro": "tarball", "releases": ["1"], "options": {"path": "--checkpoint-action=exec=sh", "sha256": "0" * 64}}},
     None, "images.t.options.path"),
    ({"ubuntu": {"releases": ["noble"]}}, {"ubuntu": M}, "images.ubuntu.keyrings"),
    ({"rocky": {"releases": ["9"]}}, {"rocky": M}, "images.rocky.keyrings"),
    ({"alpine": {"releases": ["3.20"]}}, {"alpine": M}, "images.alpine.keyrings"),
    (debian(insecure="yes"), None, "images.debian.insecure"),
    (debian(releases=["bookworm/../x"]), None, "images.debian.releases[0]"),
    (debian(labels={"x=1\nUSER root\nLABEL y": "v"}), None, "images.debian.labels"),
    (debian(labels={"io.baseforge.insecure": "false"}), None, "images.debian.labels"),  # baseforge's own label
    (debian(labels={"IO.Baseforge.insecure": "false"}), None, "images.debian.labels"),  # reads the same to a person
    # no NUL byte in free text: no command line or image config carries one (else a crash, not a refusal)
    (debian(env={"A": "x\x00y"}), None, "images.debian.env.A"), (debian(cmd=["sh\x00"]), None, "images.debian.cmd[0]"),
    (debian(checks=["true\x00"]), None, "images.debian.checks[0]"), (debian(labels={"a": "\x00"}), None, "images.debian.labels.a"),
    (debian(), {"archive": "http://m.invalid:abc/debian"}, "mirrors.archive"),
    (debian(), {"archive": "http:///debian"}, "mirrors.archive"),
    (debian(), {"archive": f"{M}/debian#x"}, "mirrors.archive"),  # '#' starts a comment in a sources line
    # a keyring fetched over plain http (or holding a password) makes every signature check mean nothing
    ({"rocky": {"releases": ["9"], "keyrings": ["http://m.invalid/RPM-GPG-KEY"]}}, {"rocky": M}, "images.rocky.keyrings[0]"),
    ({"rocky": {"releases": ["9"], "keyrings": ["https://bob:s3cr@m.invalid/K"]}}, {"rocky": M}, "images.rocky.keyrings[0]"),
    ({"rocky": {"releases": ["9"], "keyrings": ["K"], "options": {"rpmdb": "/../../etc"}}}, {"rocky": M}, "images.rocky.options.rpmdb"),
    # apk.static runs as root: a URL needs its sha256 before any job; apk keys are copied into the image
    ({"alpine": {"releases": ["3.20"], "keyrings": ["k.rsa.pub"], "options": {"apk": f"{M}/apk.static"}}}, {"alpine": M},
     "images.alpine.options.apk_sha256"),
    ({"alpine": {"releases": ["3.20"], "keyrings": ["/etc/shadow"]}}, {"alpine": M}, "images.alpine.keyrings[0]"),
    # only dnf fetches a keyring URL itself: apt, debootstrap and apk would fail (or copy nothing) mid-job
    (debian(keyrings=["https://m.invalid/debian-archive-keyring.gpg"]), None, "images.debian.keyrings[0]"),
    ({"alpine": {"releases": ["3.20"], "keyrings": ["https://m.invalid/k.rsa.pub"]}}, {"alpine": M}, "images.alpine.keyrings[0]"),
]

#: URLs whose password ("s3cr") a careless parser leaves in the URL (and so on command lines and in logs)
SECRET_URLS = [
    ({"archive": "http://bob:pa/s3cr@mirror.invalid/debian"}, "mirrors.archive"),  # '/' in a password: not a port
    ({"archive": "http://bob:12/s3cr@mirror.invalid/debian"}, "mirrors.archive"),  # … even when it reads as one
    ({"archive": "http://bob:p#s3cr@mirror.invalid/debian"}, "mirrors.archive"),
    ({"archive": "http://bob:p?s3cr@mirror.invalid/debian"}, "mirrors.archive"),
    ({"archive": "http://bob:s3cr@x@mirror.invalid/debian"}, "mirrors.archive"),  # two '@'
    ({"archive": "http://bob:s3cr@mirror.invalid/deb ian"}, "mirrors.archive"),  # refused by the schema: not quoted
    ({"snapshot": "http://bob:s3cr@mirror.invalid/a rchive"}, "mirrors.snapshot"),
    ({"archive": {"url": "http://bob:s3cr@mirror.invalid/debian"}}, "mirrors.archive"),  # a mapping: not quoted either
]


@pytest.mark.parametrize("images, mirrors, field", ATTACKS)
def test_attack_is_refused_at_plan_time_naming_the_field(images, mirrors, field):
    with pytest.raises(BaseforgeError) as exc:
        plan(images, mirrors)
    assert f"config {field}" in str(exc.value)


@pytest.mark.parametrize("mirrors, field", SECRET_URLS)
def test_a_url_that_hides_its_password_is_refused_without_showing_it(mirrors, field):
    with pytest.raises(BaseforgeError) as exc:
        plan(debian(), mirrors)
    assert f"config {field}" in str(exc.value) and "s3cr" not in str(exc.value)


@pytest.mark.parametrize("images, where", [
    ({"t": {"distro": "tarball", "releases": ["1"], "options": {"url": "https://bob:s3cr@m.invalid/r t.tgz", "sha256": "0" * 64}}},
     "images.t.options.url"),
    ({"ubuntu": {"releases": ["noble"], "keyrings": ["k.gpg"], "options": {"mirror": "http://bob:s/3cr@m.invalid/u"}}},
     "images.ubuntu.options.mirror"),
])
def test_image_urls_that_hide_a_password_are_refused_without_showing_it(images, where):
    with pytest.raises(BaseforgeError) as exc:
        plan(images)
    assert f"config {where}" in str(exc.value) and "3cr" not in str(exc.value)


def test_a_mirror_from_the_host_apt_sources_is_held_to_the_same_shape(monkeypatch):
    """The default Debian mirror comes from the host's apt sources: a URL there that hides a password is
    refused too, without showing it."""
    from baseforge import mirror

    monkeypatch.setattr(mirror, "default_mirrors", lambda root=None: {"archive": "http://bob:pa/s3cr@mirror.invalid/debian",
                                                                     "security": f"{M}/security"})
    with pytest.raises(BaseforgeError) as exc:
        plan(debian())
    assert "config images.debian (a mirror of bookworm" in str(exc.value) and "s3cr" not in str(exc.value)


def test_tls_verify_false_warns_on_every_run(capsys):
    for _ in range(2):
        config.plan({"epoch": EPOCH, "images": debian(), "registry": {"url": "registry.invalid", "tls_verify": False}},
                    resolve_epochs=False)
        assert "WARNING: registry.tls_verify is false" in capsys.readouterr().err


@pytest.mark.parametrize("top, field", [
    ({"package_cache": "cache; rm -rf ~"}, "package_cache"), ({"package_cache": "--x"}, "package_cache"),
    ({"registry": {"url": "bob:pw@registry.invalid"}}, "registry.url"), ({"namespace": "a b"}, "namespace"),
])
def test_top_level_attacks_are_refused(top, field):
    with pytest.raises(BaseforgeError) as exc:
        config.plan({"epoch": EPOCH, "images": debian(), **top}, resolve_epochs=False)
    assert f"config {field}" in str(exc.value)


@pytest.mark.parametrize("add, field", [
    ({"/etc/hostname": "/x"}, "apps.a.add"), ({"../secret": "/x"}, "apps.a.add"), ({"ok/../../x": "/x"}, "apps.a.add"),
    ({"hello.c": "/usr/../../x"}, "apps.a.add"), ({"hello.c": "relative"}, "apps.a.add.hello.c"),
    ({"link/hostname": "/x"}, "apps.a.add"), ({"hello.c": "/"}, "apps.a.add.hello.c"),
    ({"hello.c": "/./etc/shadow"}, "apps.a.add.hello.c"), ({"hello.c": "/usr//bin/x"}, "apps.a.add.hello.c"),
])
def test_app_add_sources_stay_in_the_context(tmp_path, add, field):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.c").write_text("int main(){}")
    (ctx / "link").symlink_to("/etc")
    with pytest.raises(BaseforgeError) as exc:
        plan(debian(), apps={"a": {"base": "scratch", "context": "ctx", "add": add}}, workdir=tmp_path)
    assert f"config {field}" in str(exc.value)


@pytest.mark.parametrize("app, field", [
    # the context (and so every add: source in it) must lie in the workflow directory: else add: ships host files
    ({"base": "scratch", "context": "/etc", "add": {"hostname": "/x"}}, "apps.a.context"),
    ({"base": "scratch", "context": "../outside", "add": {"f": "/x"}}, "apps.a.context"),
    ({"base": "scratch", "context": "etclink", "add": {"hostname": "/x"}}, "apps.a.context"),  # a link out of it
    ({"base": "scratch", "context": "ctx/../../outside", "add": {"f": "/x"}}, "apps.a.context"),
    ({"dockerfile": "/"}, "apps.a.dockerfile"), ({"dockerfile": "../outside"}, "apps.a.dockerfile"),
    ({"dockerfile": "outlink"}, "apps.a.dockerfile"),
    ({"base": "scratch", "context": "ctx", "add": {"f": "/x"}, "labels": {"io.baseforge.insecure": "false"}}, "apps.a.labels"),
    ({"base": "scratch", "context": "ctx", "add": {"f": "/x"}, "workdir": "relative"}, "apps.a.workdir"),
    ({"base": "scratch", "context": "ctx", "build": "true\x00; evil"}, "apps.a.build"),
])
def test_app_context_and_dockerfile_stay_in_the_workflow(tmp_path, app, field):
    work, outside = tmp_path / "work", tmp_path / "outside"
    for d in (work / "ctx", outside):
        d.mkdir(parents=True)
        (d / "f").write_text("x")
    (outside / "Dockerfile").write_text("FROM scratch\n")
    (work / "etclink").symlink_to("/etc")
    (work / "outlink").symlink_to(outside)
    with pytest.raises(BaseforgeError) as exc:
        plan(debian(), apps={"a": app}, workdir=work)
    assert f"config {field}" in str(exc.value)


def test_good_values_pass():
    # apk's provides and rpm's capitals are names of their families (the schema admits them; apt's are checked narrower)
    config.validate({"images": {"alpine": {"releases": ["3.20"], "packages": ["so:libc.musl-x86_64.so.1", "NetworkManager"]}}})
    p = plan(debian(packages=["libc6=2.36-9", "g++", "libc6:amd64", "tzdata/bookworm-updates"], components=["main", "non-free-firmware"],
                    variants=[{"name": "b", "bootstrap_variant": "buildd"}]), {"archive": f"{M}/debian", "security": f"{M}/sec"})
    assert p.images["debian/bookworm/b/amd64"].cell.base_variant == "buildd"


# --- signatures: always on; insecure: true is explicit, warned about and labelled ------------------------


def test_signatures_are_checked_by_every_bootstrapper():
    img = plan({"debian": {"releases": ["bookworm"], "bootstrapper": "debootstrap"}}).images["debian/bookworm/default/amd64"]
    assert "--force-check-gpg" in get_bootstrapper("debootstrap").argv(img.cell, Path("/r"))
    assert not any("Insecure" in a or "trusted=yes" in a for a in Mmdebstrap().argv(img.cell, Path("/o.tar")))
    rocky = plan({"rocky": {"releases": ["9"], "keyrings": ["K"]}}, {"rocky": M}).images["rocky/9/default/amd64"].cell
    assert "\ngpgcheck=1\n" in repo_file(rocky) and "\ngpgcheck=0" not in repo_file(rocky)


def test_insecure_warns_on_every_parse_and_labels_the_image(capsys):
    for _ in range(2):
        img = plan(debian(insecure=True, bootstrapper="debootstrap")).images["debian/bookworm/default/amd64"]
        assert "images.debian has insecure: true" in capsys.readouterr().err
    assert img.cell.insecure and img.meta.labels["io.baseforge.insecure"] == "true"
    assert "--no-check-gpg" in get_bootstrapper("debootstrap").argv(img.cell, Path("/r"))
    rocky = plan({"rocky": {"releases": ["9"], "insecure": True}}, {"rocky": M}).images["rocky/9/default/amd64"]
    assert "gpgcheck=0\n" in repo_file(rocky.cell) and rocky.meta.labels["io.baseforge.insecure"] == "true"
    assert "io.baseforge.insecure" not in plan(debian()).images["debian/bookworm/default/amd64"].meta.labels
    apps = {"a": {"base": "debian:bookworm", "cmd": ["true"]}}
    app = plan(debian(insecure=True), apps=apps).apps["a"]
    assert app.meta.labels["io.baseforge.insecure"] == "true"  # an app on an insecure base says so too


def test_insecure_is_in_the_provenance_record(tmp_path, monkeypatch):
    from baseforge import provenance

    monkeypatch.setattr(provenance, "packages", lambda _: [])
    monkeypatch.setattr(provenance, "write_sbom", lambda *a, **k: None)
    monkeypatch.setattr(provenance, "release_file", lambda url: {"url": url})
    (tmp_path / "info.json").write_text(json.dumps({"sha256": "0" * 64}))
    for insecure in (True, False):
        img = plan(debian(insecure=insecure)).images["debian/bookworm/default/amd64"]
        provenance.write_provenance(img.to_dict(), "r.tar", tmp_path / "info.json", tmp_path / "s.json", tmp_path / f"p{insecure}.json")
        assert json.loads((tmp_path / f"p{insecure}.json").read_text()).get("insecure", False) is insecure


def test_insecure_label_reaches_the_oci_config(tmp_path):
    from baseforge.oci import write_image
    from baseforge.ociread import read

    img = plan(debian(insecure=True)).images["debian/bookworm/default/amd64"]
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tf:
        tf.addfile(tarfile.TarInfo("x"), io.BytesIO(b""))
    write_image(tmp_path / "img.oci.tar", [layer], img.meta)
    assert read(tmp_path / "img.oci.tar").config["config"]["Labels"]["io.baseforge.insecure"] == "true"


# --- the private engine ------------------------------------------------------------------------------------


@pytest.mark.parametrize("env, group", [({}, "root"), ({"BASEFORGE_ENGINE_GROUP": "builders"}, "builders")])
def test_the_engine_socket_is_roots_unless_a_group_is_configured(tmp_path, monkeypatch, env, group):
    from baseforge import daemon

    started: list[list[str]] = []
    monkeypatch.delenv("BASEFORGE_ENGINE_GROUP", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(daemon.shutil, "which", lambda name: "/usr/bin/dockerd")
    monkeypatch.setattr(daemon.subprocess, "Popen", lambda argv, **kw: started.append(argv))
    monkeypatch.setattr(daemon, "answers", lambda url: bool(started))
    daemon.start(tmp_path / "data", tmp_path / "run")
    assert f"--group={group}" in started[0] and not any(a == "--group=docker" for a in started[0])
