"""SWR's v3 listings through the official SDK: `list_repo_details` and `list_repository_tag` page
by marker (each page's nextMarker starts the next; no row twice, none missed, also when rows are
added between pages), filter as SWR's, and give the manifest only when asked."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from huaweicloudsdkswr.v2 import (
    ListReferencesRequest,
    ListRepoAccessoriesRequest,
    ListRepoDetailsRequest,
    ListRepositoryTagRequest,
    UpdateRepoRequest,
    UpdateRepoRequestBody,
)

from tests.support.images import Image, make_image, push_image, put_manifest
from tests.support.layouts import OCI_MANIFEST
from tests.support.regions import Regions, make_regions
from tests.support.server import FerryServer
from tests.support.swr import assert_sdk_error
from tests.support.sync_helpers import create_org, push_signature, registry, sdk

REGION = "cn-north-4"
ORG, OTHER = "vthree", "vthreeother"


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FerryServer]:
    regions: Regions = make_regions(tmp_path_factory.mktemp("v3"), [REGION])
    try:
        server = regions[REGION]
        for org in (ORG, OTHER):
            create_org(server, org)
        for i in range(5):
            push_image(registry(server), f"{ORG}/r{i}", "v1", make_image(f"v3-r{i}"))
        push_image(registry(server), f"{OTHER}/x", "v1", make_image("v3-other"))
        for i in range(5):
            push_image(registry(server), f"{ORG}/tagged", f"t{i}", make_image(f"v3-tag-{i}"))
        yield server
    finally:
        regions.stop()


def test_repositories_page_by_marker(region: FerryServer) -> None:
    seen: list[str] = []
    marker = None
    for page_number in range(10):
        answer = sdk(region).list_repo_details(ListRepoDetailsRequest(namespace=ORG, limit=2, marker=marker))
        seen += [repo.name for repo in answer.repos]
        assert all(repo.namespace_name == ORG for repo in answer.repos)
        marker = answer.next_marker
        if page_number == 0:  # a repository made between pages is not missed
            push_image(registry(region), f"{ORG}/zlate", "v1", make_image("v3-late"))
        if not marker:
            break
    assert sorted(seen) == sorted([f"r{i}" for i in range(5)] + ["tagged", "zlate"])
    assert len(seen) == len(set(seen))

    everything = sdk(region).list_repo_details(ListRepoDetailsRequest(limit=1000))
    assert {repo.namespace_name for repo in everything.repos} == {ORG, OTHER}
    assert everything.next_marker is None

    body = UpdateRepoRequestBody(is_public=True)
    sdk(region).update_repo(UpdateRepoRequest(namespace=ORG, repository="r3", body=body))
    public = sdk(region).list_repo_details(ListRepoDetailsRequest(is_public=True))
    assert [repo.name for repo in public.repos] == ["r3"]
    named = sdk(region).list_repo_details(ListRepoDetailsRequest(name="tag"))
    assert [repo.name for repo in named.repos] == ["tagged"]
    assert named.repos[0].num_images == 5

    assert_sdk_error(
        lambda: sdk(region).list_repo_details(ListRepoDetailsRequest(limit=0)), 400, "SVCSTG.SWR.4000056"
    )


def test_tags_page_by_marker_and_give_the_manifest_when_asked(region: FerryServer) -> None:
    names: list[str] = []
    marker = None
    while True:
        request = ListRepositoryTagRequest(namespace=ORG, repository="tagged", limit=2, marker=marker)
        answer = sdk(region).list_repository_tag(request)
        names += [tag.tag for tag in answer.tags]
        assert all(tag.manifest == "" for tag in answer.tags)
        if not answer.has_more:
            assert answer.next_marker is None
            break
        marker = answer.next_marker
    assert names == [f"t{i}" for i in range(5)]

    newest_first = sdk(region).list_repository_tag(
        ListRepositoryTagRequest(
            namespace=ORG, repository="tagged", order_column="updated_at", order_type="desc", limit=3
        )
    )
    assert [t.tag for t in newest_first.tags] == ["t4", "t3", "t2"]
    rest = sdk(region).list_repository_tag(
        ListRepositoryTagRequest(
            namespace=ORG,
            repository="tagged",
            order_column="updated_at",
            order_type="desc",
            marker=newest_first.next_marker,
        )
    )
    assert [t.tag for t in rest.tags] == ["t1", "t0"] and rest.has_more is False

    with_manifest = sdk(region).list_repository_tag(
        ListRepositoryTagRequest(namespace=ORG, repository="tagged", tag="t2", with_manifest=True)
    )
    [tag] = with_manifest.tags
    assert json.loads(tag.manifest)["schemaVersion"] == 2 and tag.digest.startswith("sha256:")


def test_a_tags_accessories_and_references(region: FerryServer) -> None:
    image = make_image("v3-signed")
    name = f"{ORG}/signed"
    push_image(registry(region), name, "v1", image)
    first = push_signature(region, name, image.digest, image.media_type, len(image.manifest), "one")
    second = push_signature(region, name, image.digest, image.media_type, len(image.manifest), "two")
    # A cosign-scheme tag on the second signature, and another for the image's digest.
    sig_tag = image.digest.replace(":", "-") + ".sig"
    att_tag = image.digest.replace(":", "-") + ".att"
    for tag in (sig_tag, att_tag):
        assert (
            put_manifest(registry(region), name, tag, make_signature_image(region, name, second)).status_code
            == 201
        )

    answer = sdk(region).list_repo_accessories(
        ListRepoAccessoriesRequest(namespace=ORG, repository="signed", tag="v1", limit=10, offset=0)
    )
    assert answer.total == 2
    assert [a.sig_digest for a in answer.accessories] == [first, second]
    assert all(a.target_digest == image.digest for a in answer.accessories)
    assert {a.type for a in answer.accessories} == {"application/vnd.dev.cosign.artifact.sig.v1+json"}
    assert [a.sig_tag for a in answer.accessories] == ["", att_tag]  # the first tag by name

    page = sdk(region).list_references(
        ListReferencesRequest(namespace=ORG, repository="signed", tag="v1", limit=1)
    )
    assert page.tags == [att_tag] and page.has_more is True
    rest = sdk(region).list_references(
        ListReferencesRequest(namespace=ORG, repository="signed", tag="v1", limit=1, marker=page.next_marker)
    )
    assert rest.tags == [sig_tag] and rest.has_more is False
    assert_sdk_error(
        lambda: sdk(region).list_repo_accessories(
            ListRepoAccessoriesRequest(namespace=ORG, repository="signed", tag="nope")
        ),
        404,
        "SVCSTG.SWR.4040115",
    )


def make_signature_image(region: FerryServer, name: str, digest: str) -> Image:
    """The stored signature manifest `digest` again, to put under a tag."""
    response = registry(region).get(f"/v2/{name}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200, response.text
    return Image(response.content, {}, OCI_MANIFEST)
