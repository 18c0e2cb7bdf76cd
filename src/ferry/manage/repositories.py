"""Repositories: create, show, update, delete, list."""

from __future__ import annotations

from aiohttp import web

from ferry.errors import swr_bad_request
from ferry.identity.service import Principal
from ferry.images import inventory, repositories
from ferry.images.repositories import RepositorySettings
from ferry.manage.operations import (
    authenticated,
    content_range,
    json_response,
    namespace_param,
    page,
    parse_body,
    parse_filter,
    repository_param,
)
from ferry.manage.schemas import CreateRepoBody, RepositoryDetail, RepositoryListItem, UpdateRepoBody, rfc3339
from ferry.names import invalid_organization, invalid_repository, is_organization, is_repository
from ferry.state import state

REPOS = "/v2/manage/namespaces/{namespace}/repos"
TAG = "repositories"
LIST_KEYS = ("namespace", "name", "category", "limit", "offset", "order_column", "order_type")


def _paths(request: web.Request, org: str, repo: str) -> tuple[str, str]:
    host = state(request).base_url(request).split("://", 1)[-1]
    return f"{host}/{org}/{repo}", f"{request.host}/{org}/{repo}"


def _detail(request: web.Request, view: inventory.RepositoryView) -> RepositoryDetail:
    repo, org, stats = view.repository, view.organization, view.figures
    path, internal = _paths(request, org.name, repo.name)
    return RepositoryDetail(
        id=repo.id,
        ns_id=org.id,
        name=repo.name,
        category=repo.category,
        description=repo.description,
        creator_id="",
        creator_name=repo.creator_name,
        size=stats.size,
        is_public=repo.is_public,
        num_images=stats.num_images,
        num_download=0,
        url="",
        path=path,
        internal_path=internal,
        created=rfc3339(repo.created_at),
        updated=rfc3339(repo.updated_at),
        domain_id=view.account.domain_id,
        priority=0,
    )


async def create_repo(request: web.Request, principal: Principal) -> web.Response:
    namespace = namespace_param(request)
    body = await parse_body(request, CreateRepoBody)
    name = body.repository.replace("$", "/")
    if not is_repository(name):
        raise swr_bad_request(invalid_repository(body.repository), "SVCSTG.SWR.4009011")
    settings = RepositorySettings(body.is_public, body.category, body.description)
    async with state(request).db.write() as session:
        await repositories.create_repository(session, principal, namespace, name, settings)
    return json_response({})


async def show_repository(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    async with state(request).db.read() as session:
        view = await inventory.show_repository(session, principal, namespace, name)
    return json_response(_detail(request, view))


async def update_repo(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    body = await parse_body(request, UpdateRepoBody)
    settings = RepositorySettings(body.is_public, body.category, body.description)
    async with state(request).db.write() as session:
        await repositories.update_repository(session, principal, namespace, name, settings)
    return json_response({}, status=201)


async def delete_repo(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    async with state(request).db.write() as session:
        await repositories.delete_repository(session, principal, namespace, name)
    return web.Response(status=204)


def _list_query(request: web.Request) -> inventory.RepositoryQuery:
    """The list's filter (`filter=k::v|…`) or, without one, its plain query parameters."""
    filters = parse_filter(request)
    values = (
        filters if filters is not None else {k: request.query[k] for k in LIST_KEYS if k in request.query}
    )
    offset, limit = page(values)
    namespace = values.get("namespace") or None
    if namespace is not None and not is_organization(namespace):
        raise swr_bad_request(invalid_organization(namespace), "SVCSTG.SWR.4001028")
    order_column = values.get("order_column") or "updated_time"
    order_type = values.get("order_type") or "desc"
    if order_column not in inventory.REPOSITORY_ORDER_COLUMNS or order_type not in ("asc", "desc"):
        raise swr_bad_request(
            "order_column must be name, updated_time or tag_count, order_type asc or desc",
            "SVCSTG.SWR.4000014",
        )
    return inventory.RepositoryQuery(
        namespace,
        values.get("name") or None,
        values.get("category") or None,
        offset,
        limit,
        order_column,
        order_type == "desc",
    )


async def list_repos(request: web.Request, principal: Principal) -> web.Response:
    query = _list_query(request)
    async with state(request).db.read() as session:
        listings, total = await inventory.visible_repositories(session, principal, query)
    items = [_list_item(request, listing, total) for listing in listings]
    return json_response(items, headers=content_range(query.offset, len(items), total))


def _list_item(request: web.Request, listing: inventory.RepositoryListing, total: int) -> RepositoryListItem:
    repo, org, stats = listing.repository, listing.organization, listing.figures
    path, internal = _paths(request, org.name, repo.name)
    return RepositoryListItem(
        name=repo.name,
        category=repo.category,
        description=repo.description,
        size=stats.size,
        is_public=repo.is_public,
        num_images=stats.num_images,
        num_download=0,
        created_at=rfc3339(repo.created_at),
        updated_at=rfc3339(repo.updated_at),
        logo="",
        url="",
        path=path,
        internal_path=internal,
        domain_name=listing.account.name,
        namespace=org.name,
        tags=listing.tags,
        status=True,
        total_range=total,
    )


OPERATIONS = [
    authenticated(create_repo, "POST", REPOS, "Create a repository", body=CreateRepoBody, tag=TAG),
    authenticated(
        show_repository,
        "GET",
        REPOS + "/{repository}",
        "Show a repository",
        response=RepositoryDetail,
        tag=TAG,
    ),
    authenticated(
        update_repo,
        "PATCH",
        REPOS + "/{repository}",
        "Update a repository",
        status=201,
        body=UpdateRepoBody,
        tag=TAG,
    ),
    authenticated(
        delete_repo,
        "DELETE",
        REPOS + "/{repository}",
        "Delete a repository and its images",
        status=204,
        tag=TAG,
    ),
    authenticated(
        list_repos,
        "GET",
        "/v2/manage/repos",
        "List repositories",
        response=list[RepositoryListItem],
        query=(*LIST_KEYS, "filter"),
        tag=TAG,
    ),
]
