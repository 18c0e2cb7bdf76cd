"""OCI image layouts on disk for end-to-end tests, written as streams.

Layers are real tar archives wrapped in gzip made of stored (uncompressed) deflate blocks, so
they are valid `tar+gzip` layers that cost no compression time. Their content is deterministic
pseudo-random bytes (shake_128 in counter mode), produced, hashed and written chunk by chunk: a
256 MiB layer never exists in memory as a whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
CHUNK = 1024 * 1024
BLOCK = 512


def pseudo_random(seed: str, size: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """`size` deterministic bytes for `seed`, in chunks of at most `chunk` bytes."""
    counter = 0
    while size > 0:
        n = min(chunk, size)
        yield hashlib.shake_128(f"{seed}/{counter}".encode()).digest(n)
        size -= n
        counter += 1


def stream_digest(chunks: Iterator[bytes]) -> tuple[str, int]:
    """sha256 digest and size of a byte stream, without keeping it."""
    hasher, size = hashlib.sha256(), 0
    for chunk in chunks:
        hasher.update(chunk)
        size += len(chunk)
    return "sha256:" + hasher.hexdigest(), size


def file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            value["platform"] = self.platform
        if self.annotations:
            value["annotations"] = self.annotations
        return value


@dataclass(frozen=True)
class LayerFile:
    """One regular file in a layer: `size` pseudo-random bytes from `seed`."""

    name: str
    size: int
    seed: str


@dataclass
class _LayerSink:
    """Tar bytes in; gzip (stored blocks) out to a file, with both digests computed on the way."""

    path: Path
    diff_hasher: Any = field(default_factory=hashlib.sha256)
    blob_hasher: Any = field(default_factory=hashlib.sha256)
    compressor: Any = field(default_factory=lambda: zlib.compressobj(0, zlib.DEFLATED, 16 + 15))
    size: int = 0
    tar_size: int = 0

    def __post_init__(self) -> None:
        self.file = self.path.open("wb")

    def write(self, data: bytes) -> None:
        self.diff_hasher.update(data)
        self.tar_size += len(data)
        self._out(self.compressor.compress(data))

    def _out(self, data: bytes) -> None:
        if data:
            self.blob_hasher.update(data)
            self.file.write(data)
            self.size += len(data)

    def close(self) -> tuple[str, str, int]:
        self._out(self.compressor.flush())
        self.file.close()
        return "sha256:" + self.blob_hasher.hexdigest(), "sha256:" + self.diff_hasher.hexdigest(), self.size


class LayoutWriter:
    """Builds an OCI image layout directory: blobs, manifests, indexes and tagged entries."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.blobs.mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.entries: list[Descriptor] = []

    def _blob_path(self, digest: str) -> Path:
        return self.blobs / digest.removeprefix("sha256:")

    def add_bytes(self, data: bytes, media_type: str) -> Descriptor:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self._blob_path(digest).write_bytes(data)
        return Descriptor(media_type, digest, len(data))

    def add_json(self, document: dict[str, Any], media_type: str) -> Descriptor:
        return self.add_bytes(json.dumps(document, sort_keys=True).encode(), media_type)

    def add_layer(self, files: list[LayerFile]) -> tuple[Descriptor, str]:
        """A tar+gzip layer holding `files`; returns its descriptor and its diff_id."""
        tmp = self.blobs / f".layer-{os.getpid()}-{len(os.listdir(self.blobs))}.tmp"
        sink = _LayerSink(tmp)
        for item in files:
            info = tarfile.TarInfo(item.name)
            info.size, info.mode, info.mtime = item.size, 0o644, 0
            sink.write(info.tobuf(format=tarfile.USTAR_FORMAT))
            for chunk in pseudo_random(item.seed, item.size):
                sink.write(chunk)
            if item.size % BLOCK:
                sink.write(b"\0" * (BLOCK - item.size % BLOCK))
        sink.write(b"\0" * (2 * BLOCK))  # end-of-archive marker
        digest, diff_id, size = sink.close()
        os.replace(tmp, self._blob_path(digest))
        return Descriptor(OCI_LAYER_GZIP, digest, size), diff_id

    def add_image(
        self, layers: list[list[LayerFile]], architecture: str = "amd64", os_name: str = "linux"
    ) -> Descriptor:
        """An image manifest (with its config and layers); returns the manifest's descriptor."""
        descriptors, diff_ids = [], []
        for files in layers:
            descriptor, diff_id = self.add_layer(files)
            descriptors.append(descriptor)
            diff_ids.append(diff_id)
        config = self.add_json(
            {
                "architecture": architecture,
                "os": os_name,
                "config": {"Cmd": ["/bin/true"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            },
            OCI_CONFIG,
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [d.to_json() for d in descriptors],
        }
        descriptor = self.add_json(manifest, OCI_MANIFEST)
        return Descriptor(
            descriptor.media_type,
            descriptor.digest,
            descriptor.size,
            platform={"architecture": architecture, "os": os_name},
        )

    def add_index(self, manifests: list[Descriptor]) -> Descriptor:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [m.to_json() for m in manifests],
        }
        return self.add_json(index, OCI_INDEX)

    def tag(self, descriptor: Descriptor, name: str) -> None:
        self.entries.append(
            Descriptor(descriptor.media_type, descriptor.digest, descriptor.size, {REF_NAME: name})
        )
        index = {"schemaVersion": 2, "manifests": [e.to_json() for e in self.entries]}
        (self.root / "index.json").write_text(json.dumps(index, indent=2))


@dataclass(frozen=True)
class Layout:
    root: Path
    tag: str
    digest: str  # of the tagged manifest or index
    blobs: frozenset[str]  # every blob digest in the layout, manifests included


def _finish(writer: LayoutWriter, descriptor: Descriptor, tag: str) -> Layout:
    writer.tag(descriptor, tag)
    return Layout(writer.root, tag, descriptor.digest, frozenset(blob_digests(writer.root)))


def big_layer_layout(root: Path, layer_size: int, tag: str = "big") -> Layout:
    """One image whose only layer holds a single file of `layer_size` bytes."""
    writer = LayoutWriter(root)
    manifest = writer.add_image([[LayerFile("data/big.bin", layer_size, f"big-{layer_size}")]])
    return _finish(writer, manifest, tag)


def many_layers_layout(root: Path, count: int, tag: str = "many") -> Layout:
    """One image with `count` distinct small layers."""
    writer = LayoutWriter(root)
    layers = [[LayerFile(f"layer{i:03d}/file.bin", 1000 + 37 * i, f"many-{i}")] for i in range(count)]
    return _finish(writer, writer.add_image(layers), tag)


def multi_platform_layout(
    root: Path, architectures: tuple[str, ...] = ("amd64", "arm64"), tag: str = "multi"
) -> Layout:
    """An image index over one image per architecture, each with two layers of its own."""
    writer = LayoutWriter(root)
    images = [
        writer.add_image(
            [
                [LayerFile(f"{arch}/bin/app", 200_000, f"multi-{arch}-app")],
                [LayerFile(f"{arch}/etc/conf", 3_000, f"multi-{arch}-conf")],
            ],
            architecture=arch,
        )
        for arch in architectures
    ]
    return _finish(writer, writer.add_index(images), tag)


def tagged_digest(root: Path, tag: str) -> str:
    """The digest that index.json of a layout gives for `tag`."""
    index = json.loads((root / "index.json").read_text())
    matches = [m["digest"] for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) == tag]
    if len(matches) != 1:
        raise AssertionError(f"{root}: expected one entry tagged {tag!r}, found {matches}")
    return str(matches[0])


def blob_digests(root: Path) -> set[str]:
    """Names of every blob in a layout."""
    return {"sha256:" + p.name for p in (root / "blobs" / "sha256").iterdir() if not p.name.startswith(".")}


def verify_blobs(root: Path) -> set[str]:
    """Every blob's bytes hashed against its name (streamed); returns the digests."""
    digests = blob_digests(root)
    for digest in digests:
        actual = file_digest(root / "blobs" / "sha256" / digest.removeprefix("sha256:"))
        if actual != digest:
            raise AssertionError(f"{root}: blob {digest} holds bytes with digest {actual}")
    return digests


def referenced_blobs(root: Path, digest: str) -> set[str]:
    """`digest` and everything reachable from it (children, configs, layers) in a layout."""
    path = root / "blobs" / "sha256" / digest.removeprefix("sha256:")
    found = {digest}
    document = json.loads(path.read_bytes()) if path.stat().st_size < 4 * CHUNK else {}
    for child in document.get("manifests", []):
        found |= referenced_blobs(root, child["digest"])
    if "config" in document:
        found.add(document["config"]["digest"])
    found |= {layer["digest"] for layer in document.get("layers", [])}
    return found
