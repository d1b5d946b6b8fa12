"""Gzip of layer tars, reproducible and parallel (like pigz): 1 MiB blocks deflated in threads.

The bytes depend on the input, the level and zlib, never on the number of threads. Another zlib
implementation (zlib-ng, s390x DFLTCC) may deflate the same bytes differently: that changes layer and
manifest digests but never the image ID, which names layers by their uncompressed digests.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import logging
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger("baseforge")

CHUNK = 1 << 20
#: threads when the caller does not say (a job gets its rule's ``threads:``)
DEFAULT_THREADS = 8


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int  # compressed
    diff_id: str
    raw_size: int  # uncompressed


def deflate_blocks(src: IO[bytes], level: int, threads: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    """(input block, its raw deflate data) in order, the blocks compressed in ``threads`` threads.

    Like pigz, each 1 MiB block is a separate deflate run primed with the last 32 KiB of the block before
    it and ended by a sync flush (the last one by a final block), so the concatenation is one valid
    deflate stream. The bytes depend on the input, ``level`` and zlib, not on the number of threads.
    """
    def deflate(block: bytes, primer: bytes, last: bool) -> bytes:
        comp = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY,
                                **({"zdict": primer} if primer else {}))
        return comp.compress(block) + comp.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    workers = max(1, threads or min(DEFAULT_THREADS, os.cpu_count() or 1))
    pending: collections.deque = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:  # zlib lets go of the GIL while it works
        primer, block = b"", src.read(CHUNK)
        while True:
            following = src.read(CHUNK) if block else b""
            pending.append((block, pool.submit(deflate, block, primer, not following)))
            if len(pending) > 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
            if not following:
                break
            primer, block = block[-32768:], following
        while pending:
            done, future = pending.popleft()
            yield done, future.result()


def compress_layer(path: Path, blobdir: Path, level: int, threads: int | None = None) -> Layer:
    """Gzip ``path`` into ``blobdir`` in one streaming pass (blocks deflated in parallel), hashing both sides.

    The gzip header is written by hand (no name, mtime 0, OS "unknown" like Python's and Go's gzip)
    because zlib's own header carries the OS it was built for.
    """
    diff, blob = hashlib.sha256(), hashlib.sha256()
    crc = raw_size = size = 0
    xfl = 2 if level == 9 else 4 if level == 1 else 0
    with tempfile.NamedTemporaryFile(dir=blobdir, delete=False) as dst, path.open("rb") as src:

        def emit(data: bytes) -> None:
            nonlocal size
            if data:
                blob.update(data)
                dst.write(data)
                size += len(data)

        emit(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([xfl, 255]))
        for chunk, deflated in deflate_blocks(src, level, threads):
            diff.update(chunk)
            crc = zlib.crc32(chunk, crc)
            raw_size += len(chunk)
            emit(deflated)
        emit(struct.pack("<II", crc, raw_size & 0xFFFFFFFF))
    digest = "sha256:" + blob.hexdigest()
    os.replace(dst.name, blobdir / blob.hexdigest())
    log.info("layer %s: %d -> %d bytes, %s", path.name, raw_size, size, digest)
    return Layer(digest, size, "sha256:" + diff.hexdigest(), raw_size)
