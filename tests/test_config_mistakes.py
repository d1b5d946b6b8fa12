"""Config mistakes, refused before any job with the exact message: the config path and what is allowed.

The mirror is a real HTTP server on 127.0.0.1 serving Release files (bookworm for amd64 and arm64 only,
no buster), so the suite and architecture checks run against what a mirror says, not a stub.
"""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from pathlib import Path

import pytest

from baseforge import config, configfile
from baseforge.errors import BaseforgeError

RELEASE = """Origin: Debian
Label: Debian
Suite: stable
Codename: {suite}
Date: Sat, 09 Nov 2024 10:05:25 UTC
Architectures: all amd64 arm64
Components: main contrib
Description: Debian
MD5Sum:
"""


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror")
    for suite in ("bookworm", "bookworm-updates", "trixie"):
        (root / "debian/dists" / suite).mkdir(parents=True)
        (root / "debian/dists" / suite / "Release").write_text(RELEASE.format(suite=suite))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/debian"
    server.shutdown()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refusal(cfg: dict, tmp_path: Path) -> str:
    with pytest.raises(BaseforgeError) as exc:
        config.plan(cfg, workdir=tmp_path)
    return str(exc.value)


def debian(mirror: str, epoch="release", **image) -> dict:
    return {"mirrors": {"archive": mirror, "security": mirror}, "epoch": epoch,
            "images": {"debian": {"releases": ["bookworm"], **image}}}


CASES = [
    ("a suite gone from the mirror", {"releases": ["bookworm", "buster"]},
     "config images.debian.releases: the mirror has no suite 'buster' ({mirror}/dists/buster/Release: 404 File not found)\n"
     "  hint: a release past its end of life leaves the regular mirrors: choose another release, or point mirrors: "
     "(or the image's options.mirror) at a mirror that still has it"),
    ("an architecture the suite does not have", {"architectures": ["amd64", "riscv64"]},
     "config images.debian.architectures[1]: bookworm has no riscv64 on this mirror ({mirror}/dists/bookworm/Release)\n"
     "  hint: architectures of bookworm there: amd64, arm64"),
    ("a bootstrap variant typo", {"variants": ["default", {"name": "tiny", "bootstrap_variant": "minbse"}]},
     "config images.debian.variants[1].bootstrap_variant: mmdebstrap has no variant 'minbse'\n"
     "  hint: allowed: extract, custom, essential, apt, required, minbase, buildd, important, debootstrap, standard"),
    ("a package name with a space", {"variants": ["default", {"name": "web", "packages": ["curl", "ca-certificates wget"]}]},
     "config images.debian.variants[1].packages[1]: 'ca-certificates wget' is not a package name\n"
     "  hint: one package per list item; a name has lowercase letters, digits, + - . (Debian policy), optionally :arch, "
     "=version or /suite"),
    # the schema admits rpm's and apk's spellings; apt's names are Debian's: lowercase
    ("a package name in capitals", {"variants": ["default", {"name": "web", "packages": ["Curl"]}]},
     "config images.debian.variants[1].packages[0]: 'Curl' is not a package name\n"
     "  hint: one package per list item; a name has lowercase letters, digits, + - . (Debian policy), optionally :arch, "
     "=version or /suite"),
    ("a package name with a semicolon", {"packages": ["curl;reboot"]},
     "config images.debian.packages[0]: 'curl;reboot' is not a package name\n"
     "  hint: one package per list item; a name has lowercase letters, digits, + - . (Debian policy), optionally :arch, "
     "=version or /suite"),
]


@pytest.mark.parametrize("what, image, message", CASES, ids=[c[0] for c in CASES])
def test_refused_before_any_job_with_the_exact_message(mirror, tmp_path, what, image, message):
    assert refusal(debian(mirror, **image), tmp_path) == message.format(mirror=mirror)


def test_a_good_config_passes_and_takes_its_epoch_from_the_release_file(mirror, tmp_path):
    p = config.plan(debian(mirror, variants=["default", {"name": "web", "packages": ["curl", "libc6:amd64", "tzdata=2024a-1"]}],
                           architectures=["amd64", "arm64"]), workdir=tmp_path)
    assert p.images["debian/bookworm/default/amd64"].cell.epoch == 1731146725


def test_an_unreachable_mirror_is_named_when_the_epoch_needs_it_and_left_to_the_bootstrap_otherwise(tmp_path):
    dead = f"http://127.0.0.1:{closed_port()}/debian"
    message = refusal(debian(dead), tmp_path)
    assert message.startswith(f"config images.debian.epoch: cannot read {dead}/dists/bookworm/Release: ")
    assert "Connection refused" in message
    assert config.plan(debian(dead, epoch=1700000000), workdir=tmp_path).images  # the bootstrap will say it


def test_a_tarball_image_without_sha256_is_named(tmp_path):
    cfg = {"epoch": 1, "images": {"mybase": {"distro": "tarball", "releases": ["1.0"], "options": {"path": "rootfs.tar"}}}}
    assert refusal(cfg, tmp_path) == (
        "config images.mybase: a tarball image needs options.sha256: the SHA-256 of the tarball (64 lowercase hex digits)\n"
        "  hint: sha256sum <tarball>")


def test_a_tag_an_app_takes_from_an_image_says_to_change_the_apps_tags(mirror, tmp_path):
    cfg = {**debian(mirror), "apps": {"debian": {"base": "scratch", "tags": ["bookworm"]}}}
    assert refusal(cfg, tmp_path) == (
        "config apps.debian.tags: tag baseforge/debian:bookworm is given to both images.debian (bookworm, default, amd64) "
        "and apps.debian\n  hint: change apps.debian.tags (or rename the app)")


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("epoch: 1\nimages:\n  debian:\n    releases: [bookworm]\n  debian:\n    releases: [trixie]\n")
    with pytest.raises(BaseforgeError) as exc:
        configfile.load(path)
    assert str(exc.value) == (
        f"{path}: key 'debian' is given twice, on line 3 and on line 5\n"
        "  hint: YAML keeps only the last one: merge the two 'debian' entries into one (e.g. one releases: list with both releases)")


@pytest.mark.parametrize("text, line, column, hint", [
    ("images:\n  debian:\n    releases: [bookworm\n", 4, 1, "check the indentation"),
    ("images:\n\tdebian: {}\n", 2, 1, "indent with spaces, not tabs"),
    ("images:\n  debian:\n    releases: [bookworm]\n   cmd: [sh]\n", 4, 4, "check the indentation"),
])
def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path, text, line, column, hint):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(BaseforgeError) as exc:
        configfile.load(path)
    assert str(exc.value).startswith(f"{path}, line {line}, column {column}: ")
    assert hint in exc.value.hint


BUSYBOX = "namespace: mine\nepoch: 1700000000\nimages:\n  busybox:\n    releases: [bookworm]\n    cmd: [sh]\n"


def planned_jobs(proc) -> dict[str, int]:
    """The job counts of a dry run's table (rule -> count)."""
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("job ") and "count" in line)
    rows = [line.split() for line in lines[start + 2:]]
    return {r[0]: int(r[1]) for r in rows[:next(i for i, r in enumerate(rows) if r[0] == "total")]}


def test_the_workflow_refuses_a_duplicated_key_and_a_syntax_error_naming_the_config_file(tmp_path, workflow):
    work = workflow.make(tmp_path / "w", BUSYBOX + "  busybox:\n    releases: [trixie]\n")
    proc = workflow.run(work, "-n", check=False)
    assert proc.returncode == 1
    assert ("baseforge: config/config.yaml: key 'busybox' is given twice, on line 4 and on line 7\n"
            "  hint: YAML keeps only the last one") in proc.stderr
    (work / "config/config.yaml").write_text(BUSYBOX.replace("[sh]", "[sh"))
    proc = workflow.run(work, "-n", check=False)
    assert proc.returncode == 1 and "baseforge: config/config.yaml, line 7, column 1: " in proc.stderr
    assert "Snakefile" not in proc.stderr


def test_configfile_is_the_whole_matrix(tmp_path, workflow):
    # the shipped example stays in config/config.yaml; the user's own file names one busybox image
    work = workflow.make(tmp_path / "w", (Path(__file__).resolve().parent.parent / "config/config.yaml").read_text())
    (work / "mine.yaml").write_text(BUSYBOX)
    proc = workflow.run(work, "-n", "--configfile", "mine.yaml")
    jobs = planned_jobs(proc)
    assert jobs == {"all": 1, "bootstrap": 1, "image": 1, "load": 1, "pack": 1, "sbom": 1, "smoketest": 1, "summary": 1,
                    "report_sizes": 1, "report_times": 1}, jobs
    assert "config/config.yaml is not read when --configfile is given" in proc.stderr
    # a mistake in it is reported against that file
    (work / "mine.yaml").write_text(BUSYBOX + "  busybox:\n    releases: [trixie]\n")
    proc = workflow.run(work, "-n", "--configfile", "mine.yaml", check=False)
    assert proc.returncode == 1 and "baseforge: mine.yaml: key 'busybox' is given twice, on line 4 and on line 7" in proc.stderr


MORE = [
    ("an unknown top-level key", {"imagess": {}},
     "config (top level): unknown key 'imagess' (did you mean 'images'?)\n"
     "  hint: allowed keys here: apps, engine, epoch, images, mirrors, namespace, package_cache, registry"),
    ("an unknown key of a registry", {"registry": {"url": "127.0.0.1:5000", "tls_verfy": False}},
     "config registry: unknown key 'tls_verfy' (did you mean 'tls_verify'?)\n  hint: allowed keys here: sign, tls_verify, url"),
    ("an unknown key of a variant", {"images": {"debian": {"releases": ["bookworm"], "variants": [{"name": "web", "pakages": ["curl"]}]}}},
     "config images.debian.variants[0]: unknown key 'pakages' (did you mean 'packages'?)\n"
     "  hint: allowed keys here: bootstrap_variant, checks, distroless, name, packages, slim"),
    ("a release typo", {"images": {"debian": {"releases": ["bookwrom"]}}},
     "config images.debian.releases[0]: unknown release of debian 'bookwrom' (did you mean 'bookworm'?)\n"
     "  hint: allowed: buster, bullseye, bookworm, trixie, forky, sid, unstable, testing, stable, oldstable"),
    ("an unknown bootstrapper", {"images": {"debian": {"releases": ["bookworm"], "bootstrapper": "debootstrp"}}},
     "config images.debian.bootstrapper: unknown bootstrapper for debian 'debootstrp' (did you mean 'debootstrap'?)\n"
     "  hint: allowed: mmdebstrap, debootstrap"),
    ("a string for a list", {"images": {"debian": {"releases": "bookworm"}}},
     "config images.debian.releases: 'bookworm' is a string, it must be a list ([a, b] or one '- item' per line)\n"
     "  hint: see the config reference in config/README.md"),
    ("a string for a boolean", {"images": {"debian": {"releases": ["bookworm"], "layer_variants": "yes"}}},
     "config images.debian.layer_variants: 'yes' is a string, it must be true or false\n"
     "  hint: a variant that only adds packages is bootstrapped on top of the smaller bootstrap of its release (mmdebstrap); "
     "false: every variant from scratch"),
    ("a list for a mapping", {"images": ["debian"]},
     "config images: ['debian'] is a list, it must be a mapping (key: value)\n  hint: see the config reference in config/README.md"),
    ("an empty list", {"images": {"debian": {"releases": ["bookworm"], "architectures": []}}},
     "config images.debian.architectures: [] should be non-empty\n  hint: see the config reference in config/README.md"),
    ("an app on a variant that does not exist", {"apps": {"web": {"base": "debian:bookworm-nosuch", "packages": ["curl"]}}},
     "config apps.web.base: base 'debian:bookworm-nosuch' is not an image or app of this workflow\n"
     "  hint: use scratch or one of: baseforge/debian:12, baseforge/debian:bookworm, baseforge/debian:latest"),
]


@pytest.mark.parametrize("what, cfg, message", MORE, ids=[c[0] for c in MORE])
def test_more_mistakes_are_refused_with_the_path_and_a_did_you_mean(tmp_path, what, cfg, message):
    full = {"epoch": 1700000000, "images": {"debian": {"releases": ["bookworm"]}}, **cfg}
    with pytest.raises(BaseforgeError) as exc:
        config.plan(full, workdir=tmp_path, resolve_epochs=False)
    assert str(exc.value) == message


@pytest.mark.parametrize("text, message", [
    ("", "{path} is empty\n  hint: a config needs at least images: (see config/config.yaml)"),
    ("- debian\n- busybox\n", "{path}: the config must be a mapping (namespace:, images:, …), not a list"),
])
def test_an_empty_config_file_or_a_list_is_refused_by_name(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(BaseforgeError) as exc:
        configfile.load(path)
    assert str(exc.value) == message.format(path=path)


def test_baseforge_check_names_file_line_and_column_of_a_configfile_mistake(tmp_path):
    # Snakemake reads --configfile files itself, before the Snakefile, and names neither file nor line
    import subprocess
    import sys

    (tmp_path / "mine.yaml").write_text(BUSYBOX.replace("[sh]", "[sh"))
    root = Path(__file__).resolve().parent.parent
    run = lambda *a: subprocess.run([sys.executable, "-m", "baseforge", "check", *a], cwd=tmp_path, capture_output=True,  # noqa: E731
                                    text=True, env={**__import__("os").environ, "PYTHONPATH": str(root)})
    proc = run("mine.yaml")
    assert proc.returncode == 1 and proc.stderr.startswith("baseforge: mine.yaml, line 7, column 1: "), proc.stderr
    (tmp_path / "mine.yaml").write_text(BUSYBOX)
    proc = run("mine.yaml")
    assert proc.returncode == 0 and proc.stdout == "baseforge: mine.yaml: the config is valid (1 images, 0 apps)\n", proc.stderr


def test_a_bad_value_given_with_config_on_the_command_line_is_refused_before_any_job(tmp_path, workflow):
    work = workflow.make(tmp_path / "w", BUSYBOX)
    proc = workflow.run(work, "-n", "--config", "epoch=yesterday", check=False)
    assert proc.returncode == 1
    assert ("baseforge: config epoch: 'yesterday' is not allowed here\n"
            "  hint: SOURCE_DATE_EPOCH, or \"release\" for the Date of the suite's Release file") in proc.stderr
    proc = workflow.run(work, "-n", "--config", "namspace=x", check=False)
    assert proc.returncode == 1 and "baseforge: config (top level): unknown key 'namspace' (did you mean 'namespace'?)" in proc.stderr
