"""Rocky Linux: a RHEL rebuild, laid out like CentOS Stream without the ``-stream`` suffix."""

from __future__ import annotations

from .centos_stream import CentosStream


class Rocky(CentosStream, name="rocky"):
    releases = {"9": "", "10": ""}  # 8: its rpm reads only a Berkeley DB rpmdb, which Debian's rpm cannot write
    os_id = "rocky"
    packages = ("rocky-release", "bash", "coreutils-single", "glibc-minimal-langpack", "rpm", "dnf")
    variants = {"default": {"packages": list(packages)}}

    def repo_url(self, mirror: str, release: str, component: str) -> str:
        return f"{mirror}/{release}/{component}/$basearch/os/"

    def expected_os_release(self, release: str) -> dict[str, str]:
        # VERSION_ID is the point release ("9.4"): only the ID is certain from the major version
        return {"ID": self.os_id}
