"""Trust: a table of attacks, each refused before any job runs with a message naming the field or the tar
entry; what pack removes (one case per leaks.tsv line, and the account files); signatures always on unless
``insecure: true``; tarball imports. Credentials: tests/test_credentials.py; the app sandbox: test_sandbox.py."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from baseforge import config, scrub
from baseforge.bootstrap import get as get_bootstrapper
from baseforge.bootstrap.dnf import repo_file
from baseforge.bootstrap.mmdebstrap import Mmdebstrap
from baseforge.bootstrap.tarball import copy_checked
from baseforge.errors import BaseforgeError
from baseforge.pack import load_leak_rules, pack, pack_rootfs
from baseforge.spec import FAMILIES

EPOCH = 1_700_000_000
M = "http://mirror.invalid"
HASH = "$6$salt$" + "x" * 86


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


# --- pack: nothing of the build host, no password hash -----------------------------------------------------


def _tar(path: Path, entries: list[tuple[str, bytes | None, dict]]) -> Path:
    """entries: (name, data or None for a directory, TarInfo attributes)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, attrs in entries:
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.DIRTYPE if data is None else tarfile.REGTYPE
            ti.mode, ti.mtime, ti.size = (0o755 if data is None else 0o644), EPOCH - 10, len(data or b"")
            for k, v in attrs.items():
                setattr(ti, k, v)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return path


def _dirs(*names: str) -> list:
    out = set()
    for n in names:
        parts = n.split("/")[:-1]
        out |= {"/".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return [(d, None, {}) for d in sorted(out)]


def _members(tar: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tar) as tf:
        return {m.name: m for m in tf.getmembers()}


def test_emptied_files_get_a_fixed_mode_whatever_the_host_had(tmp_path):
    """The same raw tar with the host's files at 0644 and at 0755 (other owner, mtime, xattrs): one digest."""
    empties = [r.glob for r in load_leak_rules("debian") if r.action == "empty" and "*" not in r.glob] + ["var/log/dpkg.log"]
    digests = set()
    for mode, uid, mtime, xattrs in ((0o644, 0, EPOCH - 5, {}), (0o755, 1000, EPOCH + 999, {"SCHILY.xattr.user.x": "host"})):
        entries = _dirs(*empties) + [(n, b"host contents\n", {"mode": mode, "uid": uid, "gid": uid, "mtime": mtime,
                                                               "pax_headers": xattrs}) for n in empties]
        raw = _tar(tmp_path / f"raw{mode:o}.tar", entries)
        digests.add(pack(raw, tmp_path / f"out{mode:o}.tar", epoch=EPOCH, family="none").sha256)
        out = _members(tmp_path / f"out{mode:o}.tar")
        for n in empties:
            m = out[n]
            assert (m.size, m.mode, m.uid, m.gid, m.mtime, m.pax_headers.keys() & {"SCHILY.xattr.user.x"}) == (0, 0o644, 0, 0, EPOCH, set()), n
    assert len(digests) == 1


def test_no_extended_attribute_of_the_build_host_reaches_the_image(tmp_path):
    """Only file capabilities stay: an SELinux label, a default ACL of the scratch directory or a user.* tag
    of the build host would change the digest from one host to the next."""
    cap = (b"\x01\x00\x00\x02\xc0" + bytes(15)).decode("utf-8", "surrogateescape")
    digests = set()
    for host in ({}, {"SCHILY.xattr.security.selinux": "system_u:object_r:tmp_t:s0",
                      "SCHILY.xattr.system.posix_acl_access": "\x02", "SCHILY.xattr.user.origin": "host"}):
        raw = _tar(tmp_path / "raw.tar", _dirs("usr/bin/x") + [("usr/bin/ping", b"p", {"pax_headers": {
            "SCHILY.xattr.security.capability": cap, **host}}), ("usr/bin/ls", b"l", {"pax_headers": dict(host)})])
        digests.add(pack(raw, tmp_path / "out.tar", epoch=EPOCH, family="none").sha256)
        out = _members(tmp_path / "out.tar")
        assert {k for k in out["usr/bin/ping"].pax_headers if k.startswith("SCHILY")} == {"SCHILY.xattr.security.capability"}
        assert not [k for k in out["usr/bin/ls"].pax_headers if k.startswith("SCHILY")]
    assert len(digests) == 1


def _example(glob: str) -> str:
    return glob.replace("*", "x")


@pytest.mark.parametrize("rule", [r for fam in FAMILIES for r in load_leak_rules(fam) if r.family in (fam, "any")
                                  and (r.family != "any" or fam == "none")], ids=lambda r: f"{r.action}:{r.glob}:{r.family}")
def test_every_leak_rule_on_a_synthetic_tar(tmp_path, rule):
    family = "none" if rule.family == "any" else rule.family
    name = _example(rule.glob)
    child = f"{name}/inner"
    kind = rule.action in ("drop-children",)
    entries = _dirs(child if kind else name) + ([(name, None, {}), (child, b"secret", {})] if kind else [(name, b"secret", {})])
    entries += [("keep.txt", b"k", {})]
    pack(_tar(tmp_path / "raw.tar", entries), tmp_path / "out.tar", epoch=EPOCH, family=family)
    out = _members(tmp_path / "out.tar")
    assert "keep.txt" in out
    if rule.action == "drop":
        assert name not in out, rule.reason
    elif rule.action == "drop-children":
        assert name in out and child not in out, rule.reason
    elif rule.action == "empty":
        assert out[name].size == 0 and out[name].mode == 0o644, rule.reason
    else:
        assert name in out


def test_named_secrets_go_for_every_family(tmp_path):
    secrets = ["var/tmp/build.log", "root/.bash_history", "root/.ash_history", "root/.cache/pip/x", "home/u/.bash_history",
               "var/lib/systemd/random-seed"]
    debian_only = ["var/cache/debconf/passwords.dat", "etc/apt/auth.conf", "etc/apt/auth.conf.d/mirror.conf"]
    for family in FAMILIES:
        names = secrets + (debian_only if family == "debian" else [])
        raw = _tar(tmp_path / "raw.tar", _dirs(*names) + [(n, b"secret", {}) for n in names])
        pack(raw, tmp_path / "out.tar", epoch=EPOCH, family=family)
        out = _members(tmp_path / "out.tar")
        assert not set(names) & set(out), (family, sorted(set(names) & set(out)))
        assert "var/tmp" in out and (family != "debian" or "etc/apt/auth.conf.d" in out)


def test_password_hashes_become_stars(tmp_path):
    shadow = f"root:{HASH}:19000:0:99999:7:::\nlocked:!{HASH}:19000::::::\nnopw::19000::::::\nsys:*:19000::::::\nbang:!::::::\n"
    gshadow = f"root:*::\nadm:{HASH}::bob\nstaff:!::\n"
    passwd = f"root:x:0:0:root:/root:/bin/sh\nold:{HASH}:1:1::/:/bin/sh\n"
    files = {"etc/shadow": shadow, "etc/shadow-": shadow, "etc/gshadow": gshadow, "etc/gshadow-": gshadow, "etc/passwd": passwd}
    raw = _tar(tmp_path / "raw.tar", _dirs("etc/x") + [(n, t.encode(), {"mode": 0o640}) for n, t in files.items()])
    pack(raw, tmp_path / "out.tar", epoch=EPOCH, family="none")
    with tarfile.open(tmp_path / "out.tar") as tf:
        text = {n: tf.extractfile(n).read().decode() for n in files}
    day = EPOCH // 86400
    assert text["etc/shadow"] == text["etc/shadow-"] == (
        f"root:*:{day}:0:99999:7:::\nlocked:!*:{day}::::::\nnopw:*:{day}::::::\nsys:*:{day}::::::\nbang:!::::::\n")
    assert text["etc/gshadow"] == text["etc/gshadow-"] == "root:*::\nadm:*::bob\nstaff:!::\n"
    assert text["etc/passwd"] == "root:x:0:0:root:/root:/bin/sh\nold:*:1:1::/:/bin/sh\n"
    assert set(scrub.REWRITES) >= {"etc/shadow", "etc/gshadow", "etc/shadow-", "etc/gshadow-"}


def test_rootfs_json_lists_setuid_setgid_and_capabilities(tmp_path):
    cap = (b"\x01\x00\x00\x02\xc0" + bytes(15)).decode("utf-8", "surrogateescape")
    raw = _tar(tmp_path / "raw.tar", _dirs("usr/bin/x") + [
        ("usr/bin/su", b"su", {"mode": 0o4755}), ("usr/bin/wall", b"w", {"mode": 0o2755}),
        ("usr/bin/ping", b"p", {"pax_headers": {"SCHILY.xattr.security.capability": cap}}), ("usr/bin/ls", b"l", {})])
    info = pack_rootfs(raw, tar=tmp_path / "r.tar", manifest=tmp_path / "m.tsv", info=tmp_path / "r.json", epoch=EPOCH,
                       slim=False, family="none")
    assert info["privileged"] == {"setuid": ["usr/bin/su"], "setgid": ["usr/bin/wall"], "capabilities": ["usr/bin/ping"]}
    assert json.loads((tmp_path / "r.json").read_text())["privileged"] == info["privileged"]


# --- tarball imports ---------------------------------------------------------------------------------------


def _links(path: Path, entries: list[tuple[str, str, str]]) -> Path:
    """(kind, name, target): kind dir | sym | hard | file | chr | fifo."""
    with tarfile.open(path, "w") as tf:
        for kind, name, target in entries:
            ti = tarfile.TarInfo(name)
            ti.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "file": tarfile.REGTYPE, "chr": tarfile.CHRTYPE,
                       "fifo": tarfile.FIFOTYPE, "hard": tarfile.LNKTYPE}[kind]
            ti.linkname = target if kind in ("sym", "hard") else ""
            data = target.encode() if kind == "file" else b""
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path


@pytest.mark.parametrize("entries, entry", [
    ([("dir", "x", ""), ("sym", "x/up", ".."), ("sym", "y", "x/up/..")], "y"),
    ([("dir", "a", ""), ("dir", "a/b", ""), ("sym", "a/b/l", "../.."), ("sym", "z", "a/b/l/../etc")], "z"),
    ([("sym", "r", "/"), ("sym", "y", "r/..")], "y"),
    ([("dir", "d", ""), ("sym", "d/self", "."), ("sym", "d/p", "self/self/../..")], "d/p"),
    ([("dir", "a", ""), ("sym", "a/l", ".."), ("sym", "b", "a/l/a/l/a/l/..")], "b"),
    ([("sym", "a", "b"), ("sym", "b", "a"), ("sym", "c", "a/x")], "c"),
    ([("dir", "etc", ""), ("chr", "etc/evil", "")], "etc/evil"),
    ([("fifo", "run.pipe", "")], "run.pipe"),
    # a hard link to a symlink is that symlink at the link's place: '..' from a/ is the root, from / above it
    ([("dir", "a", ""), ("sym", "a/l", ".."), ("hard", "top", "a/l"), ("file", "top/x", "evil")], "top"),
    ([("dir", "a", ""), ("dir", "a/b", ""), ("sym", "a/b/l", "../.."), ("hard", "up", "a/b/l")], "up"),
    # links that come later make an earlier one climb out: checked again once the whole tar is read
    ([("sym", "y", "a/.."), ("sym", "a", "d/e"), ("dir", "d", ""), ("sym", "d/e", "..")], "y"),
    # a name twice: the later entry silently replaces the first (and what was checked is not what lands)
    ([("dir", "etc", ""), ("sym", "etc", "/tmp")], "etc"),
    ([("file", "a", "x"), ("hard", "h", "a"), ("sym", "a", "/etc/shadow")], "a"),
    ([("file", "", "x")], ""),  # the root as a file
    ([("dir", "d", ""), ("hard", "h", "d")], "h"),  # a hard link to a directory
])
def test_escaping_symlink_chains_and_devices_are_refused_naming_the_entry(tmp_path, entries, entry):
    with pytest.raises(BaseforgeError) as exc:
        copy_checked(_links(tmp_path / "bad.tar", entries), tmp_path / "out.tar", "bad.tar")
    assert f"entry {entry!r}" in str(exc.value) or "chain of more than 40 symlinks" in str(exc.value)


def test_harmless_link_chains_are_kept(tmp_path):
    good = _links(tmp_path / "good.tar", [("dir", "usr", ""), ("dir", "usr/lib", ""), ("sym", "lib", "usr/lib"),
                                          ("sym", "usr/lib/up", ".."), ("sym", "x", "lib/up/lib/../.."), ("dir", "dev", ""),
                                          ("chr", "dev/null", ""), ("sym", "abs", "/usr/lib/up")])
    assert copy_checked(good, tmp_path / "out.tar", "good.tar") == 8


def test_a_tar_bomb_gets_a_clear_error(tmp_path):
    bomb = tmp_path / "bomb.tar"
    with tarfile.open(bomb, "w:gz") as tf:
        for i in range(3):
            ti = tarfile.TarInfo(f"zeros{i}")
            ti.size = 1 << 20
            tf.addfile(ti, io.BytesIO(bytes(ti.size)))
    assert bomb.stat().st_size < 20_000
    with pytest.raises(BaseforgeError, match=r"entry 'zeros1' takes the unpacked size past 2000000 bytes.*tar bomb"):
        copy_checked(bomb, tmp_path / "out.tar", "bomb.tar", max_size=2_000_000)


def test_the_hash_is_of_the_bytes_unpacked(tmp_path):
    good = _links(tmp_path / "good.tar", [("dir", "etc", ""), ("file", "etc/x", "hello")])
    sha = hashlib.sha256(good.read_bytes()).hexdigest()
    assert copy_checked(good, tmp_path / "out.tar", "good.tar", sha256=sha) == 2
    with pytest.raises(BaseforgeError, match="sha256 is .* the config says 0000"):
        copy_checked(good, tmp_path / "out2.tar", "good.tar", sha256="0" * 64)
    bad = _links(tmp_path / "bad.tar", [("sym", "up", "../..")])  # a changed tarball is reported as changed
    with pytest.raises(BaseforgeError, match="sha256 is"):
        copy_checked(bad, tmp_path / "out3.tar", "bad.tar", sha256=sha)



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


# --- nothing of the build host: the invoking user's umask ----------------------------------------------------


def _context_under(umask: int, top: Path) -> Path:
    """An app context created (as a checkout would be) under ``umask``."""
    old = os.umask(umask)
    try:
        (top / "bin").mkdir(parents=True)
        (top / "bin/run").write_text("#!/bin/sh\n")
        (top / "bin/run").chmod(0o777 & ~umask)
        (top / "data.txt").write_text("x\n")
        (top / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    finally:
        os.umask(old)
    return top


def test_the_invoking_users_umask_does_not_reach_an_app(tmp_path):
    """A checkout made under umask 077 or 002 gives the same layer bytes and the same Dockerfile context modes
    as one made under 022 (buildah's COPY keeps modes: it is given copy_context's copy)."""
    from baseforge.app import copy_context, layer_from_tree

    layers, modes, empty = set(), set(), tmp_path / "empty"
    empty.mkdir()
    for umask in (0o022, 0o077, 0o002):
        ctx = _context_under(umask, tmp_path / f"ctx{umask:o}")
        copy = copy_context(ctx, tmp_path / f"copy{umask:o}")
        modes.add(tuple((str(p.relative_to(copy)), p.stat().st_mode & 0o7777) for p in sorted(copy.rglob("*"))))
        layer_from_tree(empty, {ctx / "bin": "/usr/local/bin", ctx / "data.txt": "/data.txt"}, tmp_path / f"l{umask:o}.tar",
                        EPOCH, context=ctx)
        layers.add(hashlib.sha256((tmp_path / f"l{umask:o}.tar").read_bytes()).hexdigest())
    assert len(layers) == 1 and len(modes) == 1
    assert dict(next(iter(modes))) == {"Dockerfile": 0o644, "bin": 0o755, "bin/run": 0o755, "data.txt": 0o644}


def test_every_job_runs_with_umask_022(tmp_path, monkeypatch):
    """A job's files (a sources.list a bootstrapper writes into the tree) do not take the caller's umask."""
    from types import SimpleNamespace

    from baseforge.run import job

    monkeypatch.chdir(tmp_path)
    sm = SimpleNamespace(log=[str(tmp_path / "job.log")], rule="probe", wildcards={}, output=[])
    old = os.umask(0o077)
    try:
        with job(sm):
            (tmp_path / "sources.list").write_text("deb x y z\n")
            seen = os.umask(0o022)
    finally:
        os.umask(old)
    assert seen == 0o022 and (tmp_path / "sources.list").stat().st_mode & 0o777 == 0o644


def test_apk_copies_only_public_keys_into_the_image(tmp_path):
    """apk's keyrings land in the image's /etc/apk/keys: a host file that is no public key (a private key
    named *.pub, say) is refused naming it."""
    from baseforge.bootstrap.apk import copy_key

    good, bad = tmp_path / "a.rsa.pub", tmp_path / "id.pub"
    good.write_text("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n")
    bad.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n")
    (tmp_path / "keys").mkdir()
    copy_key(str(good), tmp_path / "keys", "alpine/3.20/default/amd64")
    with pytest.raises(BaseforgeError, match=f"keyrings entry {bad} is not a PEM public key"):
        copy_key(str(bad), tmp_path / "keys", "alpine/3.20/default/amd64")
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["a.rsa.pub"]
