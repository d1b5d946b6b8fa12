"""Config validation and matrix expansion: no root, no daemon, no network (epochs are given)."""

from __future__ import annotations

import pytest

from baseforge import config
from baseforge.errors import BaseforgeError

MIRRORS = {"archive": "http://mirror.invalid/debian", "security": "http://mirror.invalid/debian-security"}


def plan(images=None, apps=None, **top):
    cfg = {"mirrors": MIRRORS, "epoch": 1700000000, "images": images or {"debian": {"releases": ["bookworm"]}}, **top}
    if apps is not None:
        cfg["apps"] = apps
    return config.plan(cfg, resolve_epochs=False)


def error(**kw) -> str:
    with pytest.raises(BaseforgeError) as exc:
        plan(**kw)
    return str(exc.value)


def test_default_matrix_and_tags():
    p = plan(images={"debian": {"releases": ["bookworm", "trixie"], "variants": ["default", "slim"]}})
    assert sorted(p.images) == ["debian/bookworm/default/amd64", "debian/bookworm/slim/amd64",
                                "debian/trixie/default/amd64", "debian/trixie/slim/amd64"]
    assert p.images["debian/bookworm/default/amd64"].meta.tags == (
        "baseforge/debian:bookworm", "baseforge/debian:12", "baseforge/debian:latest")
    assert p.images["debian/trixie/slim/amd64"].meta.tags == ("baseforge/debian:trixie-slim", "baseforge/debian:13-slim")
    assert p.images["debian/bookworm/slim/amd64"].cell.slim
    # slim is made at pack time from the same bootstrap as default
    assert p.images["debian/bookworm/slim/amd64"].raw_key == p.images["debian/bookworm/default/amd64"].raw_key


def test_sources_updates_security_and_epoch():
    cell = plan().images["debian/bookworm/default/amd64"].cell
    assert [s.suite for s in cell.sources] == ["bookworm", "bookworm-updates", "bookworm-security"]
    assert cell.sources[2].url == MIRRORS["security"] and cell.epoch == 1700000000


def test_foreign_arch_gets_suffixed_tags_and_empty_namespace():
    p = plan(images={"debian": {"releases": ["bookworm"], "architectures": ["amd64", "arm64"]}}, namespace="")
    assert p.images["debian/bookworm/default/arm64"].meta.tags[0] == "debian:bookworm-arm64"
    assert not p.images["debian/bookworm/default/arm64"].native


def test_extra_packages_get_their_own_bootstrap():
    p = plan(images={"debian": {"releases": ["bookworm"], "variants": ["default", {"name": "tools", "packages": ["curl"]}]}})
    assert p.images["debian/bookworm/tools/amd64"].raw_key != p.images["debian/bookworm/default/amd64"].raw_key
    assert p.images["debian/bookworm/tools/amd64"].cell.packages == ("curl",)


def test_a_variant_that_adds_packages_is_layered_on_the_largest_smaller_bootstrap():
    variants = ["default", "slim", {"name": "web", "packages": ["curl"]}, {"name": "dev", "packages": ["curl", "git"]},
                {"name": "other", "packages": ["git", "vim"]}, {"name": "std", "bootstrap_variant": "buildd", "packages": ["curl"]}]
    images = {"debian": {"releases": ["bookworm"], "variants": variants, "architectures": ["amd64", "arm64"]}}
    p = plan(images=images)
    img = {v: p.images[f"debian/bookworm/{v}/arm64"] for v in ("default", "web", "dev", "other", "std")}
    assert img["default"].parent_raw is None
    assert img["web"].parent_raw == img["default"].raw_key == "minbase"
    assert img["dev"].parent_raw == img["web"].raw_key  # {curl} beats {} under {curl, git}
    assert img["other"].parent_raw == "minbase"
    assert img["std"].parent_raw is None  # another bootstrap variant: no parent
    images["debian"]["layer_variants"] = False
    assert all(i.parent_raw is None for i in plan(images=images).images.values())
    # debootstrap cannot layer: every bootstrap from scratch
    # (debootstrap has no "standard" variant: refused before any job, see test_preflight.py)
    images["debian"].update(layer_variants=True, bootstrapper="debootstrap", variants=variants[:5])
    assert all(i.parent_raw is None for i in plan(images=images).images.values())


@pytest.mark.parametrize("images, where, allowed", [
    ({"debian": {"releases": ["bookworm", "bookwurm"]}}, "images.debian.releases[1]", "trixie"),
    ({"debian": {"releases": ["bookworm"], "variants": ["thin"]}}, "images.debian.variants[0]", "slim"),
    ({"debian": {"releases": ["bookworm"], "architectures": ["amd64", "vax"]}}, "images.debian.architectures[1]", "arm64"),
    ({"debian": {"releases": ["bookworm"], "bootstrapper": "pacstrap"}}, "images.debian.bootstrapper", "mmdebstrap"),
    ({"gentoo": {"releases": ["x"]}}, "images.gentoo", "debian"),
    ({"debian": {"releases": ["bookworm"], "relases": []}}, "images.debian", "releases"),
    ({"debian": {"releases": ["bookworm"], "aliases": {"bookworm": ["-bad"]}}}, "images.debian.aliases.bookworm[0]", "tag"),
])
def test_bad_input_names_the_field_and_what_is_allowed(images, where, allowed):
    message = error(images=images)
    assert where in message and allowed in message
    assert "\n" not in message.split("\n  hint:")[0]  # one line of problem, one of hint


def test_duplicate_tags_are_rejected():
    message = error(apps={"debian": {"base": "scratch", "tags": ["bookworm"]}})
    assert "apps.debian.tags" in message and "baseforge/debian:bookworm is given to both" in message
    p = plan(images={"debian": {"releases": ["bookworm"], "aliases": {"bookworm": ["12", "stable"]}}})
    assert p.images["debian/bookworm/default/amd64"].meta.tags.count("baseforge/debian:12") == 1


def test_app_bases(tmp_path):
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx/a.txt").write_text("x")
    (tmp_path / "df").mkdir()
    (tmp_path / "df/Dockerfile").write_text("FROM baseforge/debian:12\nRUN true\n")
    cfg = {"mirrors": MIRRORS, "epoch": 1, "images": {"debian": {"releases": ["bookworm"]}}, "apps": {
        "a": {"base": "debian:bookworm", "context": "ctx", "add": {"a.txt": "/a.txt"}},
        "b": {"dockerfile": "df"}, "c": {"base": "scratch", "context": "ctx", "build": "true", "expect": "x"}}}
    p = config.plan(cfg, workdir=tmp_path, resolve_epochs=False)
    assert p.apps["a"].base == p.apps["b"].base == "debian/bookworm/default/amd64"
    assert p.apps["c"].base is None and p.apps["a"].meta.base_name == "baseforge/debian:bookworm"
    cfg["apps"] = {"d": {"base": "ubuntu:noble"}}
    with pytest.raises(BaseforgeError, match=r"apps.d.base.*not an image or app of this workflow"):
        config.plan(cfg, workdir=tmp_path, resolve_epochs=False)
    cfg["apps"] = {"e": {"dockerfile": "missing"}}
    with pytest.raises(BaseforgeError, match=r"apps.e.dockerfile.*does not exist"):
        config.plan(cfg, workdir=tmp_path, resolve_epochs=False)
    (tmp_path / "df/Dockerfile").write_text("FROM debian:bookworm\n")
    cfg["apps"] = {"f": {"dockerfile": "df"}}
    assert config.plan(cfg, workdir=tmp_path, resolve_epochs=False).apps["f"].from_refs == (
        ("debian:bookworm", "debian/bookworm/default/amd64"),)
    (tmp_path / "df/Dockerfile").write_text("FROM alpine:3\n")
    with pytest.raises(BaseforgeError, match=r"FROM alpine:3.*not an image or app of this workflow"):
        config.plan(cfg, workdir=tmp_path, resolve_epochs=False)
    # a scratch app must say what to smoke-test; an app on an image at least keeps its os-release
    cfg["apps"] = {"g": {"base": "scratch", "context": "ctx", "add": {"a.txt": "/a.txt"}}}
    with pytest.raises(BaseforgeError, match=r"apps.g: nothing to smoke-test.*\n.*expect:"):
        config.plan(cfg, workdir=tmp_path, resolve_epochs=False)
    cfg["apps"] = {"h": {"base": "debian:bookworm", "packages": ["jq=1.6-2.1", "file/bookworm"]},
                   "i": {"base": "h", "context": "ctx", "add": {"a.txt": "/a.txt"}}}
    p = config.plan(cfg, workdir=tmp_path, resolve_epochs=False)
    assert p.apps["h"].checks == (["dpkg-query", "-W", "jq", "file"],) and not p.apps["h"].os_release
    assert p.apps["i"].os_release == p.images["debian/bookworm/default/amd64"].os_release != {}


def test_the_shipped_config_is_valid():
    from pathlib import Path

    cfg = config.load(Path(__file__).resolve().parent.parent / "config/config.yaml")
    cfg["epoch"] = 1
    p = config.plan(cfg, workdir=Path(__file__).resolve().parent.parent, resolve_epochs=False)
    assert {"hello", "greeter"} <= set(p.apps)


def test_an_apps_env_adds_to_its_bases_as_dockerfile_env_does(tmp_path):
    """env: {A: 1} on a Debian base keeps the base's PATH (a replaced environment lost it)."""
    cfg = {"mirrors": MIRRORS, "epoch": 1, "images": {"debian": {"releases": ["bookworm"], "env": {"LANG": "C.UTF-8"}}},
           "apps": {"a": {"base": "debian:bookworm", "packages": ["jq"], "env": {"A": "1", "LANG": "C"}},
                    "b": {"base": "a", "packages": ["file"]}}}
    p = config.plan(cfg, workdir=tmp_path, resolve_epochs=False)
    base = p.images["debian/bookworm/default/amd64"].meta.env
    assert {e.split("=")[0] for e in base} == {"PATH", "LANG"}
    env = dict(e.split("=", 1) for e in p.apps["a"].meta.env)
    assert env["A"] == "1" and env["LANG"] == "C" and env["PATH"] == dict(e.split("=", 1) for e in base)["PATH"]
    assert p.apps["b"].meta.env == p.apps["a"].meta.env


def test_an_app_inherits_its_bases_image_config_as_a_dockerfile_image_does(tmp_path):
    """cmd, entrypoint, workdir and user come from the base unless the app sets them; a new entrypoint drops
    the base's cmd (Docker's rule); user: reaches the OCI config."""
    from baseforge.oci import _config

    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx/f").write_text("x")
    cfg = {"mirrors": MIRRORS, "epoch": 1, "images": {"debian": {"releases": ["bookworm"]}}, "apps": {
        "a": {"base": "debian:bookworm", "packages": ["hello"], "cmd": ["hello"], "workdir": "/srv", "user": "nobody"},
        "b": {"base": "a", "packages": ["jq"]},
        "c": {"base": "a", "packages": ["jq"], "entrypoint": ["jq"], "user": "1000:1000"}}}
    p = config.plan(cfg, workdir=tmp_path, resolve_epochs=False)
    a, b, c = (p.apps[n].meta for n in "abc")
    assert (b.cmd, b.workdir, b.user, b.entrypoint) == (("hello",), "/srv", "nobody", ())
    assert (c.cmd, c.entrypoint, c.user, c.workdir) == ((), ("jq",), "1000:1000", "/srv")
    assert _config(a, [], [])["config"]["User"] == "nobody"
    # an image's meta (no user) keeps its params: no "user" key, no User in the config
    deb = p.images["debian/bookworm/default/amd64"].meta
    assert "user" not in deb.to_dict() and "User" not in _config(deb, [], [])["config"]
    assert type(deb).from_dict(a.to_dict()) == a
    cfg["apps"] = {"d": {"base": "debian:bookworm", "packages": ["jq"], "user": "root; rm -rf /"}}
    with pytest.raises(BaseforgeError, match=r"apps.d.user"):
        config.plan(cfg, workdir=tmp_path, resolve_epochs=False)
