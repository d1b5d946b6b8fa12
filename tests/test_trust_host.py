"""Trust, on the build host's side: what pack removes (one case per leaks.tsv line, the account files, the
host's xattrs), tarball imports (link chains, duplicates, devices, bombs, the hash of the bytes unpacked),
and nothing of the invoking user (umask) or the host (apk keys) in an image. The table of config attacks:
tests/test_trust.py."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from baseforge import scrub
from baseforge.bootstrap.tarball import copy_checked
from baseforge.errors import BaseforgeError
from baseforge.pack import load_leak_rules, pack, pack_rootfs
from baseforge.spec import FAMILIES

EPOCH = 1_700_000_000
HASH = "$6$salt$" + "x" * 86


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


@pytest.mark.parametrize("name, text", [
    ("etc/apt/sources.list.d/extra.list", "deb [trusted=yes] http://mirror.invalid/x bookworm main\n"),
    ("etc/apt/sources.list.d/extra.sources", "Types: deb\nURIs: http://mirror.invalid/x\nSuites: bookworm\nTrusted: yes\n"),
    ("etc/apt/apt.conf.d/99x", 'acquire::allowinsecurerepositories "true";\n'),  # apt's option names are case-blind
    ("etc/apt/apt.conf.d/99y", 'APT { Get { AllowUnauthenticated "true"; }; };\n'),
    ("etc/apt/apt.conf.d/99z", 'Dir::Etc::TrustedParts "/srv/my-keys";\n'),  # swaps the keys apt checks against
    ("etc/apt/apt.conf", 'APT::Key::gpgvcommand "/bin/true";\n'),
])
def test_an_apps_base_cannot_turn_apt_checks_off_for_the_next_apps_packages(tmp_path, name, text):
    """apt in the chroot reads the base tree's apt config after mmdebstrap's: a file an app added there would
    install the packages of an app built on it unchecked, without insecure: true."""
    from baseforge.trust import check_apt_config

    clean = [("etc/apt/apt.conf.d/70debconf", b'DPkg::Pre-Install-Pkgs {"/usr/sbin/dpkg-preconfigure --apt || true";};\n', {}),
             ("etc/apt/sources.list", b"# deb [trusted=yes] http://commented.invalid/ x main\ndeb http://m.invalid/debian bookworm main\n", {})]
    check_apt_config(_tar(tmp_path / "clean.tar", _dirs("etc/apt/apt.conf.d/x", "etc/apt/sources.list.d/x") + clean), "apps.b")
    bad = _tar(tmp_path / "bad.tar", _dirs("etc/apt/apt.conf.d/x", "etc/apt/sources.list.d/x") + clean + [(name, text.encode(), {})])
    with pytest.raises(BaseforgeError, match=f"apps.b: the base's /{name} says .* signature checks off"):
        check_apt_config(bad, "apps.b")
