"""Image tags: list, show, delete, and create by retagging."""

from __future__ import annotations

from aiohttp import web

from ferry.errors import swr_bad_request
from ferry.identity.service import Principal
from ferry.images import inventory, repositories
from ferry.images.inventory import TagQuery, TagView
from ferry.manage.operations import (
    authenticated,
    content_range,
    json_response,
    namespace_param,
    page,
    parse_body,
    parse_filter,
    repository_param,
    tag_param,
)
from ferry.manage.schemas import CreateRepoTagBody, TagDetail, TagListItem, rfc3339
from ferry.names import invalid_tag, is_tag
from ferry.state import state

TAGS = "/v2/manage/namespaces/{namespace}/repos/{repository}/tags"
TAG = "tags"
LIST_KEYS = ("offset", "limit", "order_column", "order_type", "tag")


def tag_fields(
    request: web.Request, namespace: str, repository: str, view: TagView, domain_id: str
) -> dict[str, object]:
    """What a tag's detail and its list row share."""
    host = state(request).base_url(request).split("://", 1)[-1]
    return {
        "id": view.manifest.id,
        "repo_id": view.tag.repository_id,
        "tag": view.tag.name,
        "image_id": view.image_id,
        "manifest": view.manifest.payload.decode(errors="replace"),
        "digest": view.manifest.digest,
        "schema_": 2,
        "path": f"{host}/{namespace}/{repository}:{view.tag.name}",
        "internal_path": f"{request.host}/{namespace}/{repository}:{view.tag.name}",
        "size": view.manifest.content_size,
        "is_trusted": False,
        "created": rfc3339(view.tag.created_at),
        "updated": rfc3339(view.tag.updated_at),
        "domain_id": domain_id,
        "tag_type": 1 if view.is_index else 0,
    }


def _list_query(request: web.Request) -> TagQuery:
    """The list's filter (`filter=k::v|…`) or, without one, its plain query parameters."""
    filters = parse_filter(request)
    values = (
        filters if filters is not None else {k: request.query[k] for k in LIST_KEYS if k in request.query}
    )
    offset, limit = page(values)
    order_column = values.get("order_column", "updated_at")
    order_type = values.get("order_type", "desc")
    if order_column not in ("updated_at", "tag") or order_type not in ("asc", "desc"):
        raise swr_bad_request(
            "order_column must be updated_at or tag, order_type asc or desc", "SVCSTG.SWR.4000014"
        )
    return TagQuery(offset, limit, order_column, order_type == "desc", values.get("tag") or None)


async def list_repository_tags(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    query = _list_query(request)
    async with state(request).db.read() as session:
        found = await inventory.list_tags(session, principal, namespace, name, query)
    items = [
        TagListItem.model_validate(
            tag_fields(request, namespace, name, view, found.account.domain_id)
            | {"deleted": None, "scanned": False}
        )
        for view in found.views
    ]
    return json_response(items, headers=content_range(query.offset, len(items), found.total))


async def show_repo_tag(request: web.Request, principal: Principal) -> web.Response:
    namespace, name, tag = namespace_param(request), repository_param(request), tag_param(request)
    async with state(request).db.read() as session:
        view, account = await inventory.show_tag(session, principal, namespace, name, tag)
    return json_response(
        TagDetail.model_validate(tag_fields(request, namespace, name, view, account.domain_id))
    )


async def delete_repo_tag(request: web.Request, principal: Principal) -> web.Response:
    namespace, name, tag = namespace_param(request), repository_param(request), tag_param(request)
    async with state(request).db.write() as session:
        await repositories.delete_tag(session, state(request).tag_events, principal, namespace, name, tag)
    return web.Response(status=204)


async def create_repo_tag(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    body = await parse_body(request, CreateRepoTagBody)
    for value in (body.source_tag, body.destination_tag):
        if not is_tag(value):
            raise swr_bad_request(invalid_tag(value), "SVCSTG.SWR.4009021")
    app = state(request)
    async with app.db.write() as session:
        await repositories.retag(
            session,
            app.tag_events,
            principal,
            namespace,
            name,
            body.source_tag,
            body.destination_tag,
            body.override,
        )
    return json_response({}, status=201)


OPERATIONS = [
    authenticated(
        list_repository_tags,
        "GET",
        TAGS,
        "List tags",
        response=list[TagListItem],
        query=(*LIST_KEYS, "filter"),
        tag=TAG,
    ),
    authenticated(show_repo_tag, "GET", TAGS + "/{tag}", "Show a tag", response=TagDetail, tag=TAG),
    authenticated(delete_repo_tag, "DELETE", TAGS + "/{tag}", "Delete a tag", status=204, tag=TAG),
    authenticated(
        create_repo_tag,
        "POST",
        TAGS,
        "Create a tag from an existing one",
        status=201,
        body=CreateRepoTagBody,
        tag=TAG,
    ),
]
