"""Shared data and assertions for the OCI distribution-spec conformance port.

The documents mirror conformance/setup.go in opencontainers/distribution-spec: a unique config
per workflow, a small gzip'd tarball as the layer, a 42-byte blob uploaded in two chunks, the
empty JSON descriptor and artifacts whose `subject` points at an image manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import secrets
import tarfile
from dataclasses import dataclass
from typing import Any

import requests

from tests.support.registry_client import RegistryClient, parse_challenge

ORG = "conformance"
# A user with read-only rights on ORG, and one that owns PUSHER_ORG but has no right on ORG.
READER, READER_PASSWORD = "conf-reader", "reader-pass-123"
PUSHER, PUSHER_PASSWORD, PUSHER_ORG = "conf-pusher", "pusher-pass-123", "conformancepusher"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# The error codes a spec-conforming registry may use (spec.md "Error Codes").
SPEC_ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
    }
)

# setup.go: godigest.FromString("hello world") and ".INVALID_MANIFEST_NAME".
DUMMY_DIGEST = "sha256:" + hashlib.sha256(b"hello world").hexdigest()
NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
ANNOTATION_KEY = "org.opencontainers.conformance.test"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    content: bytes
    media_type: str = "application/octet-stream"

    @property
    def digest(self) -> str:
        return sha256(self.content)

    @property
    def size(self) -> int:
        return len(self.content)

    def descriptor(self, media_type: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"mediaType": media_type or self.media_type, "digest": self.digest, "size": self.size} | extra


def random_blob(size: int = 42) -> Blob:
    return Blob(os.urandom(size))


def config_blob(media_type: str = OCI_CONFIG) -> Blob:
    """An image config made unique by a random author, as setup.go does per workflow."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "author": secrets.token_urlsafe(12),
    }
    return Blob(json.dumps(config, indent="\t").encode(), media_type)


def layer_blob(media_type: str = OCI_LAYER) -> Blob:
    """A small, unique tar+gzip layer (setup.go ships a fixed one; ours differ per call)."""
    payload = f"you bothered to find out what was in here. {secrets.token_hex(8)}\n".encode()
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        info = tarfile.TarInfo("test.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return Blob(gzip.compress(tar_bytes.getvalue(), mtime=0), media_type)


EMPTY_JSON = Blob(b"{}", OCI_EMPTY)


@dataclass(frozen=True)
class Document:
    """A manifest or index as bytes, with the media type it is pushed with."""

    content: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.content)

    @property
    def size(self) -> int:
        return len(self.content)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size} | extra


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent="\t").encode()


def image_manifest(
    config: Blob | dict[str, Any],
    layers: list[Blob] | list[dict[str, Any]],
    *,
    media_type: str = OCI_MANIFEST,
    subject: Document | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> Document:
    docker = media_type == DOCKER_MANIFEST
    config_descriptor = (
        config.descriptor(DOCKER_CONFIG if docker else None) if isinstance(config, Blob) else config
    )
    layer_descriptors = [
        layer.descriptor(DOCKER_LAYER if docker else None) if isinstance(layer, Blob) else layer
        for layer in layers
    ]
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type:
        document["artifactType"] = artifact_type
    document["config"] = config_descriptor
    document["layers"] = layer_descriptors
    if subject is not None:
        document["subject"] = subject.descriptor()
    if annotations:
        document["annotations"] = annotations
    return Document(_encode(document), media_type)


def index_manifest(
    children: list[Document],
    *,
    media_type: str = OCI_INDEX,
    subject: Document | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> Document:
    platform = {"architecture": "amd64", "os": "linux"}
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type:
        document["artifactType"] = artifact_type
    document["manifests"] = [child.descriptor(platform=platform) for child in children]
    if subject is not None:
        document["subject"] = subject.descriptor()
    if annotations:
        document["annotations"] = annotations
    return Document(_encode(document), media_type)


@dataclass(frozen=True)
class Image:
    """A config, one layer and the manifest over them."""

    config: Blob
    layer: Blob
    manifest: Document


def make_image(media_type: str = OCI_MANIFEST) -> Image:
    docker = media_type == DOCKER_MANIFEST
    config = config_blob(DOCKER_CONFIG if docker else OCI_CONFIG)
    layer = layer_blob(DOCKER_LAYER if docker else OCI_LAYER)
    return Image(config, layer, image_manifest(config, [layer], media_type=media_type))


def authorize(client: RegistryClient, *names: str, source: str | None = None) -> None:
    """Fetches one token for pull,push,delete on every name (and pull on `source`) and lets the
    client use it for each of them, as docker does for a mount; saves a token round per name."""
    anonymous = requests.get(client.base_url + "/v2/", timeout=30)
    challenge = parse_challenge(anonymous.headers["WWW-Authenticate"])
    scopes = [f"repository:{name}:pull,push,delete" for name in names]
    if source:
        scopes.append(f"repository:{source}:pull")
    token = client.token(challenge | {"scope": " ".join(scopes)})
    for name in names:
        client.tokens[name] = token


# --- requests -------------------------------------------------------------------------------


def blob_path(name: str, digest: str) -> str:
    return f"/v2/{name}/blobs/{digest}"


def manifest_path(name: str, reference: str) -> str:
    return f"/v2/{name}/manifests/{reference}"


def start_upload(client: RegistryClient, name: str, **kwargs: Any) -> requests.Response:
    return client.post(f"/v2/{name}/blobs/uploads/", **kwargs)


def location(response: requests.Response) -> str:
    value = response.headers.get("Location", "")
    assert value, f"no Location header on {response.status_code} {response.request.method}"
    return value


def push_blob(client: RegistryClient, name: str, blob: Blob) -> requests.Response:
    """POST then PUT (the monolithic upload), as every conformance setup step does."""
    started = start_upload(client, name)
    assert started.status_code == 202, started.text
    return client.put(
        location(started),
        params={"digest": blob.digest},
        data=blob.content,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)},
    )


def push_blobs(client: RegistryClient, name: str, *blobs: Blob) -> None:
    for blob in blobs:
        response = push_blob(client, name, blob)
        assert response.status_code == 201, response.text


def put_manifest(client: RegistryClient, name: str, reference: str, document: Document) -> requests.Response:
    return client.put(
        manifest_path(name, reference),
        data=document.content,
        headers={"Content-Type": document.media_type},
    )


def push_image(client: RegistryClient, name: str, image: Image, reference: str | None = None) -> None:
    push_blobs(client, name, image.config, image.layer)
    response = put_manifest(client, name, reference or image.manifest.digest, image.manifest)
    assert response.status_code == 201, response.text


def tags_of(client: RegistryClient, name: str, **params: Any) -> list[str]:
    response = client.get(f"/v2/{name}/tags/list", params=params)
    assert response.status_code == 200, response.text
    tags = response.json()["tags"]
    assert isinstance(tags, list)
    return tags


def next_link(response: requests.Response) -> str | None:
    """The target of an RFC 5988 `Link: <url>; rel="next"` header, if any."""
    header = response.headers.get("Link")
    if not header:
        return None
    match = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', header)
    assert match, f"malformed Link header {header!r}"
    return match.group(1)


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """The status, and the spec's error body {"errors": [{code, message, detail}]} with `code`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), list), body
    assert body["errors"], body
    for error in body["errors"]:
        assert isinstance(error, dict), body
        assert error.get("code") in SPEC_ERROR_CODES, f"non-spec error code in {body}"
        assert isinstance(error.get("message", ""), str), body
    first: dict[str, Any] = body["errors"][0]
    assert first["code"] == code, body
    return first
