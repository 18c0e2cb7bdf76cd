"""Parsing and checking manifest documents (no database here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ferry.images.errors import ManifestInvalid
from ferry.names import is_digest
from ferry.parsing import JSONRefused, load_json

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
# Layers the registry is not expected to hold (Windows base layers and the like).
FOREIGN_LAYER_TYPES = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, Any] | None = None
    foreign: bool = False


@dataclass
class ParsedManifest:
    media_type: str
    blobs: list[Descriptor] = field(default_factory=list)
    children: list[Descriptor] = field(default_factory=list)
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, Any] | None = None

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def invalid(message: str) -> ManifestInvalid:
    return ManifestInvalid(message)


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise invalid(f"{where} is not a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise invalid(f"{where} has no mediaType")
    if not isinstance(digest, str) or not is_digest(digest):
        raise invalid(f"{where} has a missing or unsupported digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise invalid(f"{where} has an invalid size")
    annotations = value.get("annotations")
    artifact_type = value.get("artifactType")
    return Descriptor(
        media_type,
        digest,
        size,
        artifact_type if isinstance(artifact_type, str) else None,
        annotations if isinstance(annotations, dict) else None,
        foreign=media_type in FOREIGN_LAYER_TYPES and bool(value.get("urls")),
    )


def _media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    header = (content_type or "").split(";", 1)[0].strip()
    if declared is not None and not isinstance(declared, str):
        raise invalid("mediaType must be a string")
    if declared and header and header not in ("application/json", "application/octet-stream"):
        if declared != header:
            raise invalid(f"Content-Type {header} does not match the manifest's mediaType {declared}")
    media_type = declared or header
    if media_type in IMAGE_TYPES | INDEX_TYPES:
        return media_type
    if media_type and "prettyjws" in media_type:
        raise invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    if "manifests" in document:
        return OCI_INDEX
    if "config" in document:
        return OCI_MANIFEST
    raise invalid(f"unsupported manifest media type {media_type!r}")


def parse_manifest(payload: bytes, content_type: str | None) -> ParsedManifest:
    try:
        document = load_json(payload)
    except JSONRefused as refused:
        raise invalid(f"manifest is {refused}") from None
    if not isinstance(document, dict):
        raise invalid("manifest is not a JSON object")
    version = document.get("schemaVersion")
    if version == 1:
        raise invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    if type(version) is not int or version != 2:
        raise invalid(f"schemaVersion must be 2, not {version!r}")
    media_type = _media_type(document, content_type)
    parsed = ParsedManifest(media_type)
    annotations = document.get("annotations")
    parsed.annotations = annotations if isinstance(annotations, dict) else None
    artifact_type = document.get("artifactType")
    parsed.artifact_type = artifact_type if isinstance(artifact_type, str) else None
    if "subject" in document:
        parsed.subject = _descriptor(document["subject"], "subject").digest
    if parsed.is_index:
        items = document.get("manifests")
        if not isinstance(items, list):
            raise invalid("an index needs a manifests array")
        parsed.children = [_descriptor(d, f"manifests[{i}]") for i, d in enumerate(items)]
        return parsed
    config = _descriptor(document.get("config"), "config")
    layers = document.get("layers", [])
    if not isinstance(layers, list):
        raise invalid("layers must be an array")
    parsed.blobs = [config] + [_descriptor(d, f"layers[{i}]") for i, d in enumerate(layers)]
    if parsed.artifact_type is None:
        parsed.artifact_type = config.media_type
    return parsed
