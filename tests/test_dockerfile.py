"""Dockerfile apps FROM a workflow image by every spelling Docker reads: namespace/name:tag, name:tag, no
tag, a digest, ARG-substituted, several stages (FROM of different images, a stage by name or index,
COPY --from an image), FROM scratch, continued lines, # escape=; what names no image is refused at plan time
naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_app_chain import plan, refused

from baseforge import dockerfile
from baseforge.errors import BaseforgeError

DEB, SLIM, BB = "debian/bookworm/default/amd64", "debian/bookworm/slim/amd64", "busybox/bookworm/default/amd64"
DIGEST = "sha256:" + "ab" * 32

SPELLINGS = {
    "FROM ns/debian:bookworm\n": ((("ns/debian:bookworm", DEB),), DEB),
    "FROM debian:bookworm-slim\nRUN true\n": ((("debian:bookworm-slim", SLIM),), SLIM),
    "FROM ns/debian\n": ((("ns/debian", DEB),), DEB),  # no tag: latest
    f"FROM ns/debian:bookworm@{DIGEST}\n": (((f"ns/debian:bookworm@{DIGEST}", DEB),), DEB),
    "ARG BASE=ns/debian:bookworm\nFROM ${BASE}\n": ((("ns/debian:bookworm", DEB),), DEB),
    "ARG REL=bookworm\nARG V=slim\nFROM ns/debian:$REL-${V:-x}\n": ((("ns/debian:bookworm-slim", SLIM),), SLIM),
    "ARG TAG\nFROM ns/debian:${TAG:-bookworm}\n": ((("ns/debian:bookworm", DEB),), DEB),
    "FROM --platform=linux/amd64 ns/debian:bookworm AS b\nfrom b\n": ((("ns/debian:bookworm", DEB),), DEB),
    # a build stage on Debian, the result on BusyBox: both are bases, the last stage's is the app's base
    "FROM ns/debian:bookworm AS build\nRUN true\nFROM ns/busybox:bookworm\nCOPY --from=build /etc/os-release /x\n":
        ((("ns/debian:bookworm", DEB), ("ns/busybox:bookworm", BB)), BB),
    "FROM ns/debian:bookworm\nCOPY --from=ns/busybox:bookworm /bin/busybox /bb\n":
        ((("ns/debian:bookworm", DEB), ("ns/busybox:bookworm", BB)), DEB),
    "FROM ns/debian:bookworm\nRUN --mount=type=bind,from=busybox:bookworm,target=/b true\n":
        ((("ns/debian:bookworm", DEB), ("busybox:bookworm", BB)), DEB),
    "FROM ns/debian:bookworm\nFROM scratch\nCOPY --from=0 /etc/os-release /x\n": ((("ns/debian:bookworm", DEB),), None),
    "FROM scratch\nCOPY f /f\n": ((), None),
    "# FROM nothere\nFROM \\\n  ns/debian:bookworm \\\n  AS x\n": ((("ns/debian:bookworm", DEB),), DEB),
    "# escape=`\nFROM `\n  ns/debian:bookworm\nRUN echo \\\n": ((("ns/debian:bookworm", DEB),), DEB),
}


@pytest.mark.parametrize("text", SPELLINGS, ids=range(len(SPELLINGS)))
def test_every_spelling_of_a_workflow_base_resolves(tmp_path, text):
    from_refs, base = SPELLINGS[text]
    app = plan(tmp_path, {"a": {"dockerfile": "a", "expect": "x"}}, {"a": text}).apps["a"]
    assert (app.from_refs, app.base) == (from_refs, base)


def test_an_app_named_like_scratch_is_no_base_of_from_scratch(tmp_path):
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx/f").write_text("x")
    p = plan(tmp_path, {"scratch": {"dockerfile": "scratch", "checks": [["/f"]]}}, {"scratch": "FROM scratch\nCOPY f /f\n"})
    assert p.apps["scratch"].base is None


def test_a_stage_and_a_copy_from_make_chains_and_cycles(tmp_path):
    p = plan(tmp_path, {"tool": {"base": "debian:bookworm", "packages": ["jq"]}, "web": {"dockerfile": "web", "expect": "x"}},
             {"web": "FROM busybox:bookworm\nCOPY --from=ns/tool /usr/bin/jq /jq\n"})
    assert p.apps["web"].from_refs == (("busybox:bookworm", BB), ("ns/tool", "apps/tool"))
    assert list(p.apps) == ["tool", "web"]
    message = refused(tmp_path, {"x": {"dockerfile": "x"}, "y": {"dockerfile": "y"}},
                      {"x": "FROM busybox:bookworm\nCOPY --from=y /a /a\n", "y": "FROM ns/x\n"})
    assert "cycle" in message and ("apps.x.dockerfile" in message or "apps.y.dockerfile" in message)


@pytest.mark.parametrize("text, words", [
    ("FROM ${NOPE}\n", ["apps.a.dockerfile", "names no image", "ARG"]),
    ("ARG B\nFROM $B\n", ["apps.a.dockerfile", "names no image"]),
    ("RUN true\n", ["apps.a.dockerfile", "no FROM"]),
    ("FROM alpine:3\n", ["apps.a.dockerfile (FROM alpine:3)", "not an image or app of this workflow", "ns/debian:bookworm"]),
    ("FROM ns/debian:bookworm\nCOPY --from=nothere:1 /a /a\n", ["apps.a.dockerfile (COPY --from nothere:1)", "not an image"]),
])
def test_what_names_no_workflow_image_is_refused_naming_the_field(tmp_path, text, words):
    message = refused(tmp_path, {"a": {"dockerfile": "a"}}, {"a": text})
    for word in words:
        assert word in message, message


def test_a_digest_must_be_the_built_bases(tmp_path):
    from baseforge.oci import write_image
    from baseforge.ociread import check_pinned, read
    from baseforge.spec import ImageMeta

    layer = tmp_path / "layer.tar"
    import tarfile

    with tarfile.open(layer, "w"):
        pass
    archive = tmp_path / "img.oci.tar"
    write_image(archive, [layer], ImageMeta(title="x", version="0", created=0, arch="amd64"))
    good = read(archive).manifest_digest
    check_pinned(f"ns/x:1@{good}", archive, "here")
    check_pinned("ns/x:1", archive, "here")
    with pytest.raises(BaseforgeError, match=f"here: ns/x:1@{DIGEST} is pinned to {DIGEST}, but this workflow built {good}"):
        check_pinned(f"ns/x:1@{DIGEST}", archive, "here")


def test_instructions_and_substitution():
    assert dockerfile.instructions("# c\nFROM a \\\n # inside\n  AS b\n\nRUN x") == ["FROM a    AS b", "RUN x"]
    assert dockerfile.substitute("${A:+set}-${B:-d}-$A", {"A": "1"}) == "set-d-1"
    assert dockerfile.split_digest(f"a/b:c@{DIGEST}") == ("a/b:c", DIGEST)
    assert dockerfile.split_digest("a/b:c") == ("a/b:c", None)


def test_parse_names_the_file(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM ${X}\n")
    with pytest.raises(BaseforgeError, match=str(Path(tmp_path / "Dockerfile"))):
        dockerfile.parse(tmp_path / "Dockerfile", "apps.a.dockerfile")
