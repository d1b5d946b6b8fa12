"""Attestations beside each pushed image: its SPDX SBOM and an in-toto statement with SLSA provenance.

They are pushed the way the OCI distribution spec 1.1 defines referrers: each is an artifact manifest
(``artifactType``, the empty config, one layer holding the document, ``subject`` = the image manifest
it describes), pushed by digest. A registry without the referrers API (Debian's docker-registry) also
gets the tag-schema fallback: the tag ``sha256-<subject hex>`` holds an image index listing every
referrer of that subject (read, merged, written back). Anyone can find them with
``skopeo inspect --raw docker://<repo>:sha256-<hex>`` (or ``oras discover``).

JSON is written canonically (sorted keys, compact), so the same build gives the same artifact digests.
The registry is spoken to over its HTTP API (anonymous, or basic auth from the docker config).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .errors import BaseforgeError
from .run import log

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
SPDX = "application/spdx+json"
INTOTO = "application/vnd.in-toto+json"
SLSA = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://baseforge.invalid/buildtypes/image/v1"


def dumps(obj: Any) -> bytes:
    """Canonical JSON (as the OCI writer writes it): the same object always gives the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def statement(subject: str, subject_digest: str, config_digest: str, epoch: int, materials: list[dict[str, Any]],
              parameters: dict[str, Any]) -> dict[str, Any]:
    """An in-toto v1 statement with a SLSA v1 provenance predicate for the image ``subject``@``subject_digest``."""
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": subject, "digest": {"sha256": subject_digest.split(":", 1)[1]}}],
        "predicateType": SLSA,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": parameters,
                "internalParameters": {"SOURCE_DATE_EPOCH": epoch},
                "resolvedDependencies": materials,
            },
            "runDetails": {
                "builder": {"id": "https://baseforge.invalid/builder", "version": {"baseforge": __version__}},
                "metadata": {"startedOn": rfc3339(epoch)},
                "byproducts": [{"name": "config", "mediaType": "application/vnd.oci.image.config.v1+json",
                                "digest": {"sha256": config_digest.split(":", 1)[1]}}],
            },
        },
    }


def artifact_manifest(artifact_type: str, blob: bytes, subject: dict[str, Any], epoch: int) -> bytes:
    """An OCI 1.1 artifact manifest: the empty config, one layer (the document), ``subject``."""
    return dumps({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": MEDIA_EMPTY, "digest": digest(EMPTY), "size": len(EMPTY)},
        "layers": [{"mediaType": artifact_type, "digest": digest(blob), "size": len(blob)}],
        "subject": subject,
        "annotations": {"org.opencontainers.image.created": rfc3339(epoch)},
    })


def fallback_tag(subject_digest: str) -> str:
    """The referrers tag schema: ``sha256:abc…`` -> ``sha256-abc…``."""
    return subject_digest.replace(":", "-")


def referrers_index(existing: dict[str, Any] | None, new: list[dict[str, Any]]) -> bytes:
    """The fallback tag's index: the referrers it listed, plus ``new`` (by digest, in digest order)."""
    by_digest = {d["digest"]: d for d in (existing or {}).get("manifests", [])}
    by_digest.update({d["digest"]: d for d in new})
    return dumps({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [by_digest[k] for k in sorted(by_digest)]})


class Registry:
    """The few calls of the distribution API that pushing artifacts needs."""

    def __init__(self, url: str, tls_verify: bool = True) -> None:
        self.host, _, self.prefix = url.rstrip("/").partition("/")
        self.base = f"{'https' if tls_verify else 'http'}://{self.host}/v2/"
        self.auth = _basic_auth(self.host)

    def repo(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def request(self, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None,
                ok: tuple[int, ...] = (200, 201, 202)) -> tuple[int, dict[str, str], bytes]:
        url = path if path.startswith("http") else self.base + path
        req = urllib.request.Request(url, data=data, method=method, headers={**(headers or {}), **self.auth})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            if err.code in ok:
                return err.code, dict(err.headers), err.read()
            body = err.read().decode(errors="replace")[:300]
            hint = "give the registry's credentials in the docker config (basic auth)" if err.code == 401 else \
                "check that the registry accepts OCI manifests with subject and artifactType"
            raise BaseforgeError(f"registry {self.host}: {method} {url} returned {err.code}: {body}", hint=hint) from None
        except OSError as err:
            raise BaseforgeError(f"registry {self.host} unreachable: {err}") from None

    def put_blob(self, repo: str, data: bytes) -> None:
        d = digest(data)
        status, _, _ = self.request("HEAD", f"{repo}/blobs/{d}", ok=(200, 404))
        if status == 200:
            return
        _, headers, _ = self.request("POST", f"{repo}/blobs/uploads/", data=b"")
        location = headers.get("Location") or headers.get("location")
        if location.startswith("/"):
            location = self.base.split("/v2/")[0] + location
        sep = "&" if "?" in location else "?"
        self.request("PUT", f"{location}{sep}digest={d}", data=data, headers={"Content-Type": "application/octet-stream"})

    def get_manifest(self, repo: str, ref: str) -> tuple[str, bytes] | None:
        accept = ", ".join([MEDIA_MANIFEST, MEDIA_INDEX, "application/vnd.docker.distribution.manifest.v2+json",
                            "application/vnd.docker.distribution.manifest.list.v2+json"])
        status, headers, body = self.request("GET", f"{repo}/manifests/{ref}", headers={"Accept": accept}, ok=(200, 404))
        if status == 404:
            return None
        return headers.get("Content-Type", json.loads(body).get("mediaType", MEDIA_MANIFEST)), body

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> dict[str, str]:
        _, headers, _ = self.request("PUT", f"{repo}/manifests/{ref}", data=data, headers={"Content-Type": media_type})
        return headers


def _basic_auth(host: str) -> dict[str, str]:
    """Basic auth for ``host`` from the docker config (``$DOCKER_CONFIG/config.json``), if it has an entry."""
    path = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        auths = json.loads(path.read_text()).get("auths", {})
    except (OSError, ValueError):
        return {}
    entry = auths.get(host) or auths.get(f"https://{host}") or {}
    if entry.get("auth"):
        return {"Authorization": "Basic " + entry["auth"]}
    if entry.get("username"):
        token = base64.b64encode(f"{entry['username']}:{entry.get('password', '')}".encode()).decode()
        return {"Authorization": "Basic " + token}
    return {}


def attach(reg: Registry, repo: str, subject_digest: str, documents: list[tuple[str, bytes]], epoch: int) -> list[str]:
    """Push each (artifactType, document) as a referrer of ``repo``@``subject_digest``; return their digests."""
    found = reg.get_manifest(repo, subject_digest)
    if found is None:
        raise BaseforgeError(f"{reg.host}/{repo}@{subject_digest} is not in the registry", hint="push the image first")
    media_type, body = found
    subject = {"mediaType": media_type.split(";")[0], "digest": digest(body), "size": len(body)}
    reg.put_blob(repo, EMPTY)
    descriptors, tracked = [], True
    for artifact_type, blob in documents:
        reg.put_blob(repo, blob)
        manifest = artifact_manifest(artifact_type, blob, subject, epoch)
        headers = reg.put_manifest(repo, digest(manifest), manifest, MEDIA_MANIFEST)
        tracked = tracked and any(k.lower() == "oci-subject" for k in headers)
        descriptors.append({"mediaType": MEDIA_MANIFEST, "digest": digest(manifest), "size": len(manifest),
                            "artifactType": artifact_type,
                            "annotations": {"org.opencontainers.image.created": rfc3339(epoch)}})
    if not tracked:  # no referrers API (no OCI-Subject header): the tag schema
        tag = fallback_tag(subject_digest)
        existing = reg.get_manifest(repo, tag)
        index = referrers_index(json.loads(existing[1]) if existing else None, descriptors)
        reg.put_manifest(repo, tag, index, MEDIA_INDEX)
        log.info("%s/%s:%s lists the referrers of %s", reg.host, repo, tag, subject_digest)
    return [d["digest"] for d in descriptors]


def _materials(provenance: dict[str, Any] | None, base: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What went in, each with its sha256: the suite's Release file, the rootfs tar, the base image."""
    out = []
    release = (provenance or {}).get("release_file") or {}
    if release.get("sha256"):
        out.append({"name": "Release", "uri": release["url"], "digest": {"sha256": release["sha256"]}})
    if provenance and provenance.get("rootfs_sha256") and base is None:
        out.append({"name": "rootfs.tar", "uri": f"baseforge:rootfs/{provenance['cell']}",
                    "digest": {"sha256": provenance["rootfs_sha256"]}})
    if base:
        out.append({"name": "base", "uri": f"baseforge:{base['name']}",
                    "digest": {"sha256": base["manifest_digest"].split(":", 1)[1]}})
    return out


def push_with_attestations(archive: str | None, registry: dict[str, Any], tags: list[str], record: str, *,
                           engine_record: str | None = None, oci: list[str] = (), sbom: list[str] = (),
                           provenance: list[str] = (), base_name: str | None = None, base_info: str | None = None,
                           parameters: dict[str, Any] | None = None, epoch: int = 0) -> dict[str, Any]:
    """Rules push, push_app: push (publish.push, signed when configured), then beside each pushed image
    (``oci``: its OCI writer records, one per architecture, with ``sbom`` and ``provenance`` in the same
    order) its SBOM and provenance statement as referrers. An app names its base (``base_name``, and the
    base's OCI record ``base_info``); its Release file comes from the provenance of the image at the bottom
    of its chain."""
    from .publish import push
    from .run import write_json

    result = push(archive, registry, tags, record, engine_record=engine_record)
    if not oci:
        return result
    reg = Registry(registry["url"], registry.get("tls_verify", True))
    base = None
    if base_name:
        base = {"name": base_name, "manifest_digest": json.loads(Path(base_info).read_text())["manifest_digest"]}
    repos = sorted({t.rpartition(":")[0] for t in tags})
    attached: dict[str, list[str]] = {}
    for i, info_path in enumerate(oci):
        info = json.loads(Path(info_path).read_text())
        prov = json.loads(Path(provenance[i if len(provenance) > 1 else 0]).read_text()) if provenance else None
        when = prov["epoch"] if prov and not base else epoch
        params = {**(parameters or {}), **({"cell": prov["cell"], "bootstrapper": prov["bootstrapper"],
                                            "sources": prov["sources"], "suite": prov["suite"]} if prov and not base else {})}
        for repo in repos:
            subject = f"{registry['url'].rstrip('/')}/{repo}"
            doc = statement(subject, info["manifest_digest"], info["image_id"], when, _materials(prov, base), params)
            documents = [(SPDX, Path(sbom[i]).read_bytes()), (INTOTO, dumps(doc))]
            attached[f"{repo}@{info['manifest_digest']}"] = attach(reg, reg.repo(repo), info["manifest_digest"], documents, when)
    result["attestations"] = attached
    write_json(record, result)
    return result
