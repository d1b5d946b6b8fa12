"""Distribution presets: the "what" of a rootfs (sources, releases, tags, what os-release says).

A preset is one class in one module of this package (or of another package, under the
``baseforge.distros`` entry point group) that subclasses :class:`Distro` with ``name="…"``.
The bootstrappers in :mod:`baseforge.bootstrap` are the "how".
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import plugins
from ..errors import BaseforgeError
from ..spec import PLATFORMS, Source

ENTRY_POINT_GROUP = "baseforge.distros"


class Distro:
    name: ClassVar[str]
    #: what the packer's leak list and minimization apply to: debian | rpm | alpine | none
    family: ClassVar[str] = "none"
    #: allowed bootstrappers, the first is the default
    bootstrappers: ClassVar[tuple[str, ...]] = ()
    #: known releases: codename -> version alias used as an extra tag ("" for none); empty = any name
    releases: ClassVar[dict[str, str]] = {}
    #: variant name -> CellSpec overrides (``slim``, ``base_variant``)
    variants: ClassVar[dict[str, dict[str, Any]]] = {"default": {}}
    architectures: ClassVar[tuple[str, ...]] = tuple(PLATFORMS)
    #: what to install or list when an image names no keyring ("": nothing to verify against keys);
    #: config.plan refuses such an image unless one of ``host_keyrings`` (the tools' default) exists
    keyring_hint: ClassVar[str] = ""
    host_keyrings: ClassVar[tuple[str, ...]] = ()
    #: dnf: the repositories sign their metadata (repomd.xml.asc), so repo_gpgcheck=1 (options.repo_gpgcheck overrides)
    signed_metadata: ClassVar[bool] = False
    #: the ``ID`` line of /etc/os-release, or None when the rootfs has none
    os_id: ClassVar[str | None] = None
    #: the config ``mirrors:`` keys this preset reads, each with the image option that overrides it; the first
    #: is the main archive. Empty: one key, the preset's name, overridden by ``options.mirror``
    mirror_keys: ClassVar[dict[str, str]] = {}
    registry: ClassVar[dict[str, type[Distro]]] = {}

    def __init_subclass__(cls, name: str | None = None, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if name:
            cls.name = name
            Distro.registry[name] = cls

    def sources(self, release: str, mirrors: dict[str, str], options: dict[str, Any]) -> tuple[Source, ...]:
        """The package sources for ``release``; ``mirrors`` holds config overrides of the defaults."""
        return ()

    def release_tags(self, release: str) -> list[str]:
        """Tags naming ``release`` in an image's repository, most specific first."""
        alias = self.releases.get(release, "")
        return [release] + ([alias] if alias and alias != release else [])

    def expected_os_release(self, release: str) -> dict[str, str]:
        """Fields the smoke test expects in the image's /etc/os-release."""
        return {"ID": self.os_id} if self.os_id else {}

    def release_file(self, release: str, sources: tuple[Source, ...]) -> str | None:
        """URL of the file whose date is the release's default SOURCE_DATE_EPOCH, if any."""
        return None

    def rpmdb(self, release: str) -> str:
        """Where rpm keeps its database in this distribution's images (for the dnf bootstrapper)."""
        return "/var/lib/rpm"

    def image_family(self, options: dict[str, Any]) -> str:
        """The family pack() treats an image as; a preset whose family depends on its options overrides this."""
        return self.family

    def mirror_options(self) -> dict[str, str]:
        """``mirrors:`` key -> image option overriding it, main archive first (see :attr:`mirror_keys`)."""
        return dict(self.mirror_keys) or {self.name: "mirror"}

    def mirror(self, mirrors: dict[str, str], options: dict[str, Any], key: str | None = None) -> str:
        """The one place a preset finds a mirror: the image's option for ``key`` (``options.mirror`` for the
        main archive), else config ``mirrors.<key>``, else :meth:`default_mirror`.

        There are no built-in public host names: a preset without a configured mirror says how to set one.
        """
        keys = self.mirror_options()
        key = key or next(iter(keys))
        url = options.get(keys.get(key, "")) or mirrors.get(key) or self.default_mirror(key, mirrors, options)
        if not url:
            raise BaseforgeError(f"no mirror configured for {self.name}",
                                 hint=f"set mirrors: {{{key}: <URL of your {key} mirror>}} in config/config.yaml, "
                                      f"or options: {{{keys.get(key, 'mirror')}: <URL>}} on the image")
        return url.rstrip("/")

    def default_mirror(self, key: str, mirrors: dict[str, str], options: dict[str, Any]) -> str | None:
        """Where ``key`` points when neither the image nor the config says: a secondary key (security) is
        served by the main archive; the main archive has no default (a preset may read one from the host)."""
        main = next(iter(self.mirror_options()))
        return self.mirror(mirrors, options) if key != main else None


def available() -> list[str]:
    """Names of every distro: the modules of this package and the entry points."""
    return plugins.available(__name__, ENTRY_POINT_GROUP)


def get(name: str) -> Distro:
    """Load and instantiate the distro called ``name``."""
    return plugins.load(name, Distro.registry, __name__, ENTRY_POINT_GROUP, "distro")()


def mirror_keys() -> dict[str, list[str]]:
    """Every config ``mirrors:`` key the presets read, with the presets that read it."""
    out: dict[str, list[str]] = {}
    for name in available():
        for key in get(name).mirror_options():
            out.setdefault(key, []).append(name)
    return out
