"""Pull workflow (conformance/01_pull_test.go), plus the base route and error-body checks."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests

from tests.conformance.helpers import (
    NONEXISTENT_MANIFEST,
    OCI_MANIFEST,
    Blob,
    Document,
    assert_error,
    blob_path,
    config_blob,
    image_manifest,
    layer_blob,
    manifest_path,
    push_blob,
    put_manifest,
    random_blob,
    sha256,
)
from tests.support.registry_client import RegistryClient
from tests.support.server import FerryServer

NAME = "conformance/pull"
TAG = "tagtest0"


@dataclass
class PullSetup:
    configs: list[Blob]
    layer: Blob
    manifests: list[Document]
    blob_responses: dict[str, requests.Response]
    manifest_responses: dict[str, requests.Response]


@pytest.fixture(scope="module")
def setup(registry: RegistryClient) -> PullSetup:
    """Setup: two configs and a layer by POST+PUT, manifests[0] by tag, manifests[1] by digest."""
    configs = [config_blob(), config_blob()]
    layer = layer_blob()
    manifests = [image_manifest(config, [layer]) for config in configs]
    blob_responses = {
        label: push_blob(registry, NAME, blob)
        for label, blob in (("config0", configs[0]), ("config1", configs[1]), ("layer", layer))
    }
    manifest_responses = {
        "tag": put_manifest(registry, NAME, TAG, manifests[0]),
        "digest": put_manifest(registry, NAME, manifests[1].digest, manifests[1]),
    }
    return PullSetup(configs, layer, manifests, blob_responses, manifest_responses)


# --- base API route -------------------------------------------------------------------------


def test_base_route_challenges_anonymous_client(ferry_server: FerryServer) -> None:
    response = requests.get(ferry_server.url + "/v2/", timeout=10)
    assert_error(response, 401, "UNAUTHORIZED")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'realm="' in challenge and 'service="' in challenge
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_base_route_returns_200_when_authenticated(registry: RegistryClient) -> None:
    response = registry.get("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_wrong_password_gets_no_token(ferry_server: FerryServer) -> None:
    response = requests.get(ferry_server.url + "/v2/token", auth=("admin", "not-the-password"), timeout=10)
    assert_error(response, 401, "UNAUTHORIZED")


def test_anonymous_pull_is_challenged_for_the_repository_scope(
    ferry_server: FerryServer, setup: PullSetup
) -> None:
    for response in (
        requests.get(ferry_server.url + manifest_path(NAME, TAG), timeout=10),
        requests.head(ferry_server.url + blob_path(NAME, setup.layer.digest), timeout=10),
    ):
        assert response.status_code == 401
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer ")
        assert f'scope="repository:{NAME}:pull"' in challenge
    assert_error(requests.get(ferry_server.url + manifest_path(NAME, TAG), timeout=10), 401, "UNAUTHORIZED")


def test_token_without_rights_is_denied(ferry_server: FerryServer, setup: PullSetup) -> None:
    """An anonymous token carries no rights on a private repository: still 401, now DENIED."""
    anonymous = RegistryClient(ferry_server.url)
    response = anonymous.get(manifest_path(NAME, TAG))
    assert_error(response, 401, "DENIED")
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


# --- Setup ----------------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["config0", "config1", "layer"])
def test_setup_populate_registry_with_blob(setup: PullSetup, label: str) -> None:
    response = setup.blob_responses[label]
    assert response.status_code == 201, response.text
    blob = {"config0": setup.configs[0], "config1": setup.configs[1], "layer": setup.layer}[label]
    assert response.headers["Location"].endswith(blob_path(NAME, blob.digest))
    assert response.headers["Docker-Content-Digest"] == blob.digest


@pytest.mark.parametrize("label", ["tag", "digest"])
def test_setup_populate_registry_with_manifest(setup: PullSetup, label: str) -> None:
    response = setup.manifest_responses[label]
    document = setup.manifests[0 if label == "tag" else 1]
    assert response.status_code == 201, response.text
    assert response.headers["Location"].endswith(manifest_path(NAME, document.digest))
    assert response.headers["Docker-Content-Digest"] == document.digest


def test_setup_tag_name_is_listed(registry: RegistryClient, setup: PullSetup) -> None:
    response = registry.get(f"/v2/{NAME}/tags/list")
    assert response.status_code == 200
    assert response.json() == {"name": NAME, "tags": [TAG]}


# --- Pull blobs -----------------------------------------------------------------------------


def test_head_nonexistent_blob_is_404(registry: RegistryClient, setup: PullSetup) -> None:
    response = registry.head(blob_path(NAME, random_blob().digest))
    assert response.status_code == 404
    assert response.content == b""


def test_head_existing_blob_is_200(registry: RegistryClient, setup: PullSetup) -> None:
    config = setup.configs[0]
    response = registry.head(blob_path(NAME, config.digest))
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == config.digest
    assert int(response.headers["Content-Length"]) == config.size
    assert response.content == b""


def test_get_nonexistent_blob_is_404(registry: RegistryClient, setup: PullSetup) -> None:
    digest = random_blob().digest
    error = assert_error(registry.get(blob_path(NAME, digest)), 404, "BLOB_UNKNOWN")
    assert error["detail"]["digest"] == digest


@pytest.mark.parametrize("which", ["config", "layer"])
def test_get_existing_blob_is_200(registry: RegistryClient, setup: PullSetup, which: str) -> None:
    blob = setup.configs[0] if which == "config" else setup.layer
    response = registry.get(blob_path(NAME, blob.digest))
    assert response.status_code == 200
    assert response.content == blob.content
    assert sha256(response.content) == blob.digest
    assert response.headers["Docker-Content-Digest"] == blob.digest


@pytest.mark.parametrize("which", ["config", "layer"])
def test_a_blob_s_etag_is_its_digest_and_if_none_match_is_304(
    registry: RegistryClient, setup: PullSetup, which: str
) -> None:
    """As distribution answers: the same bytes have the same ETag in every region and replica
    (not one made of a file's mtime), so a cache revalidates a blob by its digest."""
    blob = setup.configs[0] if which == "config" else setup.layer
    path = blob_path(NAME, blob.digest)
    for response in (registry.get(path), registry.head(path)):
        assert response.headers["ETag"] == f'"{blob.digest}"'
    again = registry.get(path, headers={"If-None-Match": f'"{blob.digest}"'})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == f'"{blob.digest}"'
    other = registry.get(path, headers={"If-None-Match": f'"sha256:{"0" * 64}"'})
    assert other.status_code == 200 and other.content == blob.content


def test_blob_of_another_repository_is_not_served(registry: RegistryClient, setup: PullSetup) -> None:
    """Blobs are gated by repository name: pushing to pull-other does not expose it here."""
    blob = random_blob()
    assert push_blob(registry, "conformance/pull-other", blob).status_code == 201
    assert registry.head(blob_path("conformance/pull-other", blob.digest)).status_code == 200
    assert_error(registry.get(blob_path(NAME, blob.digest)), 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [("bytes=0-9", 0, 9), ("bytes=10-", 10, None), ("bytes=-5", -5, None), ("bytes=3-3", 3, 3)],
)
def test_get_blob_with_range_is_206(
    registry: RegistryClient, setup: PullSetup, range_header: str, start: int, end: int | None
) -> None:
    layer = setup.layer
    response = registry.get(blob_path(NAME, layer.digest), headers={"Range": range_header})
    assert response.status_code == 206, response.text
    if start < 0:
        expected, first = layer.content[start:], layer.size + start
    else:
        expected = layer.content[start : None if end is None else end + 1]
        first = start
    assert response.content == expected
    last = first + len(expected) - 1
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{layer.size}"
    assert int(response.headers["Content-Length"]) == len(expected)


def test_get_blob_with_unsatisfiable_range_is_416(registry: RegistryClient, setup: PullSetup) -> None:
    layer = setup.layer
    response = registry.get(blob_path(NAME, layer.digest), headers={"Range": f"bytes={layer.size + 10}-"})
    assert response.status_code == 416


# --- Pull manifests -------------------------------------------------------------------------


def test_head_nonexistent_manifest_is_404(registry: RegistryClient, setup: PullSetup) -> None:
    response = registry.head(manifest_path(NAME, NONEXISTENT_MANIFEST))
    assert response.status_code == 404
    assert registry.head(manifest_path(NAME, "no-such-tag")).status_code == 404


@pytest.mark.parametrize("index", [0, 1])
def test_head_manifest_by_digest_is_200(registry: RegistryClient, setup: PullSetup, index: int) -> None:
    document = setup.manifests[index]
    response = registry.head(manifest_path(NAME, document.digest), headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == document.digest
    assert int(response.headers["Content-Length"]) == document.size
    assert response.headers["Content-Type"].split(";")[0] == OCI_MANIFEST
    assert response.content == b""


def test_head_manifest_by_tag_is_200(registry: RegistryClient, setup: PullSetup) -> None:
    response = registry.head(manifest_path(NAME, TAG), headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == setup.manifests[0].digest


def test_get_nonexistent_manifest_is_404(registry: RegistryClient, setup: PullSetup) -> None:
    assert_error(registry.get(manifest_path(NAME, NONEXISTENT_MANIFEST)), 404, "MANIFEST_UNKNOWN")
    assert_error(registry.get(manifest_path(NAME, "no-such-tag")), 404, "MANIFEST_UNKNOWN")
    digest = random_blob().digest
    assert_error(registry.get(manifest_path(NAME, digest)), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("index", [0, 1])
def test_get_manifest_by_digest_is_200(registry: RegistryClient, setup: PullSetup, index: int) -> None:
    document = setup.manifests[index]
    response = registry.get(manifest_path(NAME, document.digest), headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200
    assert response.content == document.content
    assert response.headers["Content-Type"].split(";")[0] == OCI_MANIFEST
    assert response.headers["Docker-Content-Digest"] == document.digest


def test_get_manifest_by_tag_is_200(registry: RegistryClient, setup: PullSetup) -> None:
    response = registry.get(manifest_path(NAME, TAG), headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200
    assert response.content == setup.manifests[0].content
    assert response.headers["Docker-Content-Digest"] == setup.manifests[0].digest


# --- Error codes ----------------------------------------------------------------------------


def test_400_response_body_is_oci_conforming_json(registry: RegistryClient, setup: PullSetup) -> None:
    """GET of a manifest by a malformed digest: 400 DIGEST_INVALID in the spec's error body."""
    response = registry.get(
        manifest_path(NAME, "sha256:totallywrong"),
        data=b"blablabla",
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert_error(response, 400, "DIGEST_INVALID")
    response = registry.put(
        manifest_path(NAME, "sha256:totallywrong"), data=b"blablabla", headers={"Content-Type": OCI_MANIFEST}
    )
    assert_error(response, 400, "DIGEST_INVALID")


@pytest.mark.parametrize(
    "digest",
    ["sha256:totallywrong", "sha256:" + "A" * 64, "sha256:" + "a" * 63, "notadigest", "sha256:", "md5:abc"],
)
def test_malformed_blob_digest_is_400_digest_invalid(
    registry: RegistryClient, setup: PullSetup, digest: str
) -> None:
    assert_error(registry.get(blob_path(NAME, digest)), 400, "DIGEST_INVALID")
    head = registry.head(blob_path(NAME, digest))
    assert head.status_code == 400


def test_unknown_repository_is_404_name_unknown(registry: RegistryClient, setup: PullSetup) -> None:
    name = "conformance/never-pushed"
    assert_error(registry.get(manifest_path(name, TAG)), 404, "NAME_UNKNOWN")
    assert_error(registry.get(blob_path(name, setup.layer.digest)), 404, "NAME_UNKNOWN")
    assert_error(registry.get(f"/v2/{name}/tags/list"), 404, "NAME_UNKNOWN")


@pytest.mark.parametrize(
    "name",
    ["conformance/Upper", "Conformance/pull", "conformance/-dash", "conformance/pull-", "single", "a/b//c"],
)
def test_invalid_repository_name_is_400_name_invalid(registry: RegistryClient, name: str) -> None:
    assert_error(registry.get(manifest_path(name, TAG)), 400, "NAME_INVALID")
    assert_error(registry.post(f"/v2/{name}/blobs/uploads/"), 400, "NAME_INVALID")


def test_responses_carry_api_version_header(registry: RegistryClient, setup: PullSetup) -> None:
    for response in (
        registry.get(manifest_path(NAME, TAG)),
        registry.get(blob_path(NAME, setup.configs[0].digest)),
        registry.get(manifest_path(NAME, NONEXISTENT_MANIFEST)),
        registry.get(f"/v2/{NAME}/tags/list"),
    ):
        assert response.headers.get("Docker-Distribution-API-Version") == "registry/2.0", response.url


# --- Teardown -------------------------------------------------------------------------------


def test_teardown_deletes_manifests_then_blobs(registry: RegistryClient) -> None:
    """Teardown (deleteManifestBeforeBlobs): every delete of content created in setup is 202."""
    name = "conformance/pull-teardown"
    configs = [config_blob(), config_blob()]
    layer = layer_blob()
    manifests = [image_manifest(config, [layer]) for config in configs]
    for blob in (*configs, layer):
        assert push_blob(registry, name, blob).status_code == 201
    assert put_manifest(registry, name, TAG, manifests[0]).status_code == 201
    assert put_manifest(registry, name, manifests[1].digest, manifests[1]).status_code == 201
    for document in manifests:
        assert registry.delete(manifest_path(name, document.digest)).status_code == 202
    for blob in (*configs, layer):
        response = registry.delete(blob_path(name, blob.digest))
        assert response.status_code == 202
    for document in manifests:
        assert registry.get(manifest_path(name, document.digest)).status_code == 404
    assert registry.get(blob_path(name, layer.digest)).status_code == 404
