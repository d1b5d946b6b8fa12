"""The code hash of a rule is the import closure of what its script calls (and the cell's plugins), no more."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from baseforge import codehash

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def lib(tmp_path, monkeypatch):
    """A copy of the package that the hash reads instead of the real one."""
    copy = tmp_path / "baseforge"
    shutil.copytree(ROOT / "baseforge", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codehash, "_root", lambda: copy)
    codehash.closure.cache_clear()
    yield copy
    codehash.closure.cache_clear()


def key(script: str, modules: tuple[str, ...]) -> str:
    codehash.closure.cache_clear()
    return codehash.script_hash(ROOT / "scripts" / f"{script}.py", *modules)


def changed_by(lib: Path, script: str, modules: tuple[str, ...]) -> set[str]:
    """Every file of the package whose change changes the key."""
    before = key(script, modules)
    out = set()
    for f in sorted(p for p in lib.rglob("*") if p.is_file()):
        text = f.read_bytes()
        f.write_bytes(text + b"\n# a change\n")
        if key(script, modules) != before:
            out.add(f.relative_to(lib).as_posix())
        f.write_bytes(text)
    assert key(script, modules) == before  # the same bytes give the same key
    return out


@pytest.mark.parametrize("script, cell, inside, outside", [
    ("pack", None, {"pack.py", "packtree.py", "packtar.py", "packdata.py", "manifest.py", "data/leaks.tsv",
                    "data/slim.tsv", "run.py", "errors.py"},
     {"oci.py", "engine.py", "bootstrap/__init__.py", "distro/debian.py"}),
    # busybox runs mmdebstrap: its module counts (the hand-written list forgot it)
    ("bootstrap", ("busybox", "busybox"), {"bootstrap/__init__.py", "bootstrap/busybox.py", "bootstrap/mmdebstrap.py",
                                           "pkgcache.py", "host.py", "run.py", "spec.py", "distro/busybox.py",
                                           "distro/debian.py", "mirror.py"},
     {"bootstrap/dnf.py", "bootstrap/apk.py", "distro/fedora.py", "pack.py", "engine.py", "config.py", "doctor.py"}),
    # a distroless cell: its own bootstrapper module (and the download check it shares), not mmdebstrap's
    ("bootstrap", ("distroless", "debian"), {"bootstrap/__init__.py", "bootstrap/distroless.py", "download.py",
                                             "pkgcache.py", "host.py", "run.py", "spec.py", "distro/debian.py"},
     {"bootstrap/mmdebstrap.py", "chrootless.py", "bootstrap/dnf.py", "pack.py", "config.py", "doctor.py"}),
    # mmdebstrap builds foreign architectures through chrootless.py
    ("bootstrap", ("mmdebstrap", "debian"), {"bootstrap/mmdebstrap.py", "chrootless.py", "host.py", "distro/debian.py"},
     {"bootstrap/distroless.py", "bootstrap/dnf.py", "config.py", "doctor.py"}),
    # the sbom's provenance reads epochs and presets (the hand-written list forgot both)
    ("sbom", ("mmdebstrap", "debian"), {"provenance.py", "manifest.py", "epoch.py", "distro/debian.py",
                                        "bootstrap/mmdebstrap.py"},
     {"distro/alpine.py", "bootstrap/dnf.py", "oci.py", "pack.py"}),
    ("image", None, {"oci.py", "ocigzip.py", "ocilayout.py", "ociread.py", "spec.py", "epoch.py"},
     {"pack.py", "engine.py", "app.py"}),
    # the report's charts: matplotlib's drawing, the labels' module, the official sizes it reads
    ("report_sizes", None, {"charts.py", "report.py", "paths.py", "data/official_sizes.tsv", "run.py"},
     {"engine.py", "pack.py", "oci.py", "console.py", "verify.py"}),
    ("report_times", None, {"charts.py", "report.py", "run.py"}, {"engine.py", "summary.py", "console.py"}),
])
def test_a_change_inside_the_closure_changes_the_key_and_outside_it_does_not(lib, script, cell, inside, outside):
    modules = codehash.cell_modules(*cell) if cell else ()
    changed = changed_by(lib, script, modules)
    assert inside <= changed, inside - changed
    assert not outside & changed, outside & changed
    closure = set().union(*(codehash.closure(m) for m in (*codehash.script_imports(ROOT / "scripts" / f"{script}.py"), *modules)))
    assert changed == {p.relative_to(lib).as_posix() for p in closure}


def test_a_third_party_plugin_module_counts_with_its_own_file_and_what_it_imports(lib, tmp_path, monkeypatch):
    plugin = tmp_path / "site" / "acme_preset.py"
    plugin.parent.mkdir()
    plugin.write_text("from baseforge.distro.debian import Debian\n")
    monkeypatch.syspath_prepend(str(plugin.parent))
    a = codehash.module_hash("acme_preset")
    plugin.write_text("from baseforge.distro.debian import Debian\n# changed\n")
    b = codehash.module_hash("acme_preset")
    assert b != a
    with open(lib / "distro/debian.py", "a") as f:
        f.write("# changed\n")
    codehash.closure.cache_clear()
    assert codehash.module_hash("acme_preset") != b


def test_an_app_without_packages_is_keyed_by_baseforge_app_only(lib):
    """rule app_image: pack's rules, mmdebstrap and the package cache count only for apps that install packages."""
    package_code = {"pack.py", "packtree.py", "pkgcache.py", "bootstrap/mmdebstrap.py", "app_packages.py"}
    with_packages = {p.relative_to(lib).as_posix() for m in codehash.script_imports(ROOT / "scripts/app_image.py")
                     for p in codehash.closure(m)}
    without = {p.relative_to(lib).as_posix() for p in codehash.closure("baseforge.app")}
    assert package_code <= with_packages and not package_code & without
    assert {"app.py", "manifest.py", "oci.py", "layers.py"} <= without <= with_packages
    before = codehash.module_hash("baseforge.app")
    with open(lib / "pack.py", "a") as f:
        f.write("# changed\n")
    codehash.closure.cache_clear()
    assert codehash.module_hash("baseforge.app") == before
    with open(lib / "app.py", "a") as f:
        f.write("# changed\n")
    codehash.closure.cache_clear()
    assert codehash.module_hash("baseforge.app") != before
