"""Apps on apps: an app's base may be an image or another app of the workflow (base: and Dockerfile FROM), to
any depth; cycles and unknown names are refused at plan time; changing a base rebuilds exactly its descendants."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_incremental import END, jobs, touched

from baseforge import config
from baseforge.errors import BaseforgeError

MIRRORS = {"archive": "http://mirror.invalid/debian", "security": "http://mirror.invalid/debian-security"}
DEB = "debian/bookworm/default/amd64"


def plan(tmp_path: Path, apps: dict, dockerfiles: dict[str, str] | None = None) -> config.Plan:
    for name, text in (dockerfiles or {}).items():
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / "Dockerfile").write_text(text)
    cfg = {"mirrors": MIRRORS, "epoch": 1700000000, "namespace": "ns", "apps": apps,
           "images": {"debian": {"releases": ["bookworm"], "variants": ["default", "slim"]},
                      "busybox": {"releases": ["bookworm"]}}}
    return config.plan(cfg, workdir=tmp_path, resolve_epochs=False)


def refused(tmp_path: Path, apps: dict, dockerfiles: dict[str, str] | None = None) -> str:
    with pytest.raises(BaseforgeError) as exc:
        plan(tmp_path, apps, dockerfiles)
    return str(exc.value)


def test_a_chain_of_apps_of_both_kinds_resolves_to_any_depth(tmp_path):
    # listed top first: the plan orders them itself
    p = plan(tmp_path, {
        "top": {"base": "web", "packages": ["curl"]},
        "web": {"dockerfile": "web"},
        "svc": {"base": "ns/tool:v1", "packages": ["jq"], "env": {"A": "1"}},
        "tool": {"base": "debian:bookworm-slim", "packages": ["hello"], "tags": ["v1"]},
    }, {"web": "FROM svc AS build\nFROM build\nRUN true\n"})
    assert p.apps["tool"].base == "debian/bookworm/slim/amd64"
    assert (p.apps["svc"].base, p.apps["web"].base, p.apps["top"].base) == ("apps/tool", "apps/svc", "apps/web")
    assert {a.root for a in p.apps.values()} == {"debian/bookworm/slim/amd64"}
    assert p.apps["web"].from_refs == (("svc", "apps/svc"),)
    assert p.apps["svc"].meta.base_name == "ns/tool:v1" and p.apps["top"].meta.base_name == "ns/web:latest"
    assert p.apps["top"].meta.created == 1700000000 and p.apps["top"].packages == ("curl",)
    assert list(p.apps) == ["top", "web", "svc", "tool"]  # config order kept


def test_a_cycle_is_refused_naming_the_field(tmp_path):
    message = refused(tmp_path, {"a": {"base": "b:latest", "packages": ["jq"]}, "b": {"base": "ns/a", "packages": ["jq"]}})
    assert "apps.a.base" in message and "a -> b -> a" in message
    message = refused(tmp_path, {"me": {"dockerfile": "me"}}, {"me": "FROM ns/me:latest\n"})
    assert "apps.me.dockerfile" in message and "me -> me" in message
    message = refused(tmp_path, {"x": {"dockerfile": "x"}, "y": {"base": "x", "packages": ["jq"]}},
                      {"x": "FROM y\n"})
    assert "cycle" in message and ("x -> y -> x" in message or "y -> x -> y" in message)


def test_unknown_bases_and_packages_without_apt_are_refused(tmp_path):
    message = refused(tmp_path, {"a": {"base": "nothere:latest", "packages": ["jq"]}})
    assert "apps.a.base" in message and "not an image or app of this workflow" in message and "ns/debian:bookworm" in message
    message = refused(tmp_path, {"a": {"base": "scratch", "packages": ["jq"]}})
    assert "apps.a.packages" in message and "scratch" in message
    message = refused(tmp_path, {"a": {"base": "busybox:bookworm", "packages": ["jq"]}})
    assert "apps.a.packages" in message and "busybox" in message
    # packages on an app that is on busybox: the chain's bottom decides
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx/f").write_text("x")
    message = refused(tmp_path, {"a": {"base": "busybox:bookworm", "context": "ctx", "add": {"f": "/f"}, "checks": [["/f"]]},
                                 "b": {"base": "a", "packages": ["jq"]}})
    assert "apps.b.packages" in message
    with pytest.raises(BaseforgeError, match=r"apps.d.*packages"):
        plan(tmp_path, {"d": {"dockerfile": "d", "packages": ["jq"]}}, {"d": "FROM debian:bookworm\n"})


# the default matrix plus a chain: tool (packages) <- svc <- web (Dockerfile) <- top; side sits beside it
CHAIN = """  tool:
    base: debian:bookworm
    packages: [file]
  svc:
    base: tool
    packages: [jq]
  web:
    dockerfile: apps/web
  top:
    base: web:latest
    packages: [curl]
  side:
    base: debian:bookworm
    packages: [jq]
"""


@pytest.fixture(scope="module")
def chain_template(tmp_path_factory, workflow):
    from test_incremental import CONFIG

    work = workflow.make(tmp_path_factory.mktemp("chain"), CONFIG + CHAIN)
    (work / "apps/web").mkdir()
    # two stages: busybox's shell is copied into an app on svc (a second workflow base of one Dockerfile)
    (work / "apps/web/Dockerfile").write_text("ARG BASE=bfinc/svc\nFROM bfinc/busybox:bookworm AS bb\nFROM ${BASE}\n"
                                              "COPY --from=bb /bin/busybox /bb\nCMD [\"jq\", \"--version\"]\n")
    return touched(workflow, work)


@pytest.fixture
def chain(chain_template, tmp_path):
    dest = tmp_path / "work"
    shutil.copytree(chain_template, dest, symlinks=True)
    return dest


def test_changing_a_base_app_rebuilds_exactly_its_descendants(workflow, chain):
    assert jobs(workflow, chain) == set()
    cfg = chain / "config/config.yaml"
    cfg.write_text(cfg.read_text().replace("packages: [file]", "packages: [file, less]"))
    found = jobs(workflow, chain)
    expected = {*END, ("app_build", "build/apps/web.oci.tar"),
                ("app_load", "build/engine/apps/web.json"), ("smoketest_app", "build/smoke/apps/web.ok")}
    for app in ("tool", "svc", "top"):
        expected |= {("app_image", f"build/apps/{app}.oci.tar"), ("app_load", f"build/engine/apps/{app}.json"),
                     ("smoketest_app", f"build/smoke/apps/{app}.ok")}
    assert found == expected


def test_changing_a_dockerfile_app_in_the_middle_rebuilds_what_is_above_it(workflow, chain):
    with open(chain / "apps/web/Dockerfile", "a") as f:
        f.write("# changed\n")
    assert jobs(workflow, chain) == {
        ("app_build", "build/apps/web.oci.tar"), ("app_load", "build/engine/apps/web.json"),
        ("smoketest_app", "build/smoke/apps/web.ok"), ("app_image", "build/apps/top.oci.tar"),
        ("app_load", "build/engine/apps/top.json"), ("smoketest_app", "build/smoke/apps/top.ok"), *END}


def test_changing_any_image_a_dockerfile_reads_rebuilds_it_and_what_is_above_it(workflow, chain):
    """web's Dockerfile builds FROM svc and copies from a busybox stage: a new busybox rebuilds web and top
    (and nothing else of the chain)."""
    cfg = chain / "config/config.yaml"
    text = cfg.read_text()
    assert "    cmd: [sh]\n" in text
    cfg.write_text(text.replace("    cmd: [sh]\n", "    cmd: [sh, -l]\n", 1))
    bb = "busybox/bookworm/default/amd64"
    assert jobs(workflow, chain) == {
        *END, ("image", f"build/oci/{bb}.oci.tar"), ("load", f"build/engine/{bb}.json"),
        ("smoketest", f"build/smoke/{bb}.ok"), ("sbom", f"build/rootfs/{bb}/sbom.spdx.json"),
        ("app_build", "build/apps/web.oci.tar"), ("app_load", "build/engine/apps/web.json"),
        ("smoketest_app", "build/smoke/apps/web.ok"), ("app_image", "build/apps/top.oci.tar"),
        ("app_load", "build/engine/apps/top.json"), ("smoketest_app", "build/smoke/apps/top.ok")}
