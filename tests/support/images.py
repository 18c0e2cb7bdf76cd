"""Small real images for tests: one gzipped layer, pushed with plain OCI requests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass

import requests

from tests.support.registry_client import RegistryClient

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    manifest: bytes
    blobs: dict[str, bytes]

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def make_image(seed: str) -> Image:
    """A tiny but real single-layer linux image (skopeo copies it without changing a digest)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        content = f"hello from {seed}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(content), 0
        tar.addfile(info, io.BytesIO(content))
    diff = buffer.getvalue()
    layer = gzip.compress(diff, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
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
            "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(layer), "size": len(layer)}],
        }
    ).encode()
    return Image(manifest, {digest_of(config): config, digest_of(layer): layer})


def push_blobs(client: RegistryClient, name: str, image: Image) -> list[requests.Response]:
    return [
        client.post(
            f"/v2/{name}/blobs/uploads/?digest={digest}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        for digest, data in image.blobs.items()
    ]


def put_manifest(client: RegistryClient, name: str, reference: str, image: Image) -> requests.Response:
    return client.put(
        f"/v2/{name}/manifests/{reference}", data=image.manifest, headers={"Content-Type": OCI_MANIFEST}
    )


def push_image(client: RegistryClient, name: str, tag: str, image: Image) -> None:
    for response in push_blobs(client, name, image):
        assert response.status_code == 201, response.text
    response = put_manifest(client, name, tag, image)
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == image.digest


def get_manifest(client: RegistryClient, name: str, reference: str) -> requests.Response:
    return client.get(f"/v2/{name}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
