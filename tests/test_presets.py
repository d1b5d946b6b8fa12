"""A Debian derivative is one small module: a Devuan-like preset, installed through the entry point group
as a third party would (a dist-info on PYTHONPATH, nothing in baseforge touched), plans like any preset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEVUAN = '''
"""Devuan: Debian without systemd. Only what differs from Debian: os-release ID, release names, mirror keys."""

from baseforge.distro.debian import Debian


class Devuan(Debian, name="devuan"):
    releases = {"chimaera": "4", "daedalus": "5", "excalibur": "6", "ceres": "unstable"}
    rolling = ("ceres",)
    architectures = ("amd64", "arm64", "armhf", "i386")
    os_id = "devuan"
    # no default: Debian's host apt sources are not a Devuan mirror; security is on the main mirror unless set
    mirror_keys = {"devuan": "mirror", "devuan-security": "security_mirror"}
'''

PLAN = '''
import json, sys
from baseforge import config
from baseforge.errors import BaseforgeError
cfg = json.loads(sys.argv[1])
try:
    plan = config.plan(cfg, resolve_epochs=False)
except BaseforgeError as err:
    print(json.dumps({"error": str(err)}))
else:
    print(json.dumps({path: {"sources": [s.deb_line() for s in img.cell.sources], "os_release": img.os_release,
                             "tags": list(img.meta.tags), "bootstrapper": img.cell.bootstrapper,
                             "family": img.family, "url": img.epoch_source}
                      for path, img in plan.images.items()}))
'''


def install(site: Path) -> Path:
    info = site / "devuan_preset-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "devuan_preset.py").write_text(DEVUAN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: devuan-preset\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[baseforge.distros]\ndevuan = devuan_preset\n")
    return site


def plan(cfg: dict, site: Path | None = None) -> dict:
    path = os.pathsep.join(str(p) for p in (site, ROOT) if p)
    proc = subprocess.run([sys.executable, "-c", PLAN, json.dumps(cfg)], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": path})
    return json.loads(proc.stdout)


def test_the_devuan_preset_is_about_30_lines():
    assert len(DEVUAN.strip().splitlines()) <= 30


def test_a_devuan_preset_from_an_entry_point_plans_with_its_own_id_releases_and_mirror(tmp_path):
    site = install(tmp_path / "site")
    cfg = {"mirrors": {"devuan": "http://devuan.invalid/merged/"},
           "images": {"devuan": {"releases": ["daedalus", "ceres"]}}}
    images = plan(cfg, site)
    stable, ceres = images["devuan/daedalus/default/amd64"], images["devuan/ceres/default/amd64"]
    assert stable["sources"] == ["deb http://devuan.invalid/merged daedalus main",
                                 "deb http://devuan.invalid/merged daedalus-updates main",
                                 "deb http://devuan.invalid/merged daedalus-security main"]
    assert stable["os_release"] == {"ID": "devuan", "VERSION_CODENAME": "daedalus"}
    assert stable["tags"] == ["baseforge/devuan:daedalus", "baseforge/devuan:5", "baseforge/devuan:latest"]
    assert stable["bootstrapper"] == "mmdebstrap" and stable["family"] == "debian"
    assert stable["url"] == "Date of http://devuan.invalid/merged/dists/daedalus/Release"
    assert ceres["sources"] == ["deb http://devuan.invalid/merged ceres main"]
    assert ceres["os_release"] == {"ID": "devuan"}

    # the image's options.mirror wins over mirrors.devuan, a security mirror of its own over the main one
    cfg["mirrors"]["devuan-security"] = "http://sec.invalid/merged"
    cfg["images"]["devuan"] = {"releases": ["daedalus"], "options": {"mirror": "http://other.invalid/merged"}}
    (img,) = plan(cfg, site).values()
    assert img["sources"][0] == "deb http://other.invalid/merged daedalus main"
    assert img["sources"][2] == "deb http://sec.invalid/merged daedalus-security main"


def test_mirror_keys_are_checked_against_the_presets_there_are(tmp_path):
    cfg = {"epoch": 1, "mirrors": {"devuan": "http://devuan.invalid/merged"}, "images": {"debian": {"releases": ["bookworm"]}}}
    error = plan(cfg)["error"]  # without the plugin, no preset reads mirrors.devuan
    assert error.startswith("config mirrors.devuan:") and "archive (busybox, debian)" in error
    assert "devuan" not in error.split("hint:")[1]
    site = install(tmp_path / "site")
    cfg["mirrors"] = {"devuan": "http://devuan.invalid/merged", "archive": "http://debian.invalid/debian",
                      "security": "http://debian.invalid/debian-security"}
    assert "debian/bookworm/default/amd64" in plan(cfg, site)
    cfg["mirrors"]["devaun"] = "http://devuan.invalid/merged"
    error = plan(cfg, site)["error"]
    assert error.startswith("config mirrors.devaun:") and "devuan (devuan)" in error and "devuan-security (devuan)" in error


def test_a_derivative_without_a_mirror_says_which_key_to_set(tmp_path):
    site = install(tmp_path / "site")
    error = plan({"epoch": 1, "images": {"devuan": {"releases": ["daedalus"]}}}, site)["error"]
    assert "no mirror configured for devuan" in error and "mirrors: {devuan:" in error
