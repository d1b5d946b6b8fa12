"""A lock is an input of the DAG: a new or changed lock of a busybox cell, a distroless cell or an app reruns
exactly that cell (and the apps on it) or that app (and the apps on it). Snakemake's own dry-run job list,
on the default matrix with every output touched (tests/test_incremental.py); no mirror, no bootstrap."""

from __future__ import annotations

import pytest
from test_incremental import END, jobs, template, work  # noqa: F401  (template, work: its fixtures)

from baseforge import lockfile

SUITES = ("bookworm", "bookworm-security", "bookworm-updates")


def lock_text(cell: str, suites: tuple[str, ...], packages: list[str], version: str = "1.0") -> str:
    lines = ["epoch\t1700000000"] + [f"suite\t{s}\t2023-11-14T22:13:20Z\t{'a' * 64}" for s in suites]
    lines += [f"package\t{p}\t{version}\tamd64\t{suites[0]}\t{'b' * 64}\t100\tpool/main/{p}_{version}_amd64.deb"
              for p in packages]
    return f"# baseforge lock of {cell}: test\n" + "\n".join(lines) + "\n"


def write(work, lock_id: str, text: str) -> None:
    file = lockfile.path(work, lock_id)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)


def cell_jobs(cell: str) -> set[tuple[str, str]]:
    return {("bootstrap", ""), ("pack", f"build/rootfs/{cell}/rootfs.tar"), ("image", f"build/oci/{cell}.oci.tar"),
            ("load", f"build/engine/{cell}.json"), ("smoketest", f"build/smoke/{cell}.ok"),
            ("sbom", f"build/rootfs/{cell}/sbom.spdx.json")}


def app_jobs(*apps: str) -> set[tuple[str, str]]:
    return {(r, o.format(a)) for a in apps for r, o in (("app_image", "build/apps/{}.oci.tar"),
                                                       ("app_load", "build/engine/apps/{}.json"),
                                                       ("smoketest_app", "build/smoke/apps/{}.ok"))}


def without_bootstrap_output(found: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The job list with the bootstrap's output (its raw path holds the lock's key) blanked."""
    return {(r, "" if r == "bootstrap" else o) for r, o in found}


@pytest.mark.parametrize(("cell", "suites", "packages", "apps"), [
    ("busybox/bookworm/default/amd64", ("bookworm",), ["busybox-static"], ()),
    ("distroless/bookworm/static/amd64", SUITES, ["base-files", "ca-certificates", "netbase", "tzdata"], ("hello-static",)),
])
def test_a_new_or_changed_cell_lock_rebuilds_that_cell_and_its_apps_only(workflow, work, cell, suites, packages, apps):
    write(work, cell, lock_text(cell, suites, packages))
    found = jobs(workflow, work)
    assert without_bootstrap_output(found) == {*END, *cell_jobs(cell), *app_jobs(*apps)}
    (raw,) = [o for r, o in found if r == "bootstrap"]
    assert f"-lock{lockfile.read(lockfile.path(work, cell)).key[:12]}" in raw
    workflow.run(work, "--touch", "--cores", "1", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert jobs(workflow, work) == set()
    write(work, cell, lock_text(cell, suites, packages, "2.0"))  # lock --update found a new version
    assert without_bootstrap_output(jobs(workflow, work)) == {*END, *cell_jobs(cell), *app_jobs(*apps)}


def test_an_app_lock_rebuilds_that_app_only(workflow, work):
    write(work, "apps/greeter", lock_text("apps/greeter", SUITES, ["hello"]))
    assert jobs(workflow, work) == {*END, *app_jobs("greeter")}
    workflow.run(work, "--touch", "--cores", "1", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    write(work, "apps/greeter", lock_text("apps/greeter", SUITES, ["hello"], "2.0"))
    assert jobs(workflow, work) == {*END, *app_jobs("greeter")}
    # a lock that does not fit the app is refused before any job: here, a package the app installs is missing
    write(work, "apps/greeter", lock_text("apps/greeter", SUITES, ["other"]))
    proc = workflow.run(work, "-n", check=False)
    assert "config/locks/apps/greeter.lock no longer fits config for apps.greeter: the packages hello are not locked" in \
        proc.stdout + proc.stderr
