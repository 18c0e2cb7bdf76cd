"""Driving Huawei Cloud's official SWR SDK (and plain IAM-token requests) against a Ferry process."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import tarfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkswr.v2 import SwrClient

from tests.support.registry_client import RegistryClient
from tests.support.server import FerryServer

REGION = "cn-north-4"  # a FerryServer's default FERRY_REGION
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
T = TypeVar("T")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


# --- access keys and SDK clients ---------------------------------------------------------------


@dataclass(frozen=True)
class AccessKey:
    ak: str
    sk: str
    project_id: str
    domain_id: str
    region: str

    @property
    def docker_login(self) -> tuple[str, str]:
        """SWR's long-term login: `<region>@<AK>` and hex HMAC-SHA256(key=SK, msg=AK)."""
        password = hmac.new(self.sk.encode(), self.ak.encode(), hashlib.sha256).hexdigest()
        return f"{self.region}@{self.ak}", password


def create_key(server: FerryServer, user: str) -> AccessKey:
    """`ferry key create USER`, parsed from its JSON output."""
    out = _ANSI.sub("", server.cli("key", "create", user).stdout)
    data = json.loads(out[out.index("{") : out.rindex("}") + 1])
    return AccessKey(data["ak"], data["sk"], data["project_id"], data["domain_id"], data["region"])


def _http_config() -> HttpConfig:
    config = HttpConfig.get_default_config()
    config.timeout = (5, 30)
    return config


def sdk_client(server: FerryServer, key: AccessKey) -> SwrClient:
    """The SDK with nothing but a local endpoint, an AK/SK and a project id."""
    credentials = BasicCredentials(key.ak, key.sk, key.project_id)
    return (
        SwrClient.new_builder()
        .with_http_config(_http_config())
        .with_credentials(credentials)
        .with_endpoints([server.url])
        .build()
    )


def sdk_client_by_region(server: FerryServer, key: AccessKey, region: str = REGION) -> SwrClient:
    """The SDK with a region and an IAM endpoint but no project id: it asks GET /v3/projects."""
    credentials = BasicCredentials(key.ak, key.sk).with_iam_endpoint(server.url)
    return (
        SwrClient.new_builder()
        .with_http_config(_http_config())
        .with_credentials(credentials)
        .with_region(Region(region, server.url))
        .build()
    )


def sdk_error(call: Callable[[], Any]) -> ClientRequestException:
    """The SDK's exception for a call that must fail with a 4xx."""
    try:
        call()
    except ClientRequestException as error:
        return error
    raise AssertionError("the call succeeded but should have failed")


def assert_sdk_error(call: Callable[[], Any], status: int, code: str) -> ClientRequestException:
    error = sdk_error(call)
    assert (error.status_code, error.error_code) == (status, code), (
        error.status_code,
        error.error_code,
        error.error_msg,
    )
    assert error.request_id, "every error carries X-Request-Id"
    return error


# --- IAM tokens -------------------------------------------------------------------------------


def token_request(
    server: FerryServer, user: str, password: str, scope: dict[str, Any] | None
) -> requests.Response:
    """POST /v3/auth/tokens with the password method, as IAM's docs show it."""
    auth: dict[str, Any] = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": user, "password": password}},
        }
    }
    if scope is not None:
        auth["scope"] = scope
    return requests.post(
        f"{server.url}/v3/auth/tokens",
        data=json.dumps({"auth": auth}),
        headers={"Content-Type": "application/json;charset=utf8"},
        timeout=30,
    )


def iam_token(server: FerryServer, user: str, password: str, region: str = REGION) -> str:
    response = token_request(server, user, password, {"project": {"name": region}})
    assert response.status_code == 201, response.text
    return response.headers["X-Subject-Token"]


class TokenSession:
    """Plain HTTP calls to the management API with `X-Auth-Token` (the SDK itself only signs)."""

    def __init__(self, server: FerryServer, token: str) -> None:
        self.base = server.url
        self.session = requests.Session()
        self.session.headers.update({"X-Auth-Token": token, "Content-Type": "application/json"})

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        data = None if body is None else json.dumps(body)
        return self.session.request(method, self.base + path, data=data, timeout=30, **kwargs)


# --- images pushed through the registry API ----------------------------------------------------


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Pushed:
    """A manifest (image or index) and the blobs it needs, each with its bytes."""

    manifest: bytes
    media_type: str
    blobs: dict[str, bytes]
    children: tuple[Pushed, ...] = ()

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


def make_image(seed: str, arch: str = "amd64") -> Pushed:
    """A tiny single-layer linux image."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        content = f"hello from {seed} on {arch}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(content), 0
        tar.addfile(info, io.BytesIO(content))
    layer = buffer.getvalue()
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]},
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
    return Pushed(manifest, OCI_MANIFEST, {digest_of(config): config, digest_of(layer): layer})


def make_index(seed: str, arches: tuple[str, ...] = ("amd64", "arm64")) -> Pushed:
    children = tuple(make_image(seed, arch) for arch in arches)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": child.digest,
                    "size": len(child.manifest),
                    "platform": {"os": "linux", "architecture": arch},
                }
                for child, arch in zip(children, arches, strict=True)
            ],
        }
    ).encode()
    return Pushed(index, OCI_INDEX, {}, children)


def push(client: RegistryClient, name: str, tag: str, pushed: Pushed) -> None:
    """Blobs by monolithic POST, children by digest, then the manifest under `tag`."""
    for digest, data in pushed.blobs.items():
        response = client.post(
            f"/v2/{name}/blobs/uploads/?digest={digest}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 201, response.text
    for child in pushed.children:
        push(client, name, child.digest, child)
    response = client.put(
        f"/v2/{name}/manifests/{tag}", data=pushed.manifest, headers={"Content-Type": pushed.media_type}
    )
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == pushed.digest
