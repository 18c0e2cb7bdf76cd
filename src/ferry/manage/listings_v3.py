"""SWR's v3 listings: repositories (`list_repo_details`, GET /v3/manage/repos) and a
repository's tags (`list_repository_tag`, GET /v3/manage/namespaces/{namespace}/repos/{repository}/tags),
paged by marker instead of offset: each page says where the next starts (`nextMarker`), so a
page never repeats or skips rows when others are added meanwhile."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from ferry.errors import swr_bad_request
from ferry.identity.service import Principal
from ferry.images import marker_pages
from ferry.manage.operations import (
    authenticated,
    json_response,
    namespace_param,
    query_number,
    repository_param,
)
from ferry.manage.schemas import TagDetail, rfc3339
from ferry.manage.tags import tag_fields
from ferry.names import invalid_organization, is_organization
from ferry.parsing import whole_number
from ferry.state import state

TAG = "repositories"
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


class RepositoryV3(BaseModel):
    id: int
    name: str
    category: str
    description: str
    size: int
    is_public: bool
    num_images: int
    num_download: int
    created_at: str
    updated_at: str
    domain_name: str
    namespace_name: str
    status: bool


class RepositoryPageV3(BaseModel):
    repos: list[RepositoryV3]
    nextMarker: int | None = None


class TagPageV3(BaseModel):
    tags: list[TagDetail]
    nextMarker: str | None = Field(default=None)
    has_more: bool


def _flag(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw.lower() not in ("true", "false"):
        raise swr_bad_request(f"{name} must be true or false, not {raw!r}", "SVCSTG.SWR.4000056")
    return raw.lower() == "true"


async def list_repo_details(request: web.Request, principal: Principal) -> web.Response:
    namespace = request.query.get("namespace") or None
    if namespace is not None and not is_organization(namespace):
        raise swr_bad_request(invalid_organization(namespace), "SVCSTG.SWR.4001028")
    raw_marker = request.query.get("marker", "0")
    marker = whole_number(raw_marker)
    if marker is None:
        raise swr_bad_request(f"marker must be a repository id from nextMarker, not {raw_marker!r}")
    query = marker_pages.RepositoryMarkerQuery(
        namespace,
        request.query.get("name") or None,
        request.query.get("category") or None,
        _flag(request, "is_public"),
        marker,
        query_number(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
    )
    async with state(request).db.read() as session:
        listings, more = await marker_pages.repositories_after(session, principal, query)
    repos = [
        RepositoryV3(
            id=item.repository.id,
            name=item.repository.name,
            category=item.repository.category,
            description=item.repository.description,
            size=item.figures.size,
            is_public=item.repository.is_public,
            num_images=item.figures.num_images,
            num_download=0,
            created_at=rfc3339(item.repository.created_at),
            updated_at=rfc3339(item.repository.updated_at),
            domain_name=item.account.name,
            namespace_name=item.organization.name,
            status=True,
        )
        for item in listings
    ]
    next_marker = repos[-1].id if more and repos else None
    return json_response(RepositoryPageV3(repos=repos, nextMarker=next_marker))


async def list_repository_tag(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    order_column = request.query.get("order_column", "tag")
    order_type = request.query.get("order_type", "asc")
    if order_column not in ("tag", "updated_at") or order_type not in ("asc", "desc"):
        raise swr_bad_request(
            "order_column must be tag or updated_at, order_type asc or desc", "SVCSTG.SWR.4000014"
        )
    with_manifest = bool(_flag(request, "with_manifest"))
    async with state(request).db.read() as session:
        views, more, account = await marker_pages.tags_after(
            session,
            principal,
            namespace,
            name,
            request.query.get("marker") or None,
            query_number(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
            order_column == "updated_at",
            order_type == "desc",
            request.query.get("tag") or None,
        )
    tags = []
    for view in views:
        fields = tag_fields(request, namespace, name, view, account.domain_id)
        if not with_manifest:
            fields["manifest"] = ""
        tags.append(TagDetail.model_validate(fields))
    next_marker = tags[-1].tag if more and tags else None
    return json_response(TagPageV3(tags=tags, nextMarker=next_marker, has_more=more))


OPERATIONS = [
    authenticated(
        list_repo_details,
        "GET",
        "/v3/manage/repos",
        "List repositories, paged by marker (nextMarker: the next page's marker)",
        response=RepositoryPageV3,
        query=("namespace", "name", "category", "limit", "marker", "is_public"),
        tag=TAG,
    ),
    authenticated(
        list_repository_tag,
        "GET",
        "/v3/manage/namespaces/{namespace}/repos/{repository}/tags",
        "List a repository's tags, paged by marker (the manifest only with with_manifest=true)",
        response=TagPageV3,
        query=("limit", "marker", "tag", "order_column", "order_type", "with_manifest"),
        tag="tags",
    ),
]
