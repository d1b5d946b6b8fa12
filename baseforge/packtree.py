"""Planning a normalized rootfs: which entries of the raw tar go into the output, and with what contents.

The tree is a dict of path -> :class:`Item` (metadata from the raw member, or new contents). The steps
here edit it: drop or empty leaks (an emptied file gets a fixed mode and owner), rewrite the account
files (:mod:`.scrub`), slim, add files, regroup hard links. Nothing is read from or written to a tar
here, except the account files' contents by :func:`plan_tree`.
"""

from __future__ import annotations

import logging
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase

from . import scrub
from .errors import BaseforgeError
from .packdata import Rule, leak_action, load_leak_rules, load_slim_rules, minimize_files, slim_dpkg_cfg
from .tarnames import normalize, sort_key

log = logging.getLogger("baseforge")

SLIM_DPKG_CFG = "etc/dpkg/dpkg.cfg.d/docker"


@dataclass
class Item:
    """One output entry: metadata (and contents) from a raw member, or new contents."""

    src: tarfile.TarInfo | None  # the raw member; None for files pack() adds
    data: bytes | None = None  # replacement contents (emptied, rewritten, added files)
    mode: int = 0o644  # for added files
    hardlink: str | None = None  # written as a hard link to this (earlier) entry
    fixed: bool = False  # emptied: mode 0644, root:root, mtime = epoch, no xattrs (nothing of the build host)


def _ancestors(name: str) -> Iterator[str]:
    while "/" in name:
        name = name.rpartition("/")[0]
        yield name


def _under(name: str, parent: str) -> bool:
    return name.startswith(parent + "/")


def _apply_leaks(items: dict[str, Item], rules: list[Rule]) -> None:
    drop_below: set[str] = set()
    dropped = emptied = 0
    for name in sorted(items, key=sort_key):
        if any(a in drop_below for a in _ancestors(name)):
            del items[name]
            dropped += 1
            continue
        action = leak_action(name, rules)
        if action == "drop":
            drop_below.add(name)
            del items[name]
            dropped += 1
        elif action == "drop-children":
            drop_below.add(name)
        elif action == "empty":
            src = items[name].src
            if src is not None and (src.isreg() or src.islnk()):
                items[name].data = b""
                items[name].fixed = True
                emptied += 1
    log.info("leaks: dropped %d entries, emptied %d files", dropped, emptied)


def _resolves(name: str, items: dict[str, Item], depth: int = 0) -> str | None:
    """Where ``name`` leads inside the tree after following symlinks, or None if it dangles or loops."""
    if depth > 40:
        return None
    cur = ""
    parts = name.split("/")
    for i, part in enumerate(parts):
        if part in ("", "."):
            continue
        if part == "..":
            cur = cur.rpartition("/")[0]
            continue
        nxt = f"{cur}/{part}" if cur else part
        item = items.get(nxt)
        if item is None:
            return None
        src = item.src
        if src is not None and src.issym():
            base = "" if src.linkname.startswith("/") else cur
            target = _resolves(posixpath.join(base, src.linkname).lstrip("/"), items, depth + 1)
            if target is None:
                return None
            nxt = target
            item = items.get(nxt) if nxt else None
        last = i == len(parts) - 1
        if not last and nxt and not (item is not None and item.src is not None and item.src.isdir()):
            return None  # a path component that is not a directory
        cur = nxt
    return cur


def _apply_slim(items: dict[str, Item], rules: list[Rule]) -> None:
    """debuerreotype-slimify: drop non-directory, non-symlink entries under each exclude unless included,
    then drop empty directories and dangling symlinks under the exclude's directory until none are left."""
    includes = [r.glob for r in rules if r.action == "include"]
    before = len(items)
    for rule in (r for r in rules if r.action == "exclude"):
        top = posixpath.dirname(rule.glob)
        for name in [n for n in items if _under(n, top) and fnmatchcase(n, rule.glob)]:
            src = items[name].src
            if src is not None and (src.isdir() or src.issym()):
                continue
            if not any(fnmatchcase(name, inc) for inc in includes):
                del items[name]
        while True:
            under = sorted((n for n in items if _under(n, top)), key=sort_key)
            parents = {n.rpartition("/")[0] for n in under}
            gone = [
                n
                for n in under
                if (items[n].src is not None and items[n].src.isdir() and n not in parents)
                or (items[n].src is not None and items[n].src.issym() and _resolves(n, items) is None)
            ]
            if not gone:
                break
            for n in gone:
                del items[n]
    log.info("slim: dropped %d entries", before - len(items))


def _put(items: dict[str, Item], name: str, data: bytes) -> bool:
    """Add a root-owned file, replacing whatever is at ``name``; only where the parent directory exists."""
    parent = posixpath.dirname(name)
    if parent and not (parent in items and items[parent].src is not None and items[parent].src.isdir()):
        log.warning("not adding %s: %s/ is not a directory in this rootfs", name, parent)
        return False
    for n in [n for n in items if n == name or _under(n, name)]:
        del items[n]
    items[name] = Item(src=None, data=data, mode=0o755 if data.startswith(b"#!") else 0o644)
    return True


def _link_hardlinks(items: dict[str, Item], members: dict[str, tarfile.TarInfo]) -> None:
    """Regroup hard links among the kept entries so every link points at an entry written before it.

    The first kept member of a group (in output order) carries the contents; the others link to it.
    A group whose data-holding member was dropped is not lost: the contents move to the next member.
    """
    groups: dict[str, list[str]] = {}
    for name, item in items.items():
        src = item.src
        if src is None or not (src.islnk() or src.isreg()):
            continue
        root = name
        seen = set()
        while members[root].islnk():
            seen.add(root)
            root = normalize(members[root].linkname)
            if root not in members or root in seen:
                raise BaseforgeError(
                    f"hard link {name} points at {members[name].linkname!r}, which is not in the raw tar",
                    hint="the raw tar is truncated or was not written by a bootstrapper",
                )
        groups.setdefault(root, []).append(name)
    for root, names in groups.items():
        if len(names) == 1 and names[0] == root:
            continue
        names.sort(key=sort_key)
        # Truncating one name of a hard-linked file truncates them all.
        data = b"" if any(items[n].data == b"" for n in names) else items[root].data if root in items else None
        holder = names[0]
        items[holder] = Item(src=members[root], data=data, fixed=any(items[n].fixed for n in names))
        for n in names[1:]:
            items[n] = Item(src=members[root], hardlink=holder)


def plan_tree(raw: tarfile.TarFile, *, epoch: int, slim: bool, family: str) -> dict[str, Item]:
    """Decide every output entry (metadata only; contents stay in the raw tar until written)."""
    members: dict[str, tarfile.TarInfo] = {}
    for m in raw.getmembers():
        name = normalize(m.name)
        if name:  # no entry for the root directory itself
            members[name] = m  # a later member of the same name wins, as on extraction
    items = {name: Item(src=m) for name, m in members.items()}

    _apply_leaks(items, load_leak_rules(family))
    for path, rewrite in scrub.REWRITES.items():
        item = items.get(path)
        if item is not None and item.src is not None and item.src.isreg() and item.data is None:
            item.data = rewrite(raw.extractfile(item.src).read(), epoch)
    if family == "debian":
        if slim:
            rules = load_slim_rules()
            _apply_slim(items, rules)
            _put(items, SLIM_DPKG_CFG, slim_dpkg_cfg(rules))
        for name, data in minimize_files().items():
            _put(items, name, data)
    elif slim:
        raise BaseforgeError(f"slim is only implemented for family debian, not {family!r}", hint="set slim: false for this image")
    _link_hardlinks(items, members)
    return items
