"""Huawei Cloud's official SWR SDK (huaweicloudsdkswr), unchanged, against a real Ferry process.

Every management operation is driven through the SDK's own client and models, signed with an
AK/SK made by `ferry key create`; figures are compared with what was really pushed through the
registry API; IAM tokens, permissions and SWR's long-term docker login are checked end to end.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pytest
import requests
from huaweicloudsdkswr.v2 import (
    CreateNamespaceAuthRequest,
    CreateNamespaceRequest,
    CreateNamespaceRequestBody,
    CreateRepoRequest,
    CreateRepoRequestBody,
    CreateRepoTagRequest,
    CreateRepoTagRequestBody,
    DeleteNamespaceAuthRequest,
    DeleteNamespacesRequest,
    DeleteRepoRequest,
    DeleteRepoTagRequest,
    ListApiVersionsRequest,
    ListGlobalFeatureGatesRequest,
    ListNamespacesRequest,
    ListQuotasRequest,
    ListReposDetailsRequest,
    ListRepositoryTagsRequest,
    ShowApiVersionRequest,
    ShowDomainOverviewRequest,
    ShowNamespaceAuthRequest,
    ShowNamespaceRequest,
    ShowRepositoryRequest,
    ShowRepoTagRequest,
    ShowRepoTagResponse,
    ShowShareFeatureGatesRequest,
    ShowShareFeatureGatesResponse,
    SwrClient,
    UpdateNamespaceAuthRequest,
    UpdateRepoRequest,
    UpdateRepoRequestBody,
    UserAuth,
)

from tests.support.images import OCI_INDEX, OCI_MANIFEST, Image, make_image, make_index, push_image
from tests.support.names import unique
from tests.support.registry_client import RegistryClient
from tests.support.server import ADMIN_PASSWORD, FerryServer
from tests.support.swr import (
    REGION,
    AccessKey,
    TokenSession,
    assert_sdk_error,
    create_key,
    iam_token,
    sdk_client,
    sdk_client_by_region,
    token_request,
)

FORBIDDEN = (403, "SVCSTG.SWR.4030170")
ORG_NOT_FOUND = (404, "SVCSTG.SWR.4040058")
REPO_NOT_FOUND = (404, "SVCSTG.SWR.4040113")
TAG_NOT_FOUND = (404, "SVCSTG.SWR.4040115")


@dataclass
class World:
    server: FerryServer
    key: AccessKey  # the admin's
    client: SwrClient  # the admin's, with a project id and a bare endpoint

    def registry(self) -> RegistryClient:
        return RegistryClient(self.server.url, "admin", ADMIN_PASSWORD)

    def new_org(self, prefix: str = "sdk") -> str:
        org = unique(prefix)
        response = self.client.create_namespace(
            CreateNamespaceRequest(body=CreateNamespaceRequestBody(namespace=org))
        )
        assert response.status_code == 201
        return org

    def new_repo(self, org: str, repository: str, is_public: bool = False) -> None:
        body = CreateRepoRequestBody(repository=repository, is_public=is_public, category="linux")
        response = self.client.create_repo(CreateRepoRequest(namespace=org, body=body))
        assert response.status_code == 200


@pytest.fixture(scope="module")
def world(ferry_server: FerryServer) -> World:
    key = create_key(ferry_server, "admin")
    assert key.region == REGION
    return World(ferry_server, key, sdk_client(ferry_server, key))


def namespace_names(client: SwrClient, **query: str) -> list[str]:
    response = client.list_namespaces(ListNamespacesRequest(**query))
    return [ns.name for ns in response.namespaces or []]


def tag_names(client: SwrClient, org: str, repo: str, filter: str) -> tuple[list[str], str]:
    response = client.list_repository_tags(
        ListRepositoryTagsRequest(namespace=org, repository=repo, filter=filter)
    )
    return [t.tag for t in response.body or []], response.content_range


def user_with_key(server: FerryServer, prefix: str) -> tuple[str, str, AccessKey]:
    name, password = unique(prefix), unique("pw-")
    server.user(name, password)
    return name, password, create_key(server, name)


# --- versions, account, feature gates ---------------------------------------------------------


def test_api_versions(world: World) -> None:
    versions = world.client.list_api_versions(ListApiVersionsRequest())
    assert [v.id for v in versions.versions] == ["v2"]
    v2 = world.client.show_api_version(ShowApiVersionRequest(api_version="v2")).version
    assert (v2.id, v2.status, v2.min_version) == ("v2", "CURRENT", "2.0")
    assert v2.links.href.startswith(world.server.url)
    # Versions need no credentials at all.
    assert requests.get(f"{world.server.url}/v2", timeout=30).json()["version"]["id"] == "v2"


def test_quotas_overview_and_feature_gates_describe_the_account(world: World) -> None:
    org = world.new_org()
    world.new_repo(org, "app")
    image = make_image(org)
    push_image(world.registry(), f"{org}/app", "v1", image)

    names = namespace_names(world.client)
    quotas = world.client.list_quotas(ListQuotasRequest()).quotas
    namespace_quota = next(q for q in quotas if q.quota_key == "namespace")
    assert namespace_quota.used == len(names)
    assert namespace_quota.quota_limit >= namespace_quota.used

    overview = world.client.show_domain_overview(ShowDomainOverviewRequest())
    assert overview.domain_id == world.key.domain_id
    assert overview.namspace_num == len(names)
    assert overview.repo_num >= 1 and overview.image_num >= 1
    assert overview.store_space >= image.content_size

    gates = world.client.show_share_feature_gates(ShowShareFeatureGatesRequest())
    assert gates.enable_image_sync is True and gates.enable_authorization_token is True
    assert gates.enable_list_v3 is True and gates.enable_image_scan is False
    # Every field of SWR's answer is said, none left for the SDK to guess.
    assert all(getattr(gates, field) is not None for field in ShowShareFeatureGatesResponse.openapi_types)
    global_gates = world.client.list_global_feature_gates(ListGlobalFeatureGatesRequest())
    assert global_gates.enable_enterprise is False


# --- organizations ----------------------------------------------------------------------------


def test_organization_lifecycle(world: World) -> None:
    org = world.new_org()
    assert_sdk_error(
        lambda: world.client.create_namespace(
            CreateNamespaceRequest(body=CreateNamespaceRequestBody(namespace=org))
        ),
        409,
        "SVCSTG.SWR.4090060",
    )
    assert_sdk_error(
        lambda: world.client.create_namespace(
            CreateNamespaceRequest(body=CreateNamespaceRequestBody(namespace="Bad_Name"))
        ),
        400,
        "SVCSTG.SWR.4001028",
    )
    assert_sdk_error(
        lambda: world.client.create_namespace(
            CreateNamespaceRequest(body=CreateNamespaceRequestBody(namespace="manage"))
        ),
        400,
        "SVCSTG.SWR.4001028",
    )
    assert org in namespace_names(world.client)
    assert namespace_names(world.client, namespace=org) == [org]
    assert namespace_names(world.client, filter=f"namespace::{org}") == [org]
    assert namespace_names(world.client, filter=f"namespace::{org}x") == []

    shown = world.client.show_namespace(ShowNamespaceRequest(namespace=org))
    assert (shown.name, shown.creator_name, shown.auth) == (org, "admin", 7)
    assert isinstance(shown.id, int)

    world.new_repo(org, "app")
    assert_sdk_error(
        lambda: world.client.delete_namespaces(DeleteNamespacesRequest(namespace=org)),
        406,
        "SVCSTG.SWR.4060074",
    )
    assert world.client.delete_repo(DeleteRepoRequest(namespace=org, repository="app")).status_code == 204
    assert world.client.delete_namespaces(DeleteNamespacesRequest(namespace=org)).status_code == 204
    assert_sdk_error(lambda: world.client.show_namespace(ShowNamespaceRequest(namespace=org)), *ORG_NOT_FOUND)
    assert org not in namespace_names(world.client)


# --- repositories -----------------------------------------------------------------------------


def test_repository_lifecycle_with_a_slash_in_the_name(world: World) -> None:
    org = world.new_org()
    body = CreateRepoRequestBody(repository="grp$app", is_public=False, category="linux", description="d1")
    assert world.client.create_repo(CreateRepoRequest(namespace=org, body=body)).status_code == 200
    assert_sdk_error(
        lambda: world.client.create_repo(CreateRepoRequest(namespace=org, body=body)),
        409,
        "SVCSTG.SWR.4090006",
    )

    repo = world.client.show_repository(ShowRepositoryRequest(namespace=org, repository="grp$app"))
    assert (repo.name, repo.category, repo.description, repo.is_public) == ("grp/app", "linux", "d1", False)
    assert (repo.size, repo.num_images, repo.creator_name) == (0, 0, "admin")
    assert repo.path.endswith(f"/{org}/grp/app")
    assert repo.domain_id == world.key.domain_id

    update = UpdateRepoRequestBody(is_public=True, category="database", description="d2")
    response = world.client.update_repo(UpdateRepoRequest(namespace=org, repository="grp$app", body=update))
    assert response.status_code == 201
    repo = world.client.show_repository(ShowRepositoryRequest(namespace=org, repository="grp$app"))
    assert (repo.is_public, repo.category, repo.description) == (True, "database", "d2")

    listed = world.client.list_repos_details(ListReposDetailsRequest(filter=f"namespace::{org}|name::grp"))
    assert [(r.namespace, r.name, r.is_public, r.category) for r in listed.body] == [
        (org, "grp/app", True, "database")
    ]
    assert listed.content_range == "0-1/1"

    response = world.client.delete_repo(DeleteRepoRequest(namespace=org, repository="grp$app"))
    assert response.status_code == 204
    assert_sdk_error(
        lambda: world.client.show_repository(ShowRepositoryRequest(namespace=org, repository="grp$app")),
        *REPO_NOT_FOUND,
    )
    assert_sdk_error(
        lambda: world.client.delete_repo(DeleteRepoRequest(namespace=org, repository="grp$app")),
        *REPO_NOT_FOUND,
    )


def test_repository_list_filters_and_pages(world: World) -> None:
    org = world.new_org()
    for name in ("alpha", "beta", "gamma"):
        world.new_repo(org, name)

    def page(filter: str) -> tuple[list[str], str]:
        response = world.client.list_repos_details(ListReposDetailsRequest(filter=filter))
        return [r.name for r in response.body or []], response.content_range

    by_name = f"namespace::{org}|order_column::name"
    assert page(by_name + "|order_type::asc|offset::0|limit::2") == (["alpha", "beta"], "0-2/3")
    assert page(by_name + "|order_type::asc|offset::2|limit::2") == (["gamma"], "2-1/3")
    assert page(by_name + "|order_type::desc|offset::0|limit::10") == (["gamma", "beta", "alpha"], "0-3/3")
    assert page(f"namespace::{org}|name::amm") == (["gamma"], "0-1/1")
    # Separate query parameters work as well when there is no filter.
    response = world.client.list_repos_details(
        ListReposDetailsRequest(namespace=org, order_column="name", order_type="asc", limit="1", offset="1")
    )
    assert [r.name for r in response.body] == ["beta"]
    assert response.content_range == "1-1/3"
    assert page(f"namespace::{org}|category::database") == ([], "0-0/0")
    assert page(f"namespace::{org}|category::linux|order_column::name|order_type::asc")[0] == [
        "alpha",
        "beta",
        "gamma",
    ]
    # tag_count orders by the number of tags (ties by name, so the order is stable).
    registry, image = world.registry(), make_image(org)
    for tag in ("t1", "t2"):
        push_image(registry, f"{org}/beta", tag, image)
    push_image(registry, f"{org}/gamma", "t1", image)
    assert page(f"namespace::{org}|order_column::tag_count|order_type::desc")[0] == ["beta", "gamma", "alpha"]
    assert page(f"namespace::{org}|order_column::tag_count|order_type::asc")[0] == ["alpha", "gamma", "beta"]
    for bad in ("limit::5", f"namespace::{org}|order_column::size", f"namespace::{org}|order_type::up"):
        code = "SVCSTG.SWR.4001035" if bad == "limit::5" else "SVCSTG.SWR.4000014"
        assert_sdk_error(
            lambda f=bad: world.client.list_repos_details(ListReposDetailsRequest(filter=f)), 400, code
        )


# --- figures from real pushes -----------------------------------------------------------------


def test_sizes_digests_and_types_match_what_was_pushed(world: World) -> None:
    org = world.new_org()
    name, repository = f"{org}/team/multi", "team$multi"  # '/' travels as '$'
    image, index = make_image(f"{org}-single"), make_index(f"{org}-multi")
    registry = world.registry()
    push_image(registry, name, "single", image)
    push_image(registry, name, "Multi.V1_rc-1", index)

    def show(tag: str) -> ShowRepoTagResponse:
        return world.client.show_repo_tag(ShowRepoTagRequest(namespace=org, repository=repository, tag=tag))

    repo = world.client.show_repository(ShowRepositoryRequest(namespace=org, repository=repository))
    assert repo.name == "team/multi"
    # A repository's size: every distinct blob once, plus every manifest's own bytes.
    blobs = image.all_blobs() | index.all_blobs()
    manifests = image.all_manifests() | index.all_manifests()
    assert len(blobs) == 6 and len(manifests) == 4  # a config and a layer per image; 3 images, 1 index
    expected_size = sum(len(b) for b in blobs.values()) + sum(len(m) for m in manifests.values())
    assert repo.size == expected_size
    assert repo.num_images == 2  # tags

    for tag, pushed, tag_type in (("single", image, 0), ("Multi.V1_rc-1", index, 1)):
        shown = show(tag)
        assert (shown.tag, shown.digest, shown.tag_type, shown.schema) == (tag, pushed.digest, tag_type, 2)
        # A tag's size: its manifest, its blobs and (for an index) its children's sizes.
        assert shown.size == pushed.content_size
        assert json.loads(shown.manifest) == json.loads(pushed.manifest)
        assert shown.path.endswith(f"/{name}:{tag}")
        assert shown.domain_id == world.key.domain_id
    assert show("single").image_id == json.loads(image.manifest)["config"]["digest"]
    assert index.content_size == len(index.manifest) + sum(c.content_size for c in index.children)

    listed = world.client.list_repository_tags(
        ListRepositoryTagsRequest(namespace=org, repository=repository)
    )
    by_tag = {t.tag: t for t in listed.body}
    assert set(by_tag) == {"single", "Multi.V1_rc-1"}
    assert by_tag["Multi.V1_rc-1"].digest == index.digest and by_tag["Multi.V1_rc-1"].tag_type == 1
    assert by_tag["Multi.V1_rc-1"].size == index.content_size
    assert by_tag["single"].size == image.content_size and by_tag["single"].tag_type == 0
    assert by_tag["single"].digest == image.digest
    assert listed.content_range == "0-2/2"

    repos = world.client.list_repos_details(ListReposDetailsRequest(filter=f"namespace::{org}"))
    [item] = repos.body
    assert (item.name, item.size, item.num_images) == ("team/multi", expected_size, 2)
    assert sorted(item.tags) == ["Multi.V1_rc-1", "single"]

    # The registry agrees with what the SDK reports.
    accept = {"Accept": f"{OCI_INDEX},{OCI_MANIFEST}"}
    manifest = registry.get(f"/v2/{name}/manifests/Multi.V1_rc-1", headers=accept)
    assert manifest.headers["Docker-Content-Digest"] == index.digest

    # Deleting a tag through the SDK removes it from the registry too, and from the counts.
    response = world.client.delete_repo_tag(
        DeleteRepoTagRequest(namespace=org, repository=repository, tag="Multi.V1_rc-1")
    )
    assert response.status_code == 204
    assert registry.get(f"/v2/{name}/manifests/Multi.V1_rc-1", headers=accept).status_code == 404
    repo = world.client.show_repository(ShowRepositoryRequest(namespace=org, repository=repository))
    assert repo.num_images == 1
    # Deleting the repository deletes its images.
    response = world.client.delete_repo(DeleteRepoRequest(namespace=org, repository=repository))
    assert response.status_code == 204
    assert registry.get(f"/v2/{name}/manifests/single", headers=accept).status_code == 404
    assert world.client.delete_namespaces(DeleteNamespacesRequest(namespace=org)).status_code == 204


def test_tag_list_filters_pages_and_orders(world: World) -> None:
    org = world.new_org()
    registry = world.registry()
    image = make_image(org)
    for tag in ("v1", "v2", "v3", "latest"):
        push_image(registry, f"{org}/app", tag, image)

    by_tag = "order_column::tag|order_type::asc"
    assert tag_names(world.client, org, "app", f"offset::0|limit::2|{by_tag}") == (["latest", "v1"], "0-2/4")
    assert tag_names(world.client, org, "app", f"offset::2|limit::2|{by_tag}") == (["v2", "v3"], "2-2/4")
    assert tag_names(world.client, org, "app", "offset::0|limit::10|order_column::tag|order_type::desc") == (
        ["v3", "v2", "v1", "latest"],
        "0-4/4",
    )
    assert tag_names(world.client, org, "app", f"offset::0|limit::10|tag::v|{by_tag}") == (
        ["v1", "v2", "v3"],
        "0-3/3",
    )
    # Newest update first by default.
    push_image(registry, f"{org}/app", "v1", make_image(org + "-new"))
    assert tag_names(world.client, org, "app", "offset::0|limit::1")[0] == ["v1"]
    assert_sdk_error(
        lambda: tag_names(world.client, org, "app", "offset::0|limit::0"), 400, "SVCSTG.SWR.4000056"
    )
    assert_sdk_error(lambda: tag_names(world.client, org, "nope", "offset::0|limit::1"), *REPO_NOT_FOUND)


def test_retag_and_delete_tag(world: World) -> None:
    org = world.new_org()
    registry = world.registry()
    one, two = make_image(org + "-1"), make_image(org + "-2")
    push_image(registry, f"{org}/app", "one", one)
    push_image(registry, f"{org}/app", "two", two)

    def retag(source: str, destination: str, override: bool | None = None) -> int:
        body = CreateRepoTagRequestBody(source_tag=source, destination_tag=destination, override=override)
        response = world.client.create_repo_tag(
            CreateRepoTagRequest(namespace=org, repository="app", body=body)
        )
        return int(response.status_code)

    def digest(tag: str) -> str:
        return str(
            world.client.show_repo_tag(ShowRepoTagRequest(namespace=org, repository="app", tag=tag)).digest
        )

    assert retag("one", "copy") == 201
    assert digest("copy") == one.digest
    assert_sdk_error(lambda: retag("two", "copy"), 409, "SVCSTG.SWR.4090006")
    assert_sdk_error(lambda: retag("two", "copy", override=False), 409, "SVCSTG.SWR.4090006")
    assert digest("copy") == one.digest
    assert retag("two", "copy", override=True) == 201
    assert digest("copy") == two.digest
    assert_sdk_error(lambda: retag("missing", "other"), *TAG_NOT_FOUND)
    pulled = registry.get(f"/v2/{org}/app/manifests/copy", headers={"Accept": OCI_MANIFEST})
    assert pulled.headers["Docker-Content-Digest"] == two.digest

    response = world.client.delete_repo_tag(DeleteRepoTagRequest(namespace=org, repository="app", tag="copy"))
    assert response.status_code == 204
    assert_sdk_error(lambda: digest("copy"), *TAG_NOT_FOUND)
    assert_sdk_error(
        lambda: world.client.delete_repo_tag(
            DeleteRepoTagRequest(namespace=org, repository="app", tag="copy")
        ),
        *TAG_NOT_FOUND,
    )
    assert registry.get(f"/v2/{org}/app/manifests/copy", headers={"Accept": OCI_MANIFEST}).status_code == 404
    assert digest("two") == two.digest  # the manifest itself is still tagged elsewhere


# --- organization permissions -----------------------------------------------------------------


def test_grant_change_and_revoke_permissions(world: World) -> None:
    org = world.new_org()
    other, _password, other_key = user_with_key(world.server, "perm")
    other_client = sdk_client(world.server, other_key)
    assert org not in namespace_names(other_client)

    # The SDK's user_id is Ferry's user id as a string: learn it from a grant made with the CLI.
    world.server.grant(other, org, 1)
    shown = world.client.show_namespace_auth(ShowNamespaceAuthRequest(namespace=org))
    assert (shown.name, shown.self_auth.user_name, shown.self_auth.auth) == (org, "admin", 7)
    [granted] = [a for a in shown.others_auths if a.user_name == other]
    assert granted.auth == 1 and granted.user_id.isdigit()
    user_id = granted.user_id
    assert other_client.show_namespace(ShowNamespaceRequest(namespace=org)).auth == 1

    def auth_of_other() -> int | None:
        auths = world.client.show_namespace_auth(ShowNamespaceAuthRequest(namespace=org)).others_auths or []
        return next((a.auth for a in auths if a.user_id == user_id), None)

    response = world.client.update_namespace_auth(
        UpdateNamespaceAuthRequest(namespace=org, body=[UserAuth(user_id=user_id, user_name=other, auth=3)])
    )
    assert response.status_code == 201
    assert auth_of_other() == 3
    assert other_client.show_namespace(ShowNamespaceRequest(namespace=org)).auth == 3

    response = world.client.delete_namespace_auth(DeleteNamespaceAuthRequest(namespace=org, body=[user_id]))
    assert response.status_code == 204
    assert auth_of_other() is None
    assert org not in namespace_names(other_client)
    assert_sdk_error(lambda: other_client.show_namespace(ShowNamespaceRequest(namespace=org)), *ORG_NOT_FOUND)

    response = world.client.create_namespace_auth(
        CreateNamespaceAuthRequest(namespace=org, body=[UserAuth(user_id=user_id, user_name=other, auth=7)])
    )
    assert response.status_code == 201
    assert auth_of_other() == 7
    mine = other_client.show_namespace_auth(ShowNamespaceAuthRequest(namespace=org))
    assert (mine.self_auth.user_id, mine.self_auth.user_name, mine.self_auth.auth) == (user_id, other, 7)
    assert namespace_names(other_client, filter=f"namespace::{org}") == [org]

    assert_sdk_error(
        lambda: world.client.create_namespace_auth(
            CreateNamespaceAuthRequest(namespace=org, body=[UserAuth(user_id="999999999", auth=1)])
        ),
        404,
        "SVCSTG.SWR.4040006",
    )


def test_reader_may_read_but_change_nothing(world: World) -> None:
    org = world.new_org()
    push_image(world.registry(), f"{org}/app", "v1", make_image(org))
    reader, _password, reader_key = user_with_key(world.server, "reader")
    world.server.grant(reader, org, 1)
    client = sdk_client(world.server, reader_key)

    # Reading works.
    assert namespace_names(client) == [org]
    assert client.show_namespace(ShowNamespaceRequest(namespace=org)).auth == 1
    assert client.show_repository(ShowRepositoryRequest(namespace=org, repository="app")).num_images == 1
    assert [r.name for r in client.list_repos_details(ListReposDetailsRequest()).body] == ["app"]
    assert tag_names(client, org, "app", "offset::0|limit::10")[0] == ["v1"]
    assert client.show_repo_tag(ShowRepoTagRequest(namespace=org, repository="app", tag="v1")).tag == "v1"

    # Changing anything does not.
    refused = [
        lambda: client.create_repo(
            CreateRepoRequest(namespace=org, body=CreateRepoRequestBody(repository="new", is_public=False))
        ),
        lambda: client.update_repo(
            UpdateRepoRequest(namespace=org, repository="app", body=UpdateRepoRequestBody(is_public=True))
        ),
        lambda: client.delete_repo(DeleteRepoRequest(namespace=org, repository="app")),
        lambda: client.delete_repo_tag(DeleteRepoTagRequest(namespace=org, repository="app", tag="v1")),
        lambda: client.create_repo_tag(
            CreateRepoTagRequest(
                namespace=org,
                repository="app",
                body=CreateRepoTagRequestBody(source_tag="v1", destination_tag="v2"),
            )
        ),
        lambda: client.delete_namespaces(DeleteNamespacesRequest(namespace=org)),
        lambda: client.create_namespace_auth(
            CreateNamespaceAuthRequest(namespace=org, body=[UserAuth(user_id="1", auth=7)])
        ),
        lambda: client.update_namespace_auth(
            UpdateNamespaceAuthRequest(namespace=org, body=[UserAuth(user_id="1", auth=7)])
        ),
        lambda: client.delete_namespace_auth(DeleteNamespaceAuthRequest(namespace=org, body=["1"])),
    ]
    for call in refused:
        assert_sdk_error(call, *FORBIDDEN)

    # Nothing changed.
    repo = world.client.show_repository(ShowRepositoryRequest(namespace=org, repository="app"))
    assert (repo.is_public, repo.num_images) == (False, 1)
    assert tag_names(world.client, org, "app", "offset::0|limit::10")[0] == ["v1"]
    assert namespace_names(world.client, namespace=org) == [org]
    assert client.show_namespace(ShowNamespaceRequest(namespace=org)).auth == 1


def test_editor_may_change_images_but_not_the_organization(world: World) -> None:
    org = world.new_org()
    push_image(world.registry(), f"{org}/app", "v1", make_image(org))
    editor, _password, key = user_with_key(world.server, "editor")
    world.server.grant(editor, org, 3)
    client = sdk_client(world.server, key)

    body = CreateRepoRequestBody(repository="tools$cli", is_public=False)
    assert client.create_repo(CreateRepoRequest(namespace=org, body=body)).status_code == 200
    created = client.show_repository(ShowRepositoryRequest(namespace=org, repository="tools$cli"))
    assert (created.name, created.creator_name) == ("tools/cli", editor)
    update = UpdateRepoRequest(namespace=org, repository="app", body=UpdateRepoRequestBody(is_public=True))
    assert client.update_repo(update).status_code == 201
    retag = CreateRepoTagRequestBody(source_tag="v1", destination_tag="v2")
    assert (
        client.create_repo_tag(CreateRepoTagRequest(namespace=org, repository="app", body=retag)).status_code
        == 201
    )
    assert (
        client.delete_repo_tag(DeleteRepoTagRequest(namespace=org, repository="app", tag="v1")).status_code
        == 204
    )
    assert tag_names(client, org, "app", "offset::0|limit::10")[0] == ["v2"]
    assert client.delete_repo(DeleteRepoRequest(namespace=org, repository="tools$cli")).status_code == 204

    assert_sdk_error(lambda: client.delete_namespaces(DeleteNamespacesRequest(namespace=org)), *FORBIDDEN)
    me = client.show_namespace_auth(ShowNamespaceAuthRequest(namespace=org)).self_auth
    assert (me.user_name, me.auth) == (editor, 3)
    assert_sdk_error(
        lambda: client.update_namespace_auth(
            UpdateNamespaceAuthRequest(namespace=org, body=[UserAuth(user_id=me.user_id, auth=7)])
        ),
        *FORBIDDEN,
    )
    assert client.show_namespace(ShowNamespaceRequest(namespace=org)).auth == 3


def test_outsider_sees_nothing(world: World) -> None:
    org = world.new_org()
    world.new_repo(org, "app")
    _outsider, _password, key = user_with_key(world.server, "outsider")
    client = sdk_client(world.server, key)

    assert org not in namespace_names(client)
    assert namespace_names(client, filter=f"namespace::{org}") == []
    assert [r.namespace for r in client.list_repos_details(ListReposDetailsRequest()).body or []] == []
    assert_sdk_error(lambda: client.show_namespace(ShowNamespaceRequest(namespace=org)), *ORG_NOT_FOUND)
    assert_sdk_error(
        lambda: client.show_repository(ShowRepositoryRequest(namespace=org, repository="app")), *ORG_NOT_FOUND
    )
    assert_sdk_error(
        lambda: client.list_repos_details(ListReposDetailsRequest(filter=f"namespace::{org}")), *ORG_NOT_FOUND
    )
    assert_sdk_error(lambda: client.delete_namespaces(DeleteNamespacesRequest(namespace=org)), *ORG_NOT_FOUND)


# --- authentication variants ------------------------------------------------------------------


def test_sdk_finds_the_project_by_region(world: World) -> None:
    """No project id: the SDK asks GET /v3/projects?name=<region> at the IAM endpoint."""
    key = create_key(world.server, "admin")  # a fresh AK: the SDK caches project ids per AK+region
    client = sdk_client_by_region(world.server, key, REGION)
    org = world.new_org()
    assert namespace_names(client, namespace=org) == [org]
    quotas = client.list_quotas(ListQuotasRequest()).quotas  # needs {project_id} in its path
    assert quotas[0].quota_key == "namespace"
    gates = client.show_share_feature_gates(ShowShareFeatureGatesRequest())
    assert gates.enable_image_sync is True
    projects = requests.get(f"{world.server.url}/v3/projects", params={"name": REGION}, timeout=30)
    assert projects.status_code == 401  # the lookup itself is authenticated

    # A region this server is not: no project, and the SDK refuses to build.
    other_key = create_key(world.server, "admin")
    with pytest.raises(Exception, match="project"):
        sdk_client_by_region(world.server, other_key, "ap-southeast-3")


def test_iam_token_project_and_domain_scope(world: World) -> None:
    project = token_request(world.server, "admin", ADMIN_PASSWORD, {"project": {"name": REGION}})
    assert project.status_code == 201
    token = project.headers["X-Subject-Token"]
    body = project.json()["token"]
    assert body["user"]["name"] == "admin"
    assert body["project"]["name"] == REGION
    assert body["project"]["id"] == world.key.project_id
    assert body["user"]["domain"]["id"] == world.key.domain_id
    assert body["methods"] == ["password"]
    assert body["roles"] and body["user"]["id"]
    assert body["expires_at"] > body["issued_at"]
    assert body["catalog"][0]["endpoints"][0]["url"] == world.server.url

    domain = token_request(
        world.server, "admin", ADMIN_PASSWORD, {"domain": {"name": body["user"]["domain"]["name"]}}
    )
    assert domain.status_code == 201
    assert domain.json()["token"]["domain"]["id"] == world.key.domain_id
    assert "project" not in domain.json()["token"]

    bad = token_request(world.server, "admin", "wrong-password", {"project": {"name": REGION}})
    assert bad.status_code == 401
    assert "X-Subject-Token" not in bad.headers
    wrong_region = token_request(world.server, "admin", ADMIN_PASSWORD, {"project": {"name": "xx-none-1"}})
    assert wrong_region.status_code == 401

    for issued in (token, domain.headers["X-Subject-Token"]):
        session = TokenSession(world.server, issued)
        org = unique("tok")
        response = session.request("POST", "/v2/manage/namespaces", {"namespace": org})
        assert response.status_code == 201, response.text
        response = session.request(
            "POST", f"/v2/manage/namespaces/{org}/repos", {"repository": "grp/app", "is_public": False}
        )
        assert response.status_code == 200, response.text
        shown = session.request("GET", f"/v2/manage/namespaces/{org}/repos/grp%24app")
        assert shown.status_code == 200 and shown.json()["name"] == "grp/app"
        listed = session.request("GET", "/v2/manage/repos", params={"filter": f"namespace::{org}"})
        assert [r["name"] for r in listed.json()] == ["grp/app"]
        assert listed.headers["Content-Range"] == "0-1/1"
        assert session.request("DELETE", f"/v2/manage/namespaces/{org}/repos/grp%24app").status_code == 204
        assert session.request("DELETE", f"/v2/manage/namespaces/{org}").status_code == 204
        # The SDK, signing, sees what the token user did.
        assert_sdk_error(
            lambda o=org: world.client.show_namespace(ShowNamespaceRequest(namespace=o)), *ORG_NOT_FOUND
        )


def test_garbage_or_missing_token_is_refused(world: World) -> None:
    for headers in ({"X-Auth-Token": "garbage.not.a-token"}, {}):
        response = requests.get(f"{world.server.url}/v2/manage/namespaces", headers=headers, timeout=30)
        assert response.status_code == 401
        body = response.json()
        assert body["error_code"] == body["errors"][0]["errorCode"]
        assert body["error_msg"]
        assert response.headers["X-Request-Id"]


def test_token_stops_working_after_password_change(world: World) -> None:
    name, password = unique("pwuser"), unique("pw-")
    world.server.user(name, password)
    org = world.new_org()
    world.server.grant(name, org, 1)
    session = TokenSession(world.server, iam_token(world.server, name, password))
    assert session.request("GET", f"/v2/manage/namespaces/{org}").json()["auth"] == 1

    new_password = unique("new-pw-")
    world.server.cli("user", "passwd", name, "--password", new_password)
    response = session.request("GET", f"/v2/manage/namespaces/{org}")
    assert response.status_code == 401
    assert response.json()["error_code"] == "APIGW.0301"
    assert token_request(world.server, name, password, {"project": {"name": REGION}}).status_code == 401
    fresh = TokenSession(world.server, iam_token(world.server, name, new_password))
    assert fresh.request("GET", f"/v2/manage/namespaces/{org}").status_code == 200


def test_token_stops_working_after_an_access_key_change(world: World) -> None:
    name, password, key = user_with_key(world.server, "akuser")
    session = TokenSession(world.server, iam_token(world.server, name, password))
    assert session.request("GET", "/v2/manage/namespaces").status_code == 200

    world.server.cli("key", "disable", key.ak)
    assert session.request("GET", "/v2/manage/namespaces").status_code == 401
    session = TokenSession(world.server, iam_token(world.server, name, password))
    assert session.request("GET", "/v2/manage/namespaces").status_code == 200
    # A disabled key no longer signs.
    assert_sdk_error(
        lambda: sdk_client(world.server, key).list_namespaces(ListNamespacesRequest()), 401, "APIGW.0301"
    )

    create_key(world.server, name)
    assert session.request("GET", "/v2/manage/namespaces").status_code == 401


def test_bad_signature_is_refused(world: World) -> None:
    forged = AccessKey(world.key.ak, "not-the-secret", world.key.project_id, world.key.domain_id, REGION)
    error = assert_sdk_error(
        lambda: sdk_client(world.server, forged).list_namespaces(ListNamespacesRequest()), 401, "APIGW.0301"
    )
    assert "signature" in error.error_msg.lower()
    unknown = AccessKey("NOSUCHAK", "x", world.key.project_id, world.key.domain_id, REGION)
    assert_sdk_error(
        lambda: sdk_client(world.server, unknown).list_namespaces(ListNamespacesRequest()), 401, "APIGW.0301"
    )


# --- SWR's long-term docker login -------------------------------------------------------------


def test_long_term_docker_login_pulls(world: World) -> None:
    org = world.new_org()
    image = make_image(org)
    push_image(world.registry(), f"{org}/app", "v1", image)
    reader, _password, key = user_with_key(world.server, "dlogin")
    world.server.grant(reader, org, 1)
    user, password = key.docker_login
    assert user == f"{REGION}@{key.ak}"

    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    response = requests.get(
        f"{world.server.url}/v2/token",
        params={"service": REGION, "scope": f"repository:{org}/app:pull,push"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    pulled = requests.get(
        f"{world.server.url}/v2/{org}/app/manifests/v1",
        headers={"Authorization": f"Bearer {token}", "Accept": OCI_MANIFEST},
        timeout=30,
    )
    assert pulled.status_code == 200
    assert pulled.headers["Docker-Content-Digest"] == image.digest
    assert pulled.content == image.manifest

    # Read permission pulls but does not push, even with a long-term login.
    client = RegistryClient(world.server.url, user, password)
    other: Image = make_image(org + "-other")
    config_digest, config = next(iter(other.blobs.items()))
    refused = client.post(f"/v2/{org}/app/blobs/uploads/?digest={config_digest}", data=config)
    assert refused.status_code in (401, 403)

    def token_status(login: tuple[str, str]) -> int:
        response = requests.get(
            f"{world.server.url}/v2/token",
            params={"service": REGION, "scope": f"repository:{org}/app:pull"},
            auth=login,
            timeout=30,
        )
        return response.status_code

    # A wrong password, or the right one for another region, gets no token.
    assert token_status((user, "0" * 64)) == 401
    assert token_status((f"ap-southeast-3@{key.ak}", password)) == 401
    # Nor does the login of a disabled key.
    assert token_status((user, password)) == 200
    world.server.cli("key", "disable", key.ak)
    assert token_status((user, password)) == 401
