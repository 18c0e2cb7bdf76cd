"""Push workflow (conformance/02_push_test.go): streamed, monolithic and chunked blob uploads,
cross-repository mounts and manifest uploads of every supported media type."""

from __future__ import annotations

import json
import secrets

import pytest
import requests

from tests.conformance.helpers import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DUMMY_DIGEST,
    NONEXISTENT_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    PUSHER,
    PUSHER_ORG,
    PUSHER_PASSWORD,
    READER,
    READER_PASSWORD,
    Blob,
    assert_error,
    authorize,
    blob_path,
    config_blob,
    image_manifest,
    index_manifest,
    layer_blob,
    location,
    make_image,
    manifest_path,
    push_blob,
    push_blobs,
    push_image,
    put_manifest,
    random_blob,
    start_upload,
)
from tests.support.registry_client import RegistryClient
from tests.support.server import FerryServer

NAME = "conformance/push"
OCTET = {"Content-Type": "application/octet-stream"}


def _chunks(blob: Blob) -> tuple[tuple[bytes, str], tuple[bytes, str]]:
    """setupChunkedBlob: chunk 1 is size/2+1 bytes, chunk 2 the rest; ranges are inclusive."""
    cut = blob.size // 2 + 1
    first, second = blob.content[:cut], blob.content[cut:]
    return (first, f"0-{cut - 1}"), (second, f"{cut}-{blob.size - 1}")


def _patch(client: RegistryClient, url: str, chunk: bytes, content_range: str | None) -> requests.Response:
    headers = OCTET | {"Content-Length": str(len(chunk))}
    if content_range is not None:
        headers["Content-Range"] = content_range
    return client.patch(url, data=chunk, headers=headers)


def _new_session(client: RegistryClient, name: str = NAME) -> str:
    response = start_upload(client, name, headers={"Content-Length": "0"})
    assert response.status_code == 202, response.text
    return location(response)


def _assert_blob(client: RegistryClient, name: str, blob: Blob) -> None:
    response = client.get(blob_path(name, blob.digest))
    assert response.status_code == 200, response.text
    assert response.content == blob.content


# --- Blob Upload Streamed -------------------------------------------------------------------


def test_patch_with_blob_in_body_is_202(registry: RegistryClient) -> None:
    blob = random_blob()
    started = start_upload(registry, NAME)
    assert started.status_code == 202
    response = registry.patch(location(started), data=blob.content, headers=OCTET)
    assert response.status_code == 202, response.text
    assert location(response)
    assert response.headers["Range"] == f"0-{blob.size - 1}"


def test_put_to_session_url_with_digest_is_201(registry: RegistryClient) -> None:
    blob = random_blob()
    started = start_upload(registry, NAME)
    patched = registry.patch(location(started), data=blob.content, headers=OCTET)
    assert patched.status_code == 202
    response = registry.put(
        location(patched), params={"digest": blob.digest}, headers=OCTET | {"Content-Length": "0"}
    )
    assert response.status_code == 201, response.text
    assert location(response).endswith(blob_path(NAME, blob.digest))
    assert response.headers["Docker-Content-Digest"] == blob.digest
    _assert_blob(registry, NAME, blob)


# --- Blob Upload Monolithic -----------------------------------------------------------------


def test_get_nonexistent_blob_is_404(registry: RegistryClient) -> None:
    push_blob(registry, NAME, random_blob())  # the repository exists
    assert_error(registry.get(blob_path(NAME, DUMMY_DIGEST)), 404, "BLOB_UNKNOWN")


def test_post_with_digest_and_blob_is_201(registry: RegistryClient) -> None:
    """Single POST: the registry supports it, so 201 (not the 202 fallback) and the blob is there."""
    config = config_blob()
    response = start_upload(
        registry,
        NAME,
        params={"digest": config.digest},
        data=config.content,
        headers=OCTET | {"Content-Length": str(config.size)},
    )
    assert response.status_code == 201, response.text
    assert location(response).endswith(blob_path(NAME, config.digest))
    assert response.headers["Docker-Content-Digest"] == config.digest
    _assert_blob(registry, NAME, config)


def test_post_with_wrong_digest_is_400_and_nothing_lands(registry: RegistryClient) -> None:
    blob, other = random_blob(), random_blob()
    response = start_upload(registry, NAME, params={"digest": other.digest}, data=blob.content, headers=OCTET)
    assert_error(response, 400, "DIGEST_INVALID")
    assert registry.head(blob_path(NAME, other.digest)).status_code == 404
    assert registry.head(blob_path(NAME, blob.digest)).status_code == 404


def test_post_with_malformed_digest_is_400(registry: RegistryClient) -> None:
    response = start_upload(registry, NAME, params={"digest": "sha256:nope"}, data=b"x", headers=OCTET)
    assert_error(response, 400, "DIGEST_INVALID")


def test_post_yields_a_session_id(registry: RegistryClient) -> None:
    response = start_upload(registry, NAME)
    assert response.status_code == 202
    assert f"/v2/{NAME}/blobs/uploads/" in location(response)


@pytest.mark.parametrize("kind", ["config", "layer"])
def test_put_upload_of_a_blob_is_201(registry: RegistryClient, kind: str) -> None:
    blob = config_blob() if kind == "config" else layer_blob()
    response = push_blob(registry, NAME, blob)
    assert response.status_code == 201, response.text
    assert location(response).endswith(blob_path(NAME, blob.digest))
    assert response.headers["Docker-Content-Digest"] == blob.digest
    _assert_blob(registry, NAME, blob)


def test_put_with_wrong_digest_is_400_digest_invalid(registry: RegistryClient) -> None:
    blob = random_blob()
    session = location(start_upload(registry, NAME))
    wrong = random_blob().digest
    response = registry.put(session, params={"digest": wrong}, data=blob.content, headers=OCTET)
    assert_error(response, 400, "DIGEST_INVALID")
    assert registry.head(blob_path(NAME, blob.digest)).status_code == 404


def test_put_without_digest_is_rejected(registry: RegistryClient) -> None:
    session = location(start_upload(registry, NAME))
    assert_error(registry.put(session, data=b"abc", headers=OCTET), 400, "DIGEST_INVALID")


# --- Blob Upload Chunked --------------------------------------------------------------------


def test_out_of_order_chunk_is_416_and_session_stays_usable(registry: RegistryClient) -> None:
    blob = random_blob()
    (chunk1, range1), (chunk2, range2) = _chunks(blob)
    session = _new_session(registry)
    response = _patch(registry, session, chunk2, range2)
    assert response.status_code == 416, response.text
    assert response.headers.get("Range") in ("0-0", None) or response.headers["Range"].startswith("0-")
    # The upload continues from where it was.
    first = _patch(registry, session, chunk1, range1)
    assert first.status_code == 202, first.text
    second = _patch(registry, location(first), chunk2, range2)
    assert second.status_code == 202, second.text
    done = registry.put(location(second), params={"digest": blob.digest}, headers={"Content-Length": "0"})
    assert done.status_code == 201, done.text
    _assert_blob(registry, NAME, blob)


def test_patch_with_first_chunk_is_202_with_range(registry: RegistryClient) -> None:
    (chunk1, range1), _ = _chunks(random_blob())
    response = _patch(registry, _new_session(registry), chunk1, range1)
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == range1
    assert location(response)


def test_retry_previous_chunk_is_416(registry: RegistryClient) -> None:
    (chunk1, range1), _ = _chunks(random_blob())
    session = _new_session(registry)
    assert _patch(registry, session, chunk1, range1).status_code == 202
    response = _patch(registry, session, chunk1, range1)
    assert response.status_code == 416
    assert response.headers["Range"] == range1


def test_get_on_upload_session_is_204_with_range_and_location(registry: RegistryClient) -> None:
    (chunk1, range1), _ = _chunks(random_blob())
    session = _new_session(registry)
    assert _patch(registry, session, chunk1, range1).status_code == 202
    response = registry.get(session)
    assert response.status_code == 204
    assert location(response)
    assert response.headers["Range"] == range1


def test_patch_with_second_chunk_is_202(registry: RegistryClient) -> None:
    blob = random_blob()
    (chunk1, range1), (chunk2, range2) = _chunks(blob)
    session = _new_session(registry)
    first = _patch(registry, session, chunk1, range1)
    # Resume from the status the session reports, as a client picking up a stale upload does.
    status = registry.get(location(first))
    assert status.status_code == 204
    response = _patch(registry, location(status), chunk2, range2)
    assert response.status_code == 202, response.text
    assert location(response)
    assert response.headers["Range"] == f"0-{blob.size - 1}"


def test_put_with_digest_after_chunks_is_201(registry: RegistryClient) -> None:
    blob = random_blob()
    (chunk1, range1), (chunk2, range2) = _chunks(blob)
    first = _patch(registry, _new_session(registry), chunk1, range1)
    second = _patch(registry, location(first), chunk2, range2)
    response = registry.put(
        location(second), params={"digest": blob.digest}, headers=OCTET | {"Content-Length": "0"}
    )
    assert response.status_code == 201, response.text
    assert location(response).endswith(blob_path(NAME, blob.digest))
    _assert_blob(registry, NAME, blob)


def test_put_with_final_chunk_is_201(registry: RegistryClient) -> None:
    """The final chunk may travel in the closing PUT, with its Content-Range."""
    blob = random_blob()
    (chunk1, range1), (chunk2, range2) = _chunks(blob)
    first = _patch(registry, _new_session(registry), chunk1, range1)
    headers = OCTET | {"Content-Length": str(len(chunk2)), "Content-Range": range2}
    response = registry.put(location(first), params={"digest": blob.digest}, data=chunk2, headers=headers)
    assert response.status_code == 201, response.text
    _assert_blob(registry, NAME, blob)


def test_put_with_out_of_order_final_chunk_is_416_and_session_stays_usable(registry: RegistryClient) -> None:
    blob = random_blob()
    (chunk1, range1), (chunk2, range2) = _chunks(blob)
    session = location(_patch(registry, _new_session(registry), chunk1, range1))
    headers = OCTET | {"Content-Length": str(len(chunk2))}
    rewind = f"0-{len(chunk2) - 1}"  # consistent with the body, but not where the upload is
    wrong = registry.put(
        session, params={"digest": blob.digest}, data=chunk2, headers=headers | {"Content-Range": rewind}
    )
    assert wrong.status_code == 416, wrong.text
    assert wrong.headers["Range"] == range1
    assert registry.head(blob_path(NAME, blob.digest)).status_code == 404
    right = registry.put(
        session, params={"digest": blob.digest}, data=chunk2, headers=headers | {"Content-Range": range2}
    )
    assert right.status_code == 201, right.text
    _assert_blob(registry, NAME, blob)


@pytest.mark.parametrize("content_range", ["bytes=0-3", "0-", "a-b", "5-2", "0-99"])
def test_malformed_content_range_is_416(registry: RegistryClient, content_range: str) -> None:
    response = _patch(registry, _new_session(registry), b"abcd", content_range)
    assert response.status_code == 416


def test_delete_upload_session(registry: RegistryClient) -> None:
    (chunk1, range1), _ = _chunks(random_blob())
    session = _new_session(registry)
    assert _patch(registry, session, chunk1, range1).status_code == 202
    response = registry.delete(session)
    assert response.status_code == 204
    assert_error(registry.get(session), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(_patch(registry, session, chunk1, None), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(registry.delete(session), 404, "BLOB_UPLOAD_UNKNOWN")


def test_unknown_upload_session_is_404(registry: RegistryClient) -> None:
    _new_session(registry)
    url = f"/v2/{NAME}/blobs/uploads/{secrets.token_hex(16)}"
    assert_error(registry.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(registry.put(url, params={"digest": DUMMY_DIGEST}), 404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_session_is_bound_to_its_repository(registry: RegistryClient) -> None:
    session = _new_session(registry)
    other = session.replace(f"/v2/{NAME}/", "/v2/conformance/push-elsewhere/")
    _new_session(registry, "conformance/push-elsewhere")
    assert_error(registry.get(other), 404, "BLOB_UPLOAD_UNKNOWN")


# --- Cross-Repository Blob Mount -------------------------------------------------------------


def test_mount_without_from_of_unknown_blob_yields_session(registry: RegistryClient) -> None:
    response = start_upload(registry, "conformance/push-mount", params={"mount": DUMMY_DIGEST})
    assert response.status_code == 202
    assert location(response).startswith("/v2/conformance/push-mount/blobs/uploads/")


def test_mount_from_another_repository_is_201(
    registry: RegistryClient, ferry_server: FerryServer, admin_password: str
) -> None:
    blob = random_blob()
    assert push_blob(registry, NAME, blob).status_code == 201
    target = "conformance/push-mount"
    client = RegistryClient(ferry_server.url, "admin", admin_password)
    authorize(client, target, source=NAME)
    response = start_upload(client, target, params={"mount": blob.digest, "from": NAME})
    assert response.status_code == 201, response.text
    assert location(response) == blob_path(target, blob.digest)
    assert response.headers["Docker-Content-Digest"] == blob.digest
    _assert_blob(client, target, blob)


def test_mount_of_nonexistent_blob_falls_back_to_upload(
    registry: RegistryClient, ferry_server: FerryServer, admin_password: str
) -> None:
    target = "conformance/push-mount"
    push_blob(registry, NAME, random_blob())
    client = RegistryClient(ferry_server.url, "admin", admin_password)
    authorize(client, target, source=NAME)
    response = start_upload(client, target, params={"mount": random_blob().digest, "from": NAME})
    assert response.status_code == 202
    assert location(response).startswith(f"/v2/{target}/blobs/uploads/")
    # The fallback session is a real one.
    blob = random_blob()
    done = client.put(location(response), params={"digest": blob.digest}, data=blob.content, headers=OCTET)
    assert done.status_code == 201


def test_mount_from_nonexistent_repository_falls_back_to_upload(
    ferry_server: FerryServer, admin_password: str
) -> None:
    target, source = "conformance/push-mount", "conformance/push-no-such-repo"
    client = RegistryClient(ferry_server.url, "admin", admin_password)
    authorize(client, target, source=source)
    response = start_upload(client, target, params={"mount": DUMMY_DIGEST, "from": source})
    assert response.status_code == 202, response.text
    assert location(response).startswith(f"/v2/{target}/blobs/uploads/")


def test_mount_without_from_when_blob_is_readable_elsewhere_is_201(registry: RegistryClient) -> None:
    """Automatic content discovery: the caller can read the blob in another repository."""
    blob = random_blob()
    assert push_blob(registry, NAME, blob).status_code == 201
    target = "conformance/push-automount"
    response = start_upload(registry, target, params={"mount": blob.digest})
    assert response.status_code == 201, response.text
    assert location(response) == blob_path(target, blob.digest)
    _assert_blob(registry, target, blob)


def test_mount_never_exposes_a_blob_the_caller_cannot_read(
    registry: RegistryClient, ferry_server: FerryServer
) -> None:
    """A user with push rights in its own organization but none on `conformance` gets 202, never
    201, for a blob held there: with `from` naming it, and without `from`."""
    secret = random_blob()
    assert push_blob(registry, NAME, secret).status_code == 201
    target = f"{PUSHER_ORG}/intruder"
    client = RegistryClient(ferry_server.url, PUSHER, PUSHER_PASSWORD)
    authorize(client, target, source=NAME)
    with_from = start_upload(client, target, params={"mount": secret.digest, "from": NAME})
    assert with_from.status_code == 202, with_from.text
    without_from = start_upload(client, target, params={"mount": secret.digest})
    assert without_from.status_code == 202, without_from.text
    assert_error(client.get(blob_path(target, secret.digest)), 404, "BLOB_UNKNOWN")
    # It cannot read the source directly either.
    assert client.get(blob_path(NAME, secret.digest)).status_code == 403


# --- Manifest Upload ------------------------------------------------------------------------


def test_get_nonexistent_manifest_is_404(registry: RegistryClient) -> None:
    push_blob(registry, NAME, random_blob())
    assert registry.get(manifest_path(NAME, NONEXISTENT_MANIFEST)).status_code == 404


def test_put_accepts_a_manifest_upload_under_several_tags(registry: RegistryClient) -> None:
    image = make_image()
    push_blobs(registry, NAME, image.config, image.layer)
    for i in range(4):
        response = put_manifest(registry, NAME, f"test{i}", image.manifest)
        assert response.status_code == 201, response.text
        assert location(response).endswith(manifest_path(NAME, image.manifest.digest))
        assert response.headers["Docker-Content-Digest"] == image.manifest.digest
    for i in range(4):
        got = registry.get(manifest_path(NAME, f"test{i}"))
        assert got.status_code == 200
        assert got.content == image.manifest.content


def test_registry_accepts_a_manifest_with_no_layers(registry: RegistryClient) -> None:
    config = config_blob()
    push_blobs(registry, NAME, config)
    document = image_manifest(config, [])
    response = put_manifest(registry, NAME, "emptylayer", document)
    assert response.status_code == 201, response.text
    assert location(response).endswith(manifest_path(NAME, document.digest))


def test_get_manifest_by_digest_after_push_is_200(registry: RegistryClient) -> None:
    image = make_image()
    push_image(registry, NAME, image, "bydigest")
    response = registry.get(manifest_path(NAME, image.manifest.digest), headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200
    assert response.content == image.manifest.content


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
def test_manifest_put_get_head_delete_by_tag_and_digest(registry: RegistryClient, media_type: str) -> None:
    name = "conformance/push-kinds"
    image_type = DOCKER_MANIFEST if media_type in (DOCKER_MANIFEST, DOCKER_LIST) else OCI_MANIFEST
    images = [make_image(image_type), make_image(image_type)]
    for image in images:
        push_image(registry, name, image)
    if media_type in (OCI_INDEX, DOCKER_LIST):
        document = index_manifest([image.manifest for image in images], media_type=media_type)
    else:
        document = images[0].manifest
    tag = "kind-" + media_type.rsplit(".", 2)[-2].replace("+", "-")
    put = put_manifest(registry, name, tag, document)
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == document.digest
    for reference in (tag, document.digest):
        got = registry.get(manifest_path(name, reference), headers={"Accept": media_type})
        assert got.status_code == 200
        assert got.content == document.content
        assert got.headers["Content-Type"].split(";")[0] == media_type
        assert got.headers["Docker-Content-Digest"] == document.digest
        head = registry.head(manifest_path(name, reference), headers={"Accept": media_type})
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == document.size
        assert head.headers["Docker-Content-Digest"] == document.digest
    assert registry.delete(manifest_path(name, document.digest)).status_code == 202
    assert registry.get(manifest_path(name, document.digest)).status_code == 404
    assert registry.get(manifest_path(name, tag)).status_code == 404


def test_manifest_referencing_a_missing_blob_is_manifest_blob_unknown(registry: RegistryClient) -> None:
    config, layer, missing = config_blob(), layer_blob(), layer_blob()
    push_blobs(registry, NAME, config, layer)
    document = image_manifest(config, [layer, missing])
    response = put_manifest(registry, NAME, "missing-layer", document)
    error = assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert error["detail"]["digest"] == missing.digest
    assert registry.get(manifest_path(NAME, "missing-layer")).status_code == 404
    no_config = image_manifest(config_blob(), [layer])
    assert_error(put_manifest(registry, NAME, "missing-config", no_config), 400, "MANIFEST_BLOB_UNKNOWN")


def test_manifest_referencing_a_blob_of_another_repository_is_rejected(registry: RegistryClient) -> None:
    image = make_image()
    push_blobs(registry, "conformance/push-elsewhere", image.config, image.layer)
    push_blob(registry, NAME, random_blob())
    response = put_manifest(registry, NAME, "foreign-blobs", image.manifest)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")


def test_index_referencing_a_missing_child_is_manifest_blob_unknown(registry: RegistryClient) -> None:
    present, absent = make_image(), make_image()
    push_image(registry, NAME, present)
    document = index_manifest([present.manifest, absent.manifest])
    response = put_manifest(registry, NAME, "missing-child", document)
    error = assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert error["detail"]["digest"] == absent.manifest.digest


def test_manifest_put_by_mismatching_digest_is_400_digest_invalid(registry: RegistryClient) -> None:
    image = make_image()
    push_blobs(registry, NAME, image.config, image.layer)
    response = put_manifest(registry, NAME, DUMMY_DIGEST, image.manifest)
    assert_error(response, 400, "DIGEST_INVALID")
    assert registry.get(manifest_path(NAME, image.manifest.digest)).status_code == 404


@pytest.mark.parametrize(
    "payload",
    [b"blablabla", b"[]", json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).encode()],
)
def test_invalid_manifest_is_400_manifest_invalid(registry: RegistryClient, payload: bytes) -> None:
    push_blob(registry, NAME, random_blob())
    headers = {"Content-Type": OCI_MANIFEST}
    response = registry.put(manifest_path(NAME, "invalid"), data=payload, headers=headers)
    assert_error(response, 400, "MANIFEST_INVALID")


def test_push_into_nonexistent_organization_fails(registry: RegistryClient) -> None:
    name = "conformancenoorg/repo"
    response = start_upload(registry, name)
    assert response.status_code in (401, 403, 404), response.text
    assert_error(
        response,
        response.status_code,
        {401: "DENIED", 403: "DENIED", 404: "NAME_UNKNOWN"}[response.status_code],
    )
    image = make_image()
    response = put_manifest(registry, name, "latest", image.manifest)
    assert response.status_code in (401, 403, 404)
    assert registry.get(manifest_path(name, "latest")).status_code in (401, 403, 404)


def test_read_only_user_may_pull_but_not_push(registry: RegistryClient, ferry_server: FerryServer) -> None:
    image = make_image()
    push_image(registry, NAME, image, "readonly")
    reader = RegistryClient(ferry_server.url, READER, READER_PASSWORD)
    assert reader.get(manifest_path(NAME, "readonly")).content == image.manifest.content
    # Signed in, but the token cannot carry push: 403 with the challenge (RFC 6750 section 3.1).
    response = start_upload(reader, NAME)
    assert_error(response, 403, "DENIED")
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert_error(reader.delete(manifest_path(NAME, "readonly")), 403, "DENIED")
    assert_error(put_manifest(reader, NAME, "by-reader", image.manifest), 403, "DENIED")
    assert registry.get(manifest_path(NAME, "readonly")).status_code == 200


# --- Teardown -------------------------------------------------------------------------------


def test_teardown_deletes_manifest_and_blobs(registry: RegistryClient) -> None:
    image = make_image()
    push_image(registry, NAME, image, "teardown")
    assert registry.delete(manifest_path(NAME, image.manifest.digest)).status_code == 202
    for blob in (image.config, image.layer):
        assert registry.delete(blob_path(NAME, blob.digest)).status_code == 202
