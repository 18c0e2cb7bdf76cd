"""Small real test images in memory, and pushing them with plain OCI distribution requests.

The one place tests build an image (or an index over images) as bytes and push it through the
registry API. Images written to an OCI layout on disk, streamed and of any size, are
tests/support/layouts.py's.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import dataclass

import requests

from ferry.images.digests import sha256_digest as digest_of
from tests.support.layouts import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST
from tests.support.registry_client import RegistryClient

OCTET_STREAM = {"Content-Type": "application/octet-stream"}


@dataclass(frozen=True)
class Image:
    """A manifest (an image's or an index's), the blobs it names and, for an index, its children."""

    manifest: bytes
    blobs: dict[str, bytes]
    media_type: str = OCI_MANIFEST
    children: tuple[Image, ...] = ()

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    @property
    def content_size(self) -> int:
        """What SWR reports as a tag's size: manifest bytes, its blobs, and its children's sizes."""
        return (
            len(self.manifest)
            + sum(len(b) for b in self.blobs.values())
            + sum(c.content_size for c in self.children)
        )

    def all_blobs(self) -> dict[str, bytes]:
        blobs = dict(self.blobs)
        for child in self.children:
            blobs |= child.all_blobs()
        return blobs

    def all_manifests(self) -> dict[str, bytes]:
        manifests = {self.digest: self.manifest}
        for child in self.children:
            manifests |= child.all_manifests()
        return manifests


def make_image(seed: str, arch: str = "amd64") -> Image:
    """A tiny but real single-layer linux image (skopeo copies it without changing a digest).

    Its one file names `seed` and `arch`, so distinct seeds (or architectures) are distinct images.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        content = f"hello from {seed} on {arch}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(content), 0
        tar.addfile(info, io.BytesIO(content))
    diff = buffer.getvalue()
    layer = gzip.compress(diff, mtime=0)
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(diff)]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": digest_of(layer), "size": len(layer)}],
        }
    ).encode()
    return Image(manifest, {digest_of(config): config, digest_of(layer): layer})


def make_index(seed: str, arches: tuple[str, ...] = ("amd64", "arm64")) -> Image:
    """An image index over one `make_image(seed, arch)` per architecture."""
    children = tuple(make_image(seed, arch) for arch in arches)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": child.media_type,
                    "digest": child.digest,
                    "size": len(child.manifest),
                    "platform": {"os": "linux", "architecture": arch},
                }
                for child, arch in zip(children, arches, strict=True)
            ],
        }
    ).encode()
    return Image(index, {}, OCI_INDEX, children)


# --- pushing through the registry API ----------------------------------------------------------


def upload_blob(client: RegistryClient, name: str, data: bytes) -> requests.Response:
    """A monolithic upload (`POST …/blobs/uploads/?digest=`), whatever the answer."""
    return client.post(f"/v2/{name}/blobs/uploads/?digest={digest_of(data)}", data=data, headers=OCTET_STREAM)


def push_blob(client: RegistryClient, name: str, data: bytes) -> str:
    """Uploads `data` in one request, which must succeed; returns its digest."""
    response = upload_blob(client, name, data)
    assert response.status_code == 201, response.text
    return digest_of(data)


def push_blobs(client: RegistryClient, name: str, image: Image) -> list[requests.Response]:
    """The image's own blobs (not its children's), one monolithic upload each, whatever the answers."""
    return [upload_blob(client, name, data) for data in image.blobs.values()]


def put_manifest(client: RegistryClient, name: str, reference: str, image: Image) -> requests.Response:
    return client.put(
        f"/v2/{name}/manifests/{reference}", data=image.manifest, headers={"Content-Type": image.media_type}
    )


def push_image(client: RegistryClient, name: str, tag: str, image: Image) -> None:
    """Blobs by monolithic POST, an index's children by digest, then the manifest under `tag`."""
    for response in push_blobs(client, name, image):
        assert response.status_code == 201, response.text
    for child in image.children:
        push_image(client, name, child.digest, child)
    response = put_manifest(client, name, tag, image)
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == image.digest


def push_manifest(
    client: RegistryClient, name: str, reference: str, manifest: bytes, media_type: str = OCI_MANIFEST
) -> str:
    """PUTs a manifest whose blobs the repository holds already; returns its digest."""
    image = Image(manifest, {}, media_type)
    push_image(client, name, reference, image)
    return image.digest


def get_manifest(client: RegistryClient, name: str, reference: str) -> requests.Response:
    return client.get(f"/v2/{name}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
