"""Layers as trees: flattening an image's layers (whiteouts applied) and the layer between two trees."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from baseforge import layers
from baseforge.app import installed
from baseforge.app_packages import install_argv
from baseforge.oci import write_image
from baseforge.spec import CellSpec, ImageMeta, Source

EPOCH = 1700000000


def tree(path: Path, entries: list[tuple]) -> Path:
    """A tar of (name, kind, data-or-target, mode, mtime) entries, in the order given."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data, *rest in entries:
            ti = tarfile.TarInfo(name)
            ti.mode = rest[0] if rest else (0o755 if kind == "dir" else 0o644)
            ti.mtime = rest[1] if len(rest) > 1 else EPOCH - 10
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif kind == "link":
                ti.type, ti.linkname = tarfile.LNKTYPE, data
                tf.addfile(ti)
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return path


def names(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tf:
        return {m.name: m for m in tf.getmembers()}


def content(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tf:
        return tf.extractfile(name).read()


BASE = [("etc", "dir", None), ("etc/a", "file", b"a"), ("etc/b", "file", b"b"), ("opt", "dir", None),
        ("opt/x", "dir", None), ("opt/x/1", "file", b"1"), ("usr", "dir", None), ("usr/h1", "file", b"hh"),
        ("usr/h2", "link", "usr/h1"), ("usr/s", "sym", "h1"), ("usr/up", "sym", "../etc/b")]


def test_diff_has_new_and_changed_entries_their_parents_and_whiteouts_for_what_is_gone(tmp_path):
    base = tree(tmp_path / "base.tar", BASE)
    new = tree(tmp_path / "new.tar", [
        ("etc", "dir", None), ("etc/a", "file", b"A"), ("etc/b", "file", b"b", 0o600), ("etc/c", "file", b"c"),
        ("usr", "dir", None), ("usr/h1", "file", b"hh"), ("usr/h2", "link", "usr/h1"), ("usr/s", "sym", "h1"),
        ("usr/up", "sym", "../etc/b")])
    counts = layers.diff(base, new, tmp_path / "layer.tar", EPOCH)
    got = names(tmp_path / "layer.tar")
    # a, b (mode), c are changed or new; etc comes along as their parent; opt (with its tree) is gone
    assert list(got) == [".wh.opt", "etc", "etc/a", "etc/b", "etc/c"]  # in path order
    assert counts == {"changed": 4, "deleted": 1}
    assert content(tmp_path / "layer.tar", "etc/a") == b"A" and got["etc/b"].mode == 0o600
    assert got[".wh.opt"].size == 0 and got[".wh.opt"].mtime == EPOCH
    # the same trees give the same bytes
    layers.diff(base, new, tmp_path / "again.tar", EPOCH)
    assert (tmp_path / "layer.tar").read_bytes() == (tmp_path / "again.tar").read_bytes()


def test_a_changed_hard_link_brings_its_whole_group(tmp_path):
    base = tree(tmp_path / "base.tar", BASE)
    new = tree(tmp_path / "new.tar", [*BASE[:6], ("usr", "dir", None), ("usr/h1", "file", b"changed"),
                                      ("usr/h2", "link", "usr/h1"), ("usr/s", "sym", "h1"),
                                      ("usr/up", "sym", "../etc/b")])
    layers.diff(base, new, tmp_path / "layer.tar", EPOCH)
    got = names(tmp_path / "layer.tar")
    assert list(got) == ["usr", "usr/h1", "usr/h2"]
    assert got["usr/h2"].islnk() and got["usr/h2"].linkname == "usr/h1"


def test_flatten_applies_whiteouts_and_opaque_directories(tmp_path):
    meta = ImageMeta(title="t", version="1", created=EPOCH, arch="amd64", tags=("t:1",))
    base = tree(tmp_path / "l0.tar", BASE)
    upper = tree(tmp_path / "l1.tar", [("etc", "dir", None), ("etc/.wh.a", "file", b""), ("etc/d", "file", b"d"),
                                       ("opt", "dir", None), ("opt/x", "dir", None), ("opt/x/.wh..wh..opq", "file", b""),
                                       ("opt/x/2", "file", b"2"), ("usr", "dir", None), ("usr/h1", "file", b"new")])
    write_image(tmp_path / "img.oci.tar", [base, upper], meta)
    (tmp_path / "w").mkdir()
    layers.flatten(tmp_path / "img.oci.tar", tmp_path / "flat.tar", tmp_path / "w")
    got = names(tmp_path / "flat.tar")
    assert list(got) == ["etc", "etc/b", "etc/d", "opt", "opt/x", "opt/x/2", "usr", "usr/h1", "usr/h2", "usr/s", "usr/up"]
    # h2 was a link to the lower h1, which the upper layer replaced: the flattened tree keeps h2's own contents
    assert content(tmp_path / "flat.tar", "usr/h1") == b"new" and content(tmp_path / "flat.tar", "usr/h2") == b"hh"


def test_the_sbom_reads_the_topmost_dpkg_status(tmp_path):
    meta = ImageMeta(title="t", version="1", created=EPOCH, arch="amd64", tags=("t:1",))
    status = "Package: {}\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n"
    lower = tree(tmp_path / "l0.tar", [("var/lib/dpkg/status", "file", status.format("base").encode())])
    upper = tree(tmp_path / "l1.tar", [("var/lib/dpkg/status", "file", (status.format("base") + status.format("jq")).encode())])
    write_image(tmp_path / "one.oci.tar", [lower], meta)
    write_image(tmp_path / "two.oci.tar", [lower, upper], meta)
    assert [p.name for p in installed(tmp_path / "one.oci.tar")] == ["base"]
    assert [p.name for p in installed(tmp_path / "two.oci.tar")] == ["base", "jq"]


def test_the_install_is_mmdebstraps_layered_install_on_the_flattened_base(tmp_path):
    cell = CellSpec(image="debian", distro="debian", release="bookworm", variant="default", arch="amd64",
                    bootstrapper="mmdebstrap", sources=(Source("http://mirror.invalid/debian", "bookworm", ("main",)),),
                    packages=("jq", "hello"), keyrings=(), epoch=EPOCH)
    argv = install_argv(cell, tmp_path / "raw.tar", None, tmp_path / "base.tar")
    assert "--variant=custom" in argv
    assert argv[-3:] == ["bookworm", str(tmp_path / "raw.tar"), "deb http://mirror.invalid/debian bookworm main"]
    hook = next(a for a in argv if a.startswith("--setup-hook=tar"))
    assert "--xattrs" in hook and "--exclude=etc/resolv.conf" in hook and str(tmp_path / "base.tar") in hook
    assert '--customize-hook=chroot "$1" apt-get install --yes -- jq hello' in argv
    assert not any("--include" in a for a in argv)


def test_a_directory_replaced_by_a_symlink_needs_no_whiteouts_below_it(tmp_path):
    base = tree(tmp_path / "base.tar", BASE)
    new = tree(tmp_path / "new.tar", [*BASE[:3], ("opt", "sym", "usr"), *BASE[6:]])
    layers.diff(base, new, tmp_path / "layer.tar", EPOCH)
    got = names(tmp_path / "layer.tar")
    assert list(got) == ["opt"] and got["opt"].issym()
