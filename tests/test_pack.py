"""pack(): synthetic raw tars in, normalized reproducible tars out. No root, no daemon, no files from /tmp."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from baseforge import packtar
from baseforge.errors import BaseforgeError
from baseforge.pack import leak_action, load_leak_rules, load_slim_rules, minimize_files, pack

EPOCH = 1_700_000_000
LATER = EPOCH + 86400 * 30
# security.capability for cap_setgid,cap_setuid=ep (vfs_cap_data v2): binary, not valid UTF-8.
CAP_BYTES = b"\x01\x00\x00\x02\xc0\x00\x00\x00" + bytes(12)
CAP = CAP_BYTES.decode("utf-8", "surrogateescape")


def _dir(name, mtime=EPOCH):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, mtime
    return ti, None


def _file(name, data: bytes, mode=0o644, mtime=EPOCH, uid=0, gid=0, xattrs=None):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime, ti.uid, ti.gid = len(data), mode, mtime, uid, gid
    ti.uname, ti.gname = "builder", "builder"
    if xattrs:
        ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    return ti, data


def _special(name, type_, linkname="", mtime=EPOCH):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.mtime = type_, linkname, 0o777 if type_ == tarfile.SYMTYPE else 0o644, mtime
    if type_ == tarfile.CHRTYPE:
        ti.mode, ti.devmajor, ti.devminor = 0o666, 1, 3
    return ti, None


def raw_entries():
    """A tiny Debian-like rootfs, in the order a bootstrapper might write it (dev first, not sorted)."""
    dirs = [
        "./dev", ".", "./etc", "./etc/apt", "./etc/apt/apt.conf.d", "./etc/dpkg", "./etc/dpkg/dpkg.cfg.d",
        "./etc/ssh", "./tmp", "./run", "./run/lock", "./usr", "./usr/bin", "./usr/sbin", "./usr/share",
        "./usr/share/doc", "./usr/share/doc/x", "./usr/share/doc/y", "./usr/share/man", "./usr/share/man/man1",
        "./usr/share/locale", "./usr/share/locale/de", "./usr/share/locale/de/LC_MESSAGES",
        "./var", "./var/cache", "./var/cache/apt", "./var/cache/apt/archives", "./var/cache/ldconfig",
        "./var/lib", "./var/lib/apt", "./var/lib/apt/lists", "./var/lib/apt/lists/partial", "./var/lib/dpkg",
        "./var/log", "./var/log/apt",
    ]
    entries = [_dir(d) for d in dirs]
    entries += [
        _special("./dev/null", tarfile.CHRTYPE),
        _file("./etc/hostname", b"buildhost\n"),
        _file("./etc/resolv.conf", b"nameserver 10.0.0.1\n"),
        _file("./etc/shadow", b"root:*:19999:0:99999:7:::\nnobody:*::0:99999:7:::\nbroken\n", mode=0o640, gid=42),
        _file("./etc/ssh/ssh_host_ed25519_key", b"secret"),
        _file("./etc/apt/apt.conf.d/docker-clean", b"old contents"),
        _file("./tmp/build.tmp", b"x"),
        _file("./run/lock/apt", b""),
        # "pinger" is the hard link's target, but "pi" sorts before it: the roles must swap.
        _file("./usr/bin/pinger", b"#!/bin/sh\necho ping\n", mode=0o755, mtime=LATER, xattrs={"security.capability": CAP}),
        _special("./usr/bin/pi", tarfile.LNKTYPE, "./usr/bin/pinger"),
        _special("./usr/bin/sh", tarfile.SYMTYPE, "dash"),
        _file("./usr/bin/dash", b"\x7fELF" + bytes(100), mode=0o755),
        _file("./usr/share/doc/x/copyright", b"GPL\n"),
        _file("./usr/share/doc/x/changelog.gz", b"\x1f\x8b" + bytes(50)),
        _special("./usr/share/doc/z", tarfile.SYMTYPE, "x"),  # resolves: kept when slim
        _special("./usr/share/doc/y/README", tarfile.SYMTYPE, "../x/changelog.gz"),  # dangles once slimmed
        _file("./usr/share/man/man1/x.1.gz", b"\x1f\x8b" + bytes(40)),
        _file("./usr/share/locale/locale.alias", b"german de_DE.ISO-8859-1\n"),
        _file("./usr/share/locale/de/LC_MESSAGES/x.mo", b"mo"),
        _file("./var/cache/apt/pkgcache.bin", b"cache" * 100),
        _file("./var/cache/apt/archives/x_1_all.deb", b"deb"),
        _file("./var/cache/ldconfig/aux-cache", b"aux"),
        _file("./var/lib/apt/lists/lock", b""),
        _file("./var/lib/apt/lists/127.0.0.1_debian_dists_bookworm_InRelease", b"Date: today\n"),
        _file("./var/lib/dpkg/status", b"Package: x\nStatus: install ok installed\n"),
        _file("./var/lib/dpkg/status-old", b"old"),
        _file("./var/log/dpkg.log", b"2023-11-14 install x\n"),
        _file("./var/log/apt/history.log", b"Start-Date: 2023-11-14\n"),
    ]
    return entries


def make_raw(path: Path, entries) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in entries:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return path


@pytest.fixture
def raw(tmp_path) -> Path:
    return make_raw(tmp_path / "raw.tar", raw_entries())


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def read(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        return tar.extractfile(name).read()


def test_same_input_same_bytes(raw, tmp_path):
    a = pack(raw, tmp_path / "a.tar", epoch=EPOCH)
    b = pack(raw, tmp_path / "b.tar", epoch=EPOCH)
    assert a == b
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert a.size == (tmp_path / "a.tar").stat().st_size
    assert a.entries == len(members(tmp_path / "a.tar"))
    assert a.to_dict() == {"sha256": a.sha256, "size": a.size, "entries": a.entries}


def test_input_order_does_not_matter(raw, tmp_path):
    backwards = sorted(raw_entries(), key=lambda e: e[0].name, reverse=True)
    # A hard link must follow its target in a valid tar: move links to the end.
    backwards.sort(key=lambda e: e[0].islnk())
    shuffled = make_raw(tmp_path / "shuffled.tar", backwards)
    assert pack(raw, tmp_path / "a.tar", epoch=EPOCH) == pack(shuffled, tmp_path / "b.tar", epoch=EPOCH)


def test_normalized_names_order_and_metadata(raw, tmp_path):
    out = tmp_path / "out.tar"
    pack(raw, out, epoch=EPOCH)
    with tarfile.open(out) as tar:
        assert tar.pax_headers == {}
        ms = tar.getmembers()
    names = [m.name for m in ms]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert not any(n.startswith(("./", "/")) or n in ("", ".") for n in names)
    for m in ms:
        assert m.mtime <= EPOCH and (m.uname, m.gname) == ("", "")
        assert not {"atime", "ctime", "mtime", "uname", "gname"} & set(m.pax_headers)
    by = {m.name: m for m in ms}
    assert by["usr/bin/pinger"].mtime == EPOCH  # clamped from LATER
    assert by["etc/shadow"].mode == 0o640 and by["etc/shadow"].gid == 42


def test_xattr_bytes_survive(raw, tmp_path):
    out = tmp_path / "out.tar"
    pack(raw, out, epoch=EPOCH)
    holder = members(out)["usr/bin/pi"]  # the hard link pair's first name now holds the data
    assert holder.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == CAP_BYTES


def test_leaks_follow_the_data_file(raw, tmp_path):
    out = tmp_path / "out.tar"
    pack(raw, out, epoch=EPOCH)
    ms = members(out)
    for gone in (
        "dev/null", "tmp/build.tmp", "run/lock", "run/lock/apt", "etc/ssh/ssh_host_ed25519_key",
        "var/cache/apt/pkgcache.bin", "var/cache/apt/archives/x_1_all.deb", "var/cache/ldconfig/aux-cache",
        "var/lib/apt/lists/127.0.0.1_debian_dists_bookworm_InRelease", "var/lib/dpkg/status-old",
    ):
        assert gone not in ms, gone
    for kept_dir in ("dev", "tmp", "run", "var/lib/apt/lists/partial", "var/log/apt", "var/cache/apt/archives"):
        assert ms[kept_dir].isdir(), kept_dir
    assert ms["var/lib/apt/lists/lock"].isreg()
    for emptied in ("etc/hostname", "etc/resolv.conf", "var/log/dpkg.log", "var/log/apt/history.log"):
        assert ms[emptied].isreg() and ms[emptied].size == 0, emptied
    assert read(out, "var/lib/dpkg/status").startswith(b"Package: x")


def test_leak_rules_have_reasons_and_families():
    rules = load_leak_rules("debian")
    assert all(r.reason for r in rules)
    assert leak_action("var/lib/apt/lists/partial", rules) == "keep"
    assert leak_action("var/cache/apt/archives/foo.deb", rules) == "drop"
    assert leak_action("var/cache/dnf/x", rules) is None  # an rpm rule
    assert leak_action("var/cache/dnf/x", load_leak_rules("rpm")) == "drop"
    assert leak_action("var/cache/apk/APKINDEX.tar.gz", load_leak_rules("alpine")) == "drop"


def test_shadow_dates_set_to_epoch(raw, tmp_path):
    out = tmp_path / "out.tar"
    pack(raw, out, epoch=EPOCH)
    day = EPOCH // 86400
    assert read(out, "etc/shadow") == f"root:*:{day}:0:99999:7:::\nnobody:*::0:99999:7:::\nbroken\n".encode()


def test_minimize_files_added_and_replace_existing(raw, tmp_path):
    out = tmp_path / "out.tar"
    pack(raw, out, epoch=EPOCH)
    ms = members(out)
    files = minimize_files()
    assert "usr/sbin/policy-rc.d" in files and "etc/apt/apt.conf.d/docker-no-recommends" in files
    for name, data in files.items():
        assert read(out, name) == data
        assert (ms[name].uid, ms[name].gid, ms[name].mtime) == (0, 0, EPOCH)
        assert ms[name].mode == (0o755 if name == "usr/sbin/policy-rc.d" else 0o644)
    assert b"exit 101" in files["usr/sbin/policy-rc.d"]
    assert b'Dir::Cache::pkgcache "";' in files["etc/apt/apt.conf.d/docker-clean"]


def test_other_families_get_no_debian_config(raw, tmp_path):
    out = tmp_path / "out.tar"
    pack(raw, out, epoch=EPOCH, family="rpm")
    ms = members(out)
    assert "usr/sbin/policy-rc.d" not in ms
    assert "var/lib/apt/lists/127.0.0.1_debian_dists_bookworm_InRelease" in ms  # apt rules are debian-only
    with pytest.raises(BaseforgeError):
        pack(raw, tmp_path / "slim.tar", epoch=EPOCH, family="rpm", slim=True)


def test_slim_drops_docs_keeps_copyright(raw, tmp_path):
    out = tmp_path / "slim.tar"
    pack(raw, out, epoch=EPOCH, slim=True)
    ms = members(out)
    for gone in (
        "usr/share/doc/x/changelog.gz", "usr/share/man/man1/x.1.gz", "usr/share/man/man1",
        "usr/share/locale/de/LC_MESSAGES/x.mo", "usr/share/locale/de",
        "usr/share/doc/y/README", "usr/share/doc/y",  # dangling link, then the emptied directory
    ):
        assert gone not in ms, gone
    for kept in ("usr/share/doc/x/copyright", "usr/share/doc/z", "usr/share/locale/locale.alias", "usr/share/man"):
        assert kept in ms, kept
    cfg = read(out, "etc/dpkg/dpkg.cfg.d/docker").decode()
    assert "path-exclude /usr/share/doc/*\n" in cfg and "path-include /usr/share/doc/*/copyright\n" in cfg
    assert all(r.reason for r in load_slim_rules())
    assert "usr/share/doc/x/changelog.gz" in members(pack_default(raw, tmp_path))


def pack_default(raw, tmp_path) -> Path:
    out = tmp_path / "default.tar"
    pack(raw, out, epoch=EPOCH)
    return out


def test_hard_links_resolve_after_extraction(raw, tmp_path):
    out = pack_default(raw, tmp_path)
    ms = members(out)
    assert ms["usr/bin/pi"].isreg() and ms["usr/bin/pinger"].islnk()
    assert ms["usr/bin/pinger"].linkname == "usr/bin/pi"
    dest = tmp_path / "root"
    with tarfile.open(out) as tar:
        tar.extractall(dest, **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))  # 3.11.4+
    assert (dest / "usr/bin/pinger").read_bytes() == b"#!/bin/sh\necho ping\n"
    assert (dest / "usr/bin/pinger").stat().st_ino == (dest / "usr/bin/pi").stat().st_ino


def test_hard_link_survives_its_dropped_target(tmp_path):
    entries = [
        _dir("./var"), _dir("./var/cache"), _dir("./var/cache/ldconfig"), _dir("./usr"),
        _file("./var/cache/ldconfig/aux-cache", b"data"),
        _special("./usr/keep", tarfile.LNKTYPE, "./var/cache/ldconfig/aux-cache"),
    ]
    out = tmp_path / "out.tar"
    pack(make_raw(tmp_path / "raw.tar", entries), out, epoch=EPOCH, family="alpine")
    assert members(out)["usr/keep"].isreg() and read(out, "usr/keep") == b"data"


def test_failure_leaves_no_output(raw, tmp_path, monkeypatch):
    out = tmp_path / "out.tar"

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(packtar, "_tarinfo", boom)
    with pytest.raises(OSError):
        pack(raw, out, epoch=EPOCH)
    assert list(tmp_path.iterdir()) == [raw]


def test_compressed_raw_tar_is_refused(raw, tmp_path):
    gz = tmp_path / "raw.tar.gz"
    gz.write_bytes(gzip.compress(raw.read_bytes()))
    with pytest.raises(BaseforgeError, match="uncompressed"):
        pack(gz, tmp_path / "out.tar", epoch=EPOCH)


def test_pax_records_are_plain_posix(raw, tmp_path):
    """Binary xattrs are written raw, like GNU tar (no hdrcharset=BINARY, which GNU tar warns about)."""
    out = pack_default(raw, tmp_path)
    data = out.read_bytes()
    assert b"hdrcharset" not in data
    assert b"SCHILY.xattr.security.capability=" + CAP_BYTES + b"\n" in data
    record = data[data.index(b"SCHILY.xattr.security.capability") - 3 :].split(b"\n")[0] + b"\n"
    assert int(record.split(b" ")[0]) == len(record)
