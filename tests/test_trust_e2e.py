"""Trust, checked from outside with the real engine: a packed image shows no password hash and no host file
mode to `docker run`, and `snakemake -n` deletes nothing even when the engine lost an image."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import docker
import pytest

from baseforge import engine as bfengine
from baseforge.oci import write_image
from baseforge.pack import pack
from baseforge.spec import ImageMeta

EPOCH = 1_700_000_000
HASH = "$6$saltsalt$" + "A" * 86
BUSYBOX = shutil.which("busybox")


def _raw(path: Path) -> Path:
    """A runnable rootfs as a build host might leave it: the host's busybox, a shadow with a real hash, and
    an /etc/machine-id with the host's 0755 mode."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        def add(name: str, data: bytes | None, mode: int = 0o644) -> None:
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.DIRTYPE if data is None else tarfile.REGTYPE
            ti.mode, ti.mtime, ti.size = (0o755 if data is None else mode), EPOCH, len(data or b"")
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)

        for d in ("bin", "etc", "root", "var", "var/tmp"):
            add(d, None)
        add("bin/busybox", Path(BUSYBOX).read_bytes(), 0o755)
        add("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        add("etc/shadow", f"root:{HASH}:19000:0:99999:7:::\n".encode(), 0o640)
        add("etc/machine-id", b"0123456789abcdef0123456789abcdef\n", 0o755)  # (resolv.conf: the engine mounts its own)
        add("root/.ash_history", b"export TOKEN=secret\n")
        add("var/tmp/build.log", b"built on buildhost\n")
    return path


@pytest.mark.skipif(BUSYBOX is None, reason="needs the host's busybox-static (tools/install-deps installs it)")
def test_a_packed_image_has_no_password_hash_nor_host_modes(tmp_path, engine):
    pack(_raw(tmp_path / "raw.tar"), tmp_path / "rootfs.tar", epoch=EPOCH, family="none")
    meta = ImageMeta(title="bftrust/shadow:test", version="test", created=EPOCH, arch="amd64", tags=("bftrust/shadow:test",),
                     cmd=("/bin/busybox", "sh"))
    result = write_image(tmp_path / "img.oci.tar", [tmp_path / "rootfs.tar"], meta)
    client = docker.DockerClient(base_url=engine)
    bfengine.load(client, tmp_path / "img.oci.tar", result.image_id, meta.tags)
    try:
        shadow = bfengine.run(client, result.image_id, ["/bin/busybox", "cat", "/etc/shadow"])
        assert shadow.exit_code == 0 and shadow.stdout.startswith("root:*:") and "$6$" not in shadow.stdout
        listing = bfengine.run(client, result.image_id, ["/bin/busybox", "sh", "-c",
                                                         "/bin/busybox stat -c '%a %u %s' /etc/machine-id; /bin/busybox ls -A /root /var/tmp"])
        assert listing.stdout.splitlines()[0] == "644 0 0" and ".ash_history" not in listing.stdout
        assert "build.log" not in listing.stdout
    finally:
        client.images.remove(result.image_id, force=True)


def test_a_dry_run_deletes_nothing(tmp_path, engine, workflow):
    config = "namespace: bftrust\nepoch: 1700000000\nimages:\n  busybox:\n    releases: [bookworm]\n"
    work = workflow.make(tmp_path / "w", config)
    record = work / "build/engine/busybox/bookworm/default/amd64.json"
    report = work / "build/smoke/busybox/bookworm/default/amd64.ok"
    summary = work / "results/images.tsv"
    for path, text in ((record, json.dumps({"image_id": "sha256:" + "0" * 64, "tags": []})), (report, "PASS\n"), (summary, "x\n")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for flags in (["-n"], ["--dry-run"], ["-np"], ["--rulegraph"], ["--summary"], ["--list-rules"]):
        workflow.run(work, *flags, env={"DOCKER_HOST": engine})
        assert record.exists() and report.exists() and summary.exists(), flags
