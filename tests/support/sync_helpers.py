"""Helpers for the end-to-end image sync tests: SDK clients, layout images, pushes, polling sync jobs."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from huaweicloudsdkswr.v2 import (
    CreateImageSyncRepoRequest,
    CreateImageSyncRepoRequestBody,
    CreateManualImageSyncRepoRequest,
    CreateManualImageSyncRepoRequestBody,
    CreateNamespaceRequest,
    CreateNamespaceRequestBody,
    CreateRepoRequest,
    CreateRepoRequestBody,
    SwrClient,
)

from tests.support.images import Image, digest_of, push_blob, push_image, push_manifest
from tests.support.layouts import OCI_INDEX, OCI_MANIFEST, Descriptor, LayerFile, LayoutWriter
from tests.support.names import unique
from tests.support.regions import ACCESS_KEY, PROJECT_ID, SECRET_KEY
from tests.support.registry_client import RegistryClient
from tests.support.server import ADMIN_PASSWORD, FerryServer
from tests.support.swr import TokenSession, endpoint_client, iam_token

FINAL = frozenset({"success", "existed", "failed", "timeout", "cancel"})
DEADLINE = 60.0
ACCEPT = ", ".join(
    [
        OCI_INDEX,
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
T = TypeVar("T")


# --- polling ----------------------------------------------------------------------------------


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    """Calls `probe` until it returns something truthy; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


# --- the SWR SDK and the management API -------------------------------------------------------


_clients: dict[str, SwrClient] = {}


def sdk(server: FerryServer) -> SwrClient:
    """The SDK signed with the regions' shared admin AK/SK (tests/support/regions.py), one per URL."""
    if server.url not in _clients:
        _clients[server.url] = endpoint_client(server.url, ACCESS_KEY, SECRET_KEY, PROJECT_ID)
    return _clients[server.url]


def sdk_repo(repository: str) -> str:
    """SWR's path form of a repository name: `group/app` is `group$app`."""
    return repository.replace("/", "$")


def create_org(server: FerryServer, name: str) -> None:
    sdk(server).create_namespace(CreateNamespaceRequest(body=CreateNamespaceRequestBody(namespace=name)))


def new_org(*servers: FerryServer, prefix: str = "sync") -> str:
    """One fresh organization name, created in every given region."""
    name = unique(prefix)
    for server in servers:
        create_org(server, name)
    return name


def org_rules_path(org: str) -> str:
    return f"/v2/manage/namespaces/{org}/sync_rules"


def create_org_rule(server: FerryServer, org: str, body: dict[str, Any]) -> dict[str, Any]:
    """An organization rule made through Ferry's API (it must be accepted); the rule as answered."""
    response = manage(server).request("POST", org_rules_path(org), body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def create_repo(server: FerryServer, namespace: str, repository: str) -> None:
    body = CreateRepoRequestBody(repository=repository, is_public=False, category="linux")
    sdk(server).create_repo(CreateRepoRequest(namespace=namespace, body=body))


def create_rule(
    server: FerryServer,
    namespace: str,
    repository: str,
    region: str,
    remote_namespace: str,
    *,
    sync_auto: bool = True,
    override: bool = False,
) -> int:
    body = CreateImageSyncRepoRequestBody(
        remote_region_id=region, remote_namespace=remote_namespace, sync_auto=sync_auto, override=override
    )
    response = sdk(server).create_image_sync_repo(
        CreateImageSyncRepoRequest(namespace=namespace, repository=sdk_repo(repository), body=body)
    )
    return int(response.status_code)


def manual_sync(
    server: FerryServer,
    namespace: str,
    repository: str,
    tags: list[str],
    region: str,
    remote_namespace: str,
    *,
    override: bool = False,
) -> list[str]:
    """The failed tags of `sync_images` (the SDK turns `[]` into None)."""
    body = CreateManualImageSyncRepoRequestBody(
        image_tag=tags, override=override, remote_namespace=remote_namespace, remote_region_id=region
    )
    response = sdk(server).create_manual_image_sync_repo(
        CreateManualImageSyncRepoRequest(namespace=namespace, repository=sdk_repo(repository), body=body)
    )
    assert response.status_code == 200
    return list(response.body or [])


_tokens: dict[str, str] = {}


def manage(server: FerryServer) -> TokenSession:
    """Plain management calls with an IAM token (to read the job fields the SDK model drops)."""
    region = server.env.get("FERRY_REGION", "cn-north-4")
    if server.url not in _tokens:
        _tokens[server.url] = iam_token(server, "admin", ADMIN_PASSWORD, region)
    return TokenSession(server, _tokens[server.url])


def jobs(server: FerryServer, namespace: str, repository: str) -> list[dict[str, Any]]:
    """Every sync record of a repository as raw JSON, oldest first."""
    path = f"/v2/manage/namespaces/{namespace}/repos/{sdk_repo(repository)}/sync_job"
    response = manage(server).request("GET", path, params={"filter": "limit::1000|offset::0|order::asc"})
    assert response.status_code == 200, response.text
    return list(response.json())


def wait_jobs_final(
    server: FerryServer, namespace: str, repository: str, count: int = 1, timeout: float = DEADLINE
) -> list[dict[str, Any]]:
    """Waits until the repository has at least `count` jobs and all of them are final."""

    def probe() -> list[dict[str, Any]] | None:
        found = jobs(server, namespace, repository)
        if len(found) >= count and all(j["status"] in FINAL for j in found):
            return found
        return None

    return wait_for(probe, f"{count} final sync job(s) of {namespace}/{repository}", timeout)


# --- registry side ----------------------------------------------------------------------------


_registries: dict[str, RegistryClient] = {}


def registry(server: FerryServer) -> RegistryClient:
    """One client per region, so its bearer tokens are reused (each token costs a password hash)."""
    if server.url not in _registries:
        _registries[server.url] = RegistryClient(server.url, "admin", ADMIN_PASSWORD)
    return _registries[server.url]


def tag_digest(server: FerryServer, image: str, reference: str) -> str | None:
    response = registry(server).head(f"/v2/{image}/manifests/{reference}", headers={"Accept": ACCEPT})
    if response.status_code == 404:
        return None
    assert response.status_code == 200, (response.status_code, response.text)
    return str(response.headers["Docker-Content-Digest"])


def wait_tag(server: FerryServer, image: str, tag: str, digest: str, timeout: float = DEADLINE) -> str:
    def probe() -> str | None:
        return digest if tag_digest(server, image, tag) == digest else None

    return wait_for(probe, f"{image}:{tag} to be {digest} at {server.url}", timeout)


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"skopeo {' '.join(args)} failed:\n{result.stderr[-4000:]}"
    return result


def skopeo_push(server: FerryServer, layout: Path, tag: str, image: str) -> None:
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        f"--dest-creds=admin:{ADMIN_PASSWORD}",
        f"oci:{layout}:{tag}",
        f"docker://{server.host}/{image}",
    )


def skopeo_pull(server: FerryServer, image: str, dest: Path, tag: str) -> None:
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        f"--src-creds=admin:{ADMIN_PASSWORD}",
        f"docker://{server.host}/{image}",
        f"oci:{dest}:{tag}",
    )


def skopeo_raw_digest(server: FerryServer, image: str) -> str:
    raw = skopeo(
        "inspect",
        "--raw",
        "--tls-verify=false",
        f"--creds=admin:{ADMIN_PASSWORD}",
        f"docker://{server.host}/{image}",
    ).stdout.encode()
    return digest_of(raw)


# --- images in OCI layouts --------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutImage:
    """An image in an OCI layout directory (tagged `tag` there), for skopeo and the registry API."""

    root: Path
    tag: str
    digest: str
    layers: tuple[Descriptor, ...]

    def blob(self, digest: str) -> bytes:
        return (self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()

    @property
    def manifest(self) -> bytes:
        return self.blob(self.digest)

    @property
    def size(self) -> int:
        """Manifest, config and layers."""
        document = json.loads(self.manifest)
        return len(self.manifest) + document["config"]["size"] + sum(d["size"] for d in document["layers"])


def image_layout(root: Path, layers: list[tuple[str, int]], tag: str = "latest") -> LayoutImage:
    """One linux/amd64 image; each layer is one file of `size` pseudo-random bytes from `seed`."""
    writer = LayoutWriter(root)
    files = [[LayerFile(f"{seed}/data.bin", size, seed)] for seed, size in layers]
    descriptor = writer.add_image(files)
    writer.tag(descriptor, tag)
    document = json.loads(
        (root / "blobs" / "sha256" / descriptor.digest.removeprefix("sha256:")).read_bytes()
    )
    layer_descriptors = tuple(Descriptor(d["mediaType"], d["digest"], d["size"]) for d in document["layers"])
    return LayoutImage(root, tag, descriptor.digest, layer_descriptors)


def push_layout_image(server: FerryServer, image: LayoutImage, name: str, tag: str) -> None:
    """Pushes a single-manifest layout through the registry API (missing blobs, then the manifest)."""
    client = registry(server)
    document = json.loads(image.manifest)
    for descriptor in [document["config"], *document["layers"]]:
        digest = descriptor["digest"]
        if client.head(f"/v2/{name}/blobs/{digest}").status_code != 200:
            push_blob(client, name, image.blob(digest))
    push_manifest(client, name, tag, image.manifest)


def push_signature(
    server: FerryServer, name: str, subject: str, subject_type: str, subject_size: int, note: str
) -> str:
    """A cosign-style signature: a manifest whose `subject` is the image, pushed by digest."""
    empty = b"{}"
    layer = json.dumps({"critical": {"image": {"docker-manifest-digest": subject}}, "note": note}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": digest_of(empty),
                "size": len(empty),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "digest": digest_of(layer),
                    "size": len(layer),
                }
            ],
            "subject": {"mediaType": subject_type, "digest": subject, "size": subject_size},
        }
    ).encode()
    signature = Image(manifest, {digest_of(empty): empty, digest_of(layer): layer})
    push_image(registry(server), name, signature.digest, signature)
    return signature.digest


def referrer_digests(server: FerryServer, name: str, subject: str) -> set[str]:
    response = registry(server).get(f"/v2/{name}/referrers/{subject}")
    assert response.status_code == 200, response.text
    return {m["digest"] for m in response.json()["manifests"]}
