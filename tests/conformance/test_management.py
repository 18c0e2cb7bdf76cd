"""Content management (conformance/04_management_test.go): deleting tags, manifests and blobs.

Ferry implements every delete, so where the Go suite accepts "disallowed" (400/405) or "already
gone" (404) these tests require the 202 and the 404 that follows.
"""

from __future__ import annotations

import pytest

from tests.conformance.helpers import (
    Image,
    assert_error,
    authorize,
    blob_path,
    make_image,
    manifest_path,
    push_blobs,
    push_image,
    put_manifest,
    random_blob,
    tags_of,
)
from tests.support.registry_client import RegistryClient

NAME = "conformance/management"
TAG = "tagtest0"


@pytest.fixture(scope="module")
def client(registry: RegistryClient) -> RegistryClient:
    authorize(registry, NAME)
    return registry


@pytest.fixture
def image(client: RegistryClient) -> Image:
    """Setup: a fresh config, layer and manifest (manifests[3]) tagged `tagtest0` and one more tag."""
    image = make_image()
    push_image(client, NAME, image, TAG)
    assert put_manifest(client, NAME, "keep", image.manifest).status_code == 201
    return image


# --- Manifest delete ------------------------------------------------------------------------


def test_delete_manifest_tag_is_202(client: RegistryClient, image: Image) -> None:
    before = tags_of(client, NAME)
    assert TAG in before
    response = client.delete(manifest_path(NAME, TAG))
    assert response.status_code == 202, response.text
    after = tags_of(client, NAME)
    assert TAG not in after
    assert len(after) < len(before)
    assert_error(client.get(manifest_path(NAME, TAG)), 404, "MANIFEST_UNKNOWN")
    # Only the tag went: the manifest and its other tag remain.
    assert client.get(manifest_path(NAME, image.manifest.digest)).content == image.manifest.content
    assert client.get(manifest_path(NAME, "keep")).status_code == 200


def test_delete_manifest_by_digest_is_202(client: RegistryClient, image: Image) -> None:
    response = client.delete(manifest_path(NAME, image.manifest.digest))
    assert response.status_code == 202, response.text


def test_get_deleted_manifest_is_404(client: RegistryClient, image: Image) -> None:
    assert client.delete(manifest_path(NAME, image.manifest.digest)).status_code == 202
    assert_error(client.get(manifest_path(NAME, image.manifest.digest)), 404, "MANIFEST_UNKNOWN")
    assert client.head(manifest_path(NAME, image.manifest.digest)).status_code == 404


def test_tags_list_reflects_manifest_deletion(client: RegistryClient, image: Image) -> None:
    """Deleting a manifest by digest removes every tag pointing at it."""
    other = make_image()
    push_image(client, NAME, other, "unrelated")
    before = tags_of(client, NAME)
    assert {TAG, "keep", "unrelated"} <= set(before)
    assert client.delete(manifest_path(NAME, image.manifest.digest)).status_code == 202
    after = tags_of(client, NAME)
    assert len(after) < len(before)
    assert TAG not in after and "keep" not in after
    assert "unrelated" in after
    for tag in (TAG, "keep"):
        assert_error(client.get(manifest_path(NAME, tag)), 404, "MANIFEST_UNKNOWN")
    assert client.get(manifest_path(NAME, "unrelated")).status_code == 200


def test_delete_unknown_manifest_or_tag_is_404(client: RegistryClient, image: Image) -> None:
    assert_error(client.delete(manifest_path(NAME, "no-such-tag")), 404, "MANIFEST_UNKNOWN")
    unknown = random_blob().digest
    assert_error(client.delete(manifest_path(NAME, unknown)), 404, "MANIFEST_UNKNOWN")
    assert client.delete(manifest_path(NAME, image.manifest.digest)).status_code == 202
    assert_error(client.delete(manifest_path(NAME, image.manifest.digest)), 404, "MANIFEST_UNKNOWN")


def test_delete_manifest_with_malformed_digest_is_400(client: RegistryClient, image: Image) -> None:
    assert_error(client.delete(manifest_path(NAME, "sha256:totallywrong")), 400, "DIGEST_INVALID")


def test_retagging_moves_the_tag(client: RegistryClient, image: Image) -> None:
    other = make_image()
    push_blobs(client, NAME, other.config, other.layer)
    assert put_manifest(client, NAME, TAG, other.manifest).status_code == 201
    response = client.get(manifest_path(NAME, TAG))
    assert response.headers["Docker-Content-Digest"] == other.manifest.digest
    assert client.get(manifest_path(NAME, "keep")).headers["Docker-Content-Digest"] == image.manifest.digest


# --- Blob delete ----------------------------------------------------------------------------


def test_delete_blob_is_202(client: RegistryClient, image: Image) -> None:
    for blob in (image.config, image.layer):
        response = client.delete(blob_path(NAME, blob.digest))
        assert response.status_code == 202, response.text


def test_get_deleted_blob_is_404(client: RegistryClient, image: Image) -> None:
    assert client.delete(blob_path(NAME, image.config.digest)).status_code == 202
    assert_error(client.get(blob_path(NAME, image.config.digest)), 404, "BLOB_UNKNOWN")
    assert client.head(blob_path(NAME, image.config.digest)).status_code == 404
    assert client.get(blob_path(NAME, image.layer.digest)).content == image.layer.content


def test_delete_unknown_blob_is_404(client: RegistryClient, image: Image) -> None:
    assert_error(client.delete(blob_path(NAME, random_blob().digest)), 404, "BLOB_UNKNOWN")
    assert client.delete(blob_path(NAME, image.layer.digest)).status_code == 202
    assert_error(client.delete(blob_path(NAME, image.layer.digest)), 404, "BLOB_UNKNOWN")


def test_delete_blob_with_malformed_digest_is_400(client: RegistryClient, image: Image) -> None:
    assert_error(client.delete(blob_path(NAME, "sha256:totallywrong")), 400, "DIGEST_INVALID")


def test_deleted_blob_can_be_pushed_again(client: RegistryClient, image: Image) -> None:
    assert client.delete(blob_path(NAME, image.layer.digest)).status_code == 202
    push_blobs(client, NAME, image.layer)
    assert client.get(blob_path(NAME, image.layer.digest)).content == image.layer.content


def test_delete_in_unknown_repository_is_404(client: RegistryClient, image: Image) -> None:
    name = "conformance/management-never"
    authorize(client, name)
    assert_error(client.delete(manifest_path(name, TAG)), 404, "NAME_UNKNOWN")
    assert_error(client.delete(blob_path(name, image.layer.digest)), 404, "NAME_UNKNOWN")
