"""What a job builds, as plain frozen dataclasses that travel through Snakemake ``params`` as dicts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


#: what the packer's leak list and minimization apply to ("none": only the lines for any family)
FAMILIES = ("debian", "rpm", "alpine", "none")


@dataclass(frozen=True)
class Platform:
    """One CPU architecture under its Debian, OCI, kernel (``uname -m``) and QEMU names."""

    debian: str
    oci: str
    variant: str | None
    uname: str
    qemu: str


PLATFORMS: dict[str, Platform] = {
    p.debian: p
    for p in (
        Platform("amd64", "amd64", None, "x86_64", "x86_64"),
        Platform("arm64", "arm64", "v8", "aarch64", "aarch64"),
        Platform("armhf", "arm", "v7", "armv7l", "arm"),
        Platform("armel", "arm", "v5", "armv7l", "arm"),
        Platform("i386", "386", None, "i686", "i386"),
        Platform("ppc64el", "ppc64le", None, "ppc64le", "ppc64le"),
        Platform("s390x", "s390x", None, "s390x", "s390x"),
        Platform("riscv64", "riscv64", None, "riscv64", "riscv64"),
    )
}


@dataclass(frozen=True)
class Source:
    """One apt/rpm source: a mirror URL, a suite (or repo id) and its components."""

    url: str
    suite: str
    components: tuple[str, ...] = ("main",)

    def deb_line(self) -> str:
        return f"deb {self.url} {self.suite} {' '.join(self.components)}"


LOCK_FIELDS = ("lock", "lock_key", "snapshot")


@dataclass(frozen=True)
class CellSpec:
    """One cell of the matrix: a rootfs for (image, release, variant, arch), and how to make it."""

    image: str
    distro: str
    release: str
    variant: str
    arch: str
    bootstrapper: str
    sources: tuple[Source, ...] = ()
    packages: tuple[str, ...] = ()
    keyrings: tuple[str, ...] = ()
    epoch: int = 0
    base_variant: str = "minbase"
    slim: bool = False
    package_cache: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    #: a locked cell (baseforge.lockfile): the lock's path under the work directory, its content key, and
    #: the snapshot archive (config ``mirrors.snapshot``) to fall back on
    lock: str | None = None
    lock_key: str | None = None
    snapshot: str | None = None
    #: signature checks off (config ``insecure: true``): only ever set explicitly per image
    insecure: bool = False

    @property
    def id(self) -> str:
        return f"{self.image}/{self.release}/{self.variant}/{self.arch}"

    @property
    def platform(self) -> Platform:
        return PLATFORMS[self.arch]

    def to_dict(self) -> dict[str, Any]:
        # an unlocked cell's dict (the bootstrap's params, its cache key) stays what it was before locks
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None or k not in LOCK_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellSpec:
        data = dict(data)
        data["sources"] = tuple(Source(s["url"], s["suite"], tuple(s["components"])) for s in data.get("sources", ()))
        for key in ("packages", "keyrings"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)


@dataclass(frozen=True)
class ImageMeta:
    """What goes into an image's config besides its layers."""

    title: str
    version: str
    created: int
    arch: str
    tags: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    workdir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    base_name: str = ""
    comment: str = ""
    user: str = ""  # the config's User (apps' user:); left out of to_dict when empty, so no param changes

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not out["user"]:
            del out["user"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageMeta:
        data = dict(data)
        for key in ("tags", "cmd", "entrypoint", "env"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)
