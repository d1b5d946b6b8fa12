"""Foreign architectures at native speed: mmdebstrap ``--mode=chrootless``, with only what must run there under qemu.

In chrootless mode the host's own dpkg and apt install the foreign packages into the tree and run their
maintainer scripts natively with ``DPKG_ROOT`` set (dpkg's ``--force-script-chrootless``), instead of
running the foreign dpkg and every script under qemu-user: a bookworm or trixie arm64 minbase takes
12-22 s instead of 110-142 s on 2 cores. What the native scripts cannot do for a foreign tree is redone
afterwards in the tree, under qemu (:data:`FIXUPS`, one command each), after which the packed rootfs is
byte-identical to the one a qemu build makes: bookworm minbase on arm64 (``tests/test_chrootless.py``),
armhf, i386, ppc64el and s390x, and trixie minbase on arm64 (measured by hand, 2026-11-29).

A package whose maintainer scripts do not honour ``DPKG_ROOT`` would change the build host instead of the
tree, so ``auto`` (the default for foreign architectures) uses chrootless only for what Debian's CI tests
in this mode: the ``essential``, ``minbase`` and ``apt`` sets of Debian 12 and later, built as root, with
no extra packages (a layered variant still adds its packages in the chroot, under qemu). Anything else,
and any chrootless build that fails, is built under qemu; the choice is logged per cell.
``options: {foreign: qemu}`` on an image turns it off, ``foreign: chrootless`` asks for it beyond ``auto``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import BaseforgeError
from .host import host_arch
from .run import run
from .spec import CellSpec

log = logging.getLogger("baseforge")

STRATEGIES = ("auto", "chrootless", "qemu")
#: (customize hook, why it must run under qemu): what the host's native maintainer-script run leaves wrong
FIXUPS = (
    ('chroot "$1" ldconfig',
     "etc/ld.so.cache: libc-bin's trigger ran the host's ldconfig, which skips libraries of a foreign "
     "architecture and writes an empty cache"),
    ('if [ -x "$1"/usr/sbin/update-shells ]; then chroot "$1" update-shells; fi',
     "etc/shells and var/lib/shells.state: debianutils' update-shells, run natively, adds the /usr/bin aliases "
     "of bash and rbash that a chroot run does not (trixie)"),
    ('if [ -x "$1"/usr/sbin/pam-auth-update ]; then chroot "$1" pam-auth-update --package; fi',
     "etc/pam.d/common-session{,-noninteractive}: the scripts ran the host's pam-auth-update, which does not "
     "know the image's profiles (trixie's pam_umask line was missing)"),
)
#: distribution -> first major release whose essential set supports DPKG_ROOT throughout (tested here)
AUTO_FROM = {"debian": 12}
AUTO_VARIANTS = ("essential", "minbase", "apt")
#: apt's words for a failure of the mirror or the network, not of the chrootless mode: no fallback to qemu
NOT_CHROOTLESS = ("Failed to fetch", "Some index files failed to download", "Unable to locate package",
                  "Temporary failure resolving", "Could not connect", "Connection refused", "Hash Sum mismatch",
                  "File has unexpected size")
#: Debian suites named by role or codename without a number in the preset: newer than any numbered one
ROLLING = ("testing", "sid", "unstable", "forky")


def strategy(cell: CellSpec) -> str:
    """``options.foreign`` of the cell's image (default ``auto``), checked."""
    value = cell.options.get("foreign", "auto")
    if value not in STRATEGIES:
        raise BaseforgeError(f"config images.{cell.image}.options.foreign: unknown strategy {value!r}",
                             hint=f"one of: {', '.join(STRATEGIES)} (auto: chrootless where it is known to give the qemu build's bytes)")
    return value


def why_not(cell: CellSpec, releases: dict[str, str], layered: bool = False) -> str | None:
    """Why ``cell`` is built under qemu rather than chrootless, or None to build it chrootless.

    ``releases`` is the preset's codename -> version table; ``layered``: the cell starts from a parent tar."""
    wanted = strategy(cell)
    if cell.arch == host_arch() or cell.bootstrapper != "mmdebstrap":
        return "native architecture" if cell.arch == host_arch() else f"bootstrapper {cell.bootstrapper}"
    if wanted == "qemu":
        return "options.foreign: qemu"
    if os.geteuid() != 0 or cell.options.get("mode"):
        return "chrootless runs as root (this build is rootless or sets options.mode)"
    if layered:
        return "a layered variant installs its packages in the chroot"
    if wanted == "chrootless":
        return None
    version = releases.get(cell.release, "")
    new_enough = cell.distro in AUTO_FROM and (cell.release in ROLLING or (version.isdigit() and int(version) >= AUTO_FROM[cell.distro]))
    if not new_enough:
        return f"{cell.distro} {cell.release} is not known to support DPKG_ROOT throughout (auto)"
    if cell.base_variant not in AUTO_VARIANTS or cell.packages:
        return "extra packages' maintainer scripts may not honour DPKG_ROOT (auto covers essential, minbase, apt)"
    return None


def argv(qemu_argv: list[str]) -> list[str]:
    """The chrootless command line for a cell whose qemu command line is ``qemu_argv``: the mode, and the
    FIXUPS before mmdebstrap's own last customize hooks."""
    out = ["--mode=chrootless" if a.startswith("--mode=") else a for a in qemu_argv]
    first_customize = next(i for i, a in enumerate(out) if a.startswith("--customize-hook="))
    return out[:first_customize] + [f"--customize-hook={hook}" for hook, _ in FIXUPS] + out[first_customize:]


def build(cell: CellSpec, qemu_argv: list[str], env: dict[str, str], out_tar: Path, layered: bool = False) -> str:
    """Run mmdebstrap for ``cell``: chrootless when :func:`why_not` has no objection, falling back to the qemu
    command line ``qemu_argv`` when that fails; return which one made ``out_tar``."""
    from .distro import get

    reason = why_not(cell, get(cell.distro).releases, layered)
    if reason is None:
        try:
            run(argv(qemu_argv), env=env)
            log.info("%s: built chrootless (the host's dpkg; %d fix-ups under qemu)", cell.id, len(FIXUPS))
            return "chrootless"
        except BaseforgeError as err:
            if any(m in err.message for m in NOT_CHROOTLESS):
                raise  # the mirror or the network failed: a qemu build would fail the same way, only slower
            log.warning("%s: the chrootless build failed, building under qemu instead: %s", cell.id, err.message.splitlines()[0])
            Path(out_tar).unlink(missing_ok=True)
    elif cell.arch != host_arch():
        log.info("%s: building under qemu: %s", cell.id, reason)
    run(qemu_argv, env=env)
    return "qemu"
