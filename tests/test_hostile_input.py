"""Input a careless or hostile client sends gets a 4xx in the API's own format, never a 500."""

from __future__ import annotations

import json

import pytest
import requests

from tests.support.images import OCI_MANIFEST, make_image, push_image
from tests.support.registry_client import RegistryClient, parse_challenge
from tests.support.server import ADMIN_PASSWORD, FerryServer

ORG = "hostile"
DEEP = 100_000  # far past Python's recursion limit


@pytest.fixture(scope="module")
def org(ferry_server: FerryServer) -> str:
    ferry_server.org(ORG)
    return ORG


@pytest.fixture(scope="module")
def admin(ferry_server: FerryServer) -> RegistryClient:
    return RegistryClient(ferry_server.url, "admin", ADMIN_PASSWORD)


def oci_error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    return str(response.json()["errors"][0]["code"])


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [DEEP, 200])
def test_deeply_nested_manifest_is_400(admin: RegistryClient, org: str, depth: int) -> None:
    payload = b'{"schemaVersion": 2, "mediaType": "%s", "annotations": {"a": %s}}' % (
        OCI_MANIFEST.encode(),
        nested(depth),
    )
    response = admin.put(f"/v2/{org}/deep/manifests/v1", data=payload, headers={"Content-Type": OCI_MANIFEST})
    assert oci_error(response, 400) == "MANIFEST_INVALID"
    assert "nested" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("path", ["/v2/manage/namespaces", "/v3/auth/tokens"])
def test_deeply_nested_management_body_is_400(ferry_server: FerryServer, path: str) -> None:
    headers = {"X-Auth-Token": ferry_server.admin_token(), "Content-Type": "application/json"}
    body = b'{"namespace": %s}' % nested(DEEP)
    response = requests.post(ferry_server.url + path, data=body, headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "SVCSTG.SWR.4001018"


@pytest.mark.parametrize("n", ["²", "①", "٣", "-1", "1e3", "99999999999999999999999"])
def test_page_size_that_is_not_ascii_digits_is_400(admin: RegistryClient, org: str, n: str) -> None:
    push_image(admin, f"{org}/paged", "v1", make_image("paged"))
    tags = admin.get(f"/v2/{org}/paged/tags/list", params={"n": n})
    assert oci_error(tags, 400) == "PAGINATION_NUMBER_INVALID"
    catalog = admin.get("/v2/_catalog", params={"n": n})
    assert oci_error(catalog, 400) == "PAGINATION_NUMBER_INVALID"


@pytest.mark.parametrize("version", [1, 3, None, "2", True])
def test_oci_manifest_needs_schema_version_2(admin: RegistryClient, org: str, version: object) -> None:
    image = make_image("schema")
    push_image(admin, f"{org}/schema", "good", image)
    document = json.loads(image.manifest)
    if version is None:
        del document["schemaVersion"]
    else:
        document["schemaVersion"] = version
    response = admin.put(
        f"/v2/{org}/schema/manifests/bad",
        data=json.dumps(document).encode(),
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert oci_error(response, 400) == "MANIFEST_INVALID"
    assert admin.get(f"/v2/{org}/schema/manifests/bad").status_code == 404


def layer_of(admin: RegistryClient, name: str) -> tuple[str, bytes]:
    image = make_image(name)
    push_image(admin, name, "v1", image)
    digest, data = max(image.blobs.items(), key=lambda item: len(item[1]))
    return digest, data


@pytest.mark.parametrize("header", ["bytes=-0", "bytes=999999-", "bytes=5-2", "bytes=0-1,3-4", "items=0-1"])
def test_unsatisfiable_range_is_416(admin: RegistryClient, org: str, header: str) -> None:
    digest, data = layer_of(admin, f"{org}/ranges")
    response = admin.get(f"/v2/{org}/ranges/blobs/{digest}", headers={"Range": header})
    assert response.status_code == 416, (header, response.status_code)
    assert response.headers["Content-Range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize(
    ("header", "start", "end"), [("bytes=-5", -5, None), ("bytes=3-", 3, None), ("bytes=2-6", 2, 7)]
)
def test_satisfiable_range_is_206(
    admin: RegistryClient, org: str, header: str, start: int, end: int | None
) -> None:
    digest, data = layer_of(admin, f"{org}/ranges")
    response = admin.get(f"/v2/{org}/ranges/blobs/{digest}", headers={"Range": header})
    assert response.status_code == 206, response.text
    assert response.content == data[start:end]
    first, last = start % len(data), start % len(data) + len(response.content) - 1
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
    head = admin.head(f"/v2/{org}/ranges/blobs/{digest}", headers={"Range": header})
    assert head.status_code == 206
    assert int(head.headers["Content-Length"]) == len(data[start:end])


def test_mount_challenges_for_the_source_scope_it_lacks(
    ferry_server: FerryServer, admin: RegistryClient, org: str
) -> None:
    """As distribution: a token without pull on `from` gets a 401 that names `from:pull`; a client
    that asks for exactly the challenged scopes then mounts."""
    source, target = f"{org}/mount-source", f"{org}/mount-target"
    digest, _ = layer_of(admin, source)
    url = f"{ferry_server.url}/v2/{target}/blobs/uploads/"
    query = {"mount": digest, "from": source}
    first = requests.post(url, params=query, timeout=30)
    token = admin.token(parse_challenge(first.headers["WWW-Authenticate"]))  # target scope only
    refused = requests.post(url, params=query, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert oci_error(refused, 401) == "DENIED"
    challenge = parse_challenge(refused.headers["WWW-Authenticate"])
    assert challenge["error"] == "insufficient_scope"
    assert set(challenge["scope"].split()) == {f"repository:{target}:pull,push", f"repository:{source}:pull"}
    token = admin.token(challenge)
    mounted = requests.post(url, params=query, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert mounted.status_code == 201, mounted.text
    assert admin.head(f"/v2/{target}/blobs/{digest}").status_code == 200


def test_signed_in_token_without_push_gets_403_with_the_challenge(
    ferry_server: FerryServer, admin: RegistryClient, org: str
) -> None:
    """So that clients which refresh only on 403 (oras-py) ask for the scope they need."""
    name = f"{org}/scoped"
    push_image(admin, name, "v1", make_image(name))
    head = requests.head(f"{ferry_server.url}/v2/{name}/manifests/v1", timeout=30)
    pull_token = admin.token(parse_challenge(head.headers["WWW-Authenticate"]))
    response = requests.post(
        f"{ferry_server.url}/v2/{name}/blobs/uploads/", headers={"Authorization": f"Bearer {pull_token}"}
    )
    assert oci_error(response, 403) == "DENIED"
    challenge = parse_challenge(response.headers["WWW-Authenticate"])
    assert (challenge["scope"], challenge["error"]) == (f"repository:{name}:pull,push", "insufficient_scope")
