"""Content discovery (conformance/03_discovery_test.go): tag listing with n/last, the referrers
API with artifactType filtering, plus the catalog with Link pagination."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import requests

from tests.conformance.helpers import (
    ANNOTATION_KEY,
    DUMMY_DIGEST,
    EMPTY_JSON,
    EMPTY_JSON_DIGEST,
    OCI_INDEX,
    PUSHER_ORG,
    READER,
    READER_PASSWORD,
    Blob,
    Document,
    assert_error,
    authorize,
    blob_path,
    config_blob,
    image_manifest,
    index_manifest,
    layer_blob,
    manifest_path,
    next_link,
    push_blob,
    push_blobs,
    put_manifest,
    random_blob,
    tags_of,
)
from tests.support.registry_client import RegistryClient

NAME = "conformance/discovery"
TAG = "tagtest0"
ARTIFACT_TYPE_A = "application/vnd.nhl.peanut.butter.bagel"
ARTIFACT_TYPE_B = "application/vnd.nba.strawberry.jam.croissant"
ARTIFACT_TYPE_INDEX = "application/vnd.food.stand"


@dataclass
class DiscoverySetup:
    tagged: Document  # manifests[2], pushed as test0..test3
    subject: Document  # manifests[4], pushed as tagtest0, the subject of the referrers
    missing_subject: Document  # manifests[3], never pushed here
    referrers: dict[str, Document]  # label -> artifact manifest/index with a subject
    annotations: dict[str, str]  # digest -> annotation value
    blob_responses: list[requests.Response] = field(default_factory=list)
    tag_responses: list[requests.Response] = field(default_factory=list)
    subject_responses: dict[str, requests.Response] = field(default_factory=dict)


def _artifacts(subject: Document, missing: Document, ref_a: Blob, ref_b: Blob) -> dict[str, Document]:
    """The artifacts of setup.go: config-typed, artifactType-typed, an index, and C (no subject)."""
    empty = EMPTY_JSON.descriptor()

    def config_typed(blob: Blob, artifact_type: str, note: str) -> Document:
        return image_manifest(
            blob.descriptor(artifact_type), [empty], subject=subject, annotations={ANNOTATION_KEY: note}
        )

    def layer_typed(blob: Blob, artifact_type: str, on: Document, note: str | None) -> Document:
        return image_manifest(
            empty,
            [blob.descriptor(artifact_type)],
            subject=on,
            artifact_type=artifact_type,
            annotations={ANNOTATION_KEY: note} if note else None,
        )

    a_config = config_typed(ref_a, ARTIFACT_TYPE_A, "test config a")
    a_layer = layer_typed(ref_a, ARTIFACT_TYPE_A, subject, "test layer a")
    return {
        "a_config": a_config,
        "a_layer": a_layer,
        "index": index_manifest(
            [a_config, a_layer],
            subject=subject,
            artifact_type=ARTIFACT_TYPE_INDEX,
            annotations={ANNOTATION_KEY: "test index"},
        ),
        "b_config": config_typed(ref_b, ARTIFACT_TYPE_B, "test config b"),
        "b_layer": layer_typed(ref_b, ARTIFACT_TYPE_B, subject, "test layer b"),
        "c_layer": layer_typed(ref_b, ARTIFACT_TYPE_B, missing, None),
    }


@pytest.fixture(scope="module")
def setup(registry: RegistryClient) -> DiscoverySetup:
    authorize(registry, NAME)
    layer = layer_blob()
    configs = {i: config_blob() for i in (2, 3, 4)}
    manifests = {i: image_manifest(configs[i], [layer]) for i in configs}
    ref_a = Blob(b"NHL Peanut Butter on my NHL bagel")
    ref_b = Blob(b"NBA Strawberry Jam on my NBA croissant")
    referrers = _artifacts(manifests[4], manifests[3], ref_a, ref_b)
    annotations = {}
    for doc in referrers.values():
        value = json.loads(doc.content).get("annotations", {}).get(ANNOTATION_KEY)
        if value:
            annotations[doc.digest] = value
    result = DiscoverySetup(manifests[2], manifests[4], manifests[3], referrers, annotations)
    # Populate registry with test blob, test layer and test tags.
    result.blob_responses += [push_blob(registry, NAME, configs[2]), push_blob(registry, NAME, layer)]
    result.tag_responses += [put_manifest(registry, NAME, f"test{i}", manifests[2]) for i in range(4)]
    # References setup: the empty JSON blob and ref blob A before the subject exists.
    result.blob_responses += [push_blob(registry, NAME, EMPTY_JSON), push_blob(registry, NAME, ref_a)]
    for label in ("a_config", "a_layer", "index"):
        doc = referrers[label]
        result.subject_responses[label] = put_manifest(registry, NAME, doc.digest, doc)
    result.blob_responses.append(push_blob(registry, NAME, configs[4]))
    result.tag_responses.append(put_manifest(registry, NAME, TAG, manifests[4]))
    # Ref blob B after the subject exists, then B's artifacts and C (subject never pushed).
    result.blob_responses.append(push_blob(registry, NAME, ref_b))
    for label in ("b_config", "b_layer", "c_layer"):
        doc = referrers[label]
        result.subject_responses[label] = put_manifest(registry, NAME, doc.digest, doc)
    return result


# --- Setup ----------------------------------------------------------------------------------


def test_setup_populates_blobs_and_tags(setup: DiscoverySetup) -> None:
    assert EMPTY_JSON.digest == EMPTY_JSON_DIGEST
    for response in setup.blob_responses + setup.tag_responses:
        assert response.status_code == 201, response.text


@pytest.mark.parametrize("label", ["a_config", "a_layer", "index", "b_config", "b_layer", "c_layer"])
def test_setup_manifest_with_subject_returns_oci_subject(setup: DiscoverySetup, label: str) -> None:
    response = setup.subject_responses[label]
    assert response.status_code == 201, response.text
    expected = setup.missing_subject if label == "c_layer" else setup.subject
    assert response.headers["OCI-Subject"] == expected.digest
    assert response.headers["Docker-Content-Digest"] == setup.referrers[label].digest


def test_manifest_without_subject_has_no_oci_subject(setup: DiscoverySetup) -> None:
    for response in setup.tag_responses:
        assert "OCI-Subject" not in response.headers


# --- Listing tags ---------------------------------------------------------------------------


def test_list_tags_is_200(registry: RegistryClient, setup: DiscoverySetup) -> None:
    response = registry.get(f"/v2/{NAME}/tags/list")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["name"] == NAME
    assert body["tags"] == ["tagtest0", "test0", "test1", "test2", "test3"]
    assert "Link" not in response.headers


def test_number_of_tags_is_limited_by_n(registry: RegistryClient, setup: DiscoverySetup) -> None:
    all_tags = tags_of(registry, NAME)
    num_results = len(all_tags) // 2
    assert tags_of(registry, NAME, n=num_results) == all_tags[:num_results]


def test_start_of_tags_is_set_by_last(registry: RegistryClient, setup: DiscoverySetup) -> None:
    all_tags = tags_of(registry, NAME)
    num_results = len(all_tags) // 2
    first = tags_of(registry, NAME, n=num_results)
    after = tags_of(registry, NAME, n=num_results, last=first[-1])
    assert len(after) <= num_results
    assert first[-1] not in after
    assert after == all_tags[num_results : 2 * num_results]
    assert tags_of(registry, NAME, last="test1") == ["test2", "test3"]


def test_tag_list_link_header_paginates(registry: RegistryClient, setup: DiscoverySetup) -> None:
    seen: list[str] = []
    url: str | None = f"/v2/{NAME}/tags/list?n=2"
    pages = 0
    while url is not None:
        response = registry.get(url)
        assert response.status_code == 200
        page = response.json()["tags"]
        assert 0 < len(page) <= 2
        seen += page
        url = next_link(response)
        pages += 1
        assert pages <= 5
    assert seen == tags_of(registry, NAME)
    assert pages == 3


def test_n_zero_returns_empty_list_without_link(registry: RegistryClient, setup: DiscoverySetup) -> None:
    response = registry.get(f"/v2/{NAME}/tags/list", params={"n": 0})
    assert response.status_code == 200
    assert response.json()["tags"] == []
    assert "Link" not in response.headers


# --- Listing referrers ----------------------------------------------------------------------


def _referrers(registry: RegistryClient, digest: str, **params: str) -> tuple[requests.Response, list]:
    response = registry.get(f"/v2/{NAME}/referrers/{digest}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].split(";")[0] == OCI_INDEX
    body = response.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    return response, body["manifests"]


def test_referrers_of_nonexistent_digest_is_empty_200(
    registry: RegistryClient, setup: DiscoverySetup
) -> None:
    _, manifests = _referrers(registry, DUMMY_DIGEST)
    assert manifests == []


def test_referrers_of_existing_manifest(registry: RegistryClient, setup: DiscoverySetup) -> None:
    _, manifests = _referrers(registry, setup.subject.digest)
    assert len(manifests) == 5
    by_digest = {m["digest"]: m for m in manifests}
    assert len(by_digest) == 5
    expected = {
        label: setup.referrers[label] for label in ("a_config", "a_layer", "index", "b_config", "b_layer")
    }
    assert set(by_digest) == {doc.digest for doc in expected.values()}
    types = {
        "a_config": ARTIFACT_TYPE_A,
        "a_layer": ARTIFACT_TYPE_A,
        "index": ARTIFACT_TYPE_INDEX,
        "b_config": ARTIFACT_TYPE_B,
        "b_layer": ARTIFACT_TYPE_B,
    }
    for label, doc in expected.items():
        descriptor = by_digest[doc.digest]
        assert descriptor["mediaType"] == doc.media_type
        assert descriptor["size"] == doc.size
        assert descriptor["artifactType"] == types[label]
        assert descriptor["annotations"] == {ANNOTATION_KEY: setup.annotations[doc.digest]}


def test_referrers_filtered_by_artifact_type(registry: RegistryClient, setup: DiscoverySetup) -> None:
    response, manifests = _referrers(registry, setup.subject.digest, artifactType=ARTIFACT_TYPE_A)
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert len(manifests) == 2
    assert {m["digest"] for m in manifests} == {
        setup.referrers["a_config"].digest,
        setup.referrers["a_layer"].digest,
    }
    for descriptor in manifests:
        assert descriptor["artifactType"] == ARTIFACT_TYPE_A
        assert descriptor["annotations"] == {ANNOTATION_KEY: setup.annotations[descriptor["digest"]]}


def test_referrers_unfiltered_has_no_filters_applied_header(
    registry: RegistryClient, setup: DiscoverySetup
) -> None:
    response, _ = _referrers(registry, setup.subject.digest)
    assert "OCI-Filters-Applied" not in response.headers


def test_referrers_of_missing_manifest(registry: RegistryClient, setup: DiscoverySetup) -> None:
    """A referrer pushed before (here: without) its subject is listed all the same."""
    _, manifests = _referrers(registry, setup.missing_subject.digest)
    assert [m["digest"] for m in manifests] == [setup.referrers["c_layer"].digest]
    assert manifests[0]["artifactType"] == ARTIFACT_TYPE_B


def test_referrers_with_malformed_digest_is_400(registry: RegistryClient, setup: DiscoverySetup) -> None:
    assert_error(registry.get(f"/v2/{NAME}/referrers/sha256:nope"), 400, "DIGEST_INVALID")


def test_deleted_referrer_disappears_from_the_list(registry: RegistryClient, setup: DiscoverySetup) -> None:
    subject_config, ref = config_blob(), random_blob()
    push_blobs(registry, NAME, subject_config, ref)
    subject = image_manifest(subject_config, [])
    assert put_manifest(registry, NAME, subject.digest, subject).status_code == 201
    artifact = image_manifest(
        EMPTY_JSON.descriptor(),
        [ref.descriptor(ARTIFACT_TYPE_A)],
        subject=subject,
        artifact_type=ARTIFACT_TYPE_A,
    )
    assert put_manifest(registry, NAME, artifact.digest, artifact).status_code == 201
    assert [m["digest"] for m in _referrers(registry, subject.digest)[1]] == [artifact.digest]
    assert registry.delete(manifest_path(NAME, artifact.digest)).status_code == 202
    assert _referrers(registry, subject.digest)[1] == []


# --- Catalog --------------------------------------------------------------------------------


def test_catalog_paginates_with_n_and_link(registry: RegistryClient, setup: DiscoverySetup) -> None:
    names = [f"conformance/catalog-{i}" for i in range(3)]
    authorize(registry, *names)
    for name in names:
        assert push_blob(registry, name, random_blob()).status_code == 201
    everything = registry.get("/v2/_catalog")
    assert everything.status_code == 200
    full = everything.json()["repositories"]
    assert full == sorted(full)
    assert set(names) | {NAME} <= set(full)
    seen: list[str] = []
    url: str | None = "/v2/_catalog?n=2"
    while url is not None:
        response = registry.get(url)
        assert response.status_code == 200
        page = response.json()["repositories"]
        assert len(page) <= 2
        seen += page
        url = next_link(response)
        assert len(seen) <= len(full)
    assert seen == full
    after = registry.get("/v2/_catalog", params={"last": names[0], "n": 1}).json()["repositories"]
    assert after == [names[1]]


def test_catalog_lists_only_readable_repositories(registry: RegistryClient, setup: DiscoverySetup) -> None:
    hidden = f"{PUSHER_ORG}/catalog-hidden"
    authorize(registry, hidden)
    assert push_blob(registry, hidden, random_blob()).status_code == 201
    assert hidden in registry.get("/v2/_catalog").json()["repositories"]
    reader = RegistryClient(registry.base_url, READER, READER_PASSWORD)
    response = reader.get("/v2/_catalog")
    assert response.status_code == 200
    repositories = response.json()["repositories"]
    assert NAME in repositories
    assert hidden not in repositories


# --- Teardown -------------------------------------------------------------------------------


def test_teardown_deletes_manifests_and_blobs(registry: RegistryClient) -> None:
    """Deleting the references, the subject and the tags: each delete is 202 (or 404 if gone)."""
    name = "conformance/discovery-teardown"
    authorize(registry, name)
    config, layer = config_blob(), layer_blob()
    push_blobs(registry, name, config, layer, EMPTY_JSON)
    subject = image_manifest(config, [layer])
    assert put_manifest(registry, name, TAG, subject).status_code == 201
    artifact = image_manifest(
        EMPTY_JSON.descriptor(), [EMPTY_JSON], subject=subject, artifact_type=ARTIFACT_TYPE_A
    )
    assert put_manifest(registry, name, artifact.digest, artifact).status_code == 201
    for reference in (artifact.digest, subject.digest, TAG):
        assert registry.delete(manifest_path(name, reference)).status_code in (202, 404)
    for blob in (config, layer, EMPTY_JSON):
        assert registry.delete(blob_path(name, blob.digest)).status_code == 202
    assert tags_of(registry, name) == []
