"""Image tags: list, show, delete, and create by retagging."""

from __future__ import annotations

from aiohttp import web

from ferry.errors import swr_bad_request, tag_not_found
from ferry.identity.organizations import account_of
from ferry.identity.service import Principal
from ferry.images import inventory
from ferry.images.inventory import TagView
from ferry.manage.access import EDIT, READ, conflict, repository_for
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
from ferry.names import is_tag
from ferry.state import state

TAGS = "/v2/manage/namespaces/{namespace}/repos/{repository}/tags"
TAG = "tags"
LIST_KEYS = ("offset", "limit", "order_column", "order_type", "tag")


def _fields(
    request: web.Request, namespace: str, repository: str, view: TagView, domain_id: str
) -> dict[str, object]:
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


async def list_repository_tags(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
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
    async with state(request).db.read() as session:
        visible, repo = await repository_for(session, principal, namespace, name, READ)
        domain_id = (await account_of(session, visible.organization.account_id)).domain_id
        views, total = await inventory.tag_page(
            session, repo.id, offset, limit, order_column, order_type == "desc", values.get("tag") or None
        )
    items = [
        TagListItem(**_fields(request, namespace, name, v, domain_id), deleted=None, scanned=False)  # type: ignore[arg-type]
        for v in views
    ]
    return json_response(items, headers=content_range(offset, len(items), total))


async def show_repo_tag(request: web.Request, principal: Principal) -> web.Response:
    namespace, name, tag = namespace_param(request), repository_param(request), tag_param(request)
    async with state(request).db.read() as session:
        visible, repo = await repository_for(session, principal, namespace, name, READ)
        domain_id = (await account_of(session, visible.organization.account_id)).domain_id
        view = await inventory.tag_view(session, repo.id, tag)
    if view is None:
        raise tag_not_found(tag)
    return json_response(TagDetail(**_fields(request, namespace, name, view, domain_id)))  # type: ignore[arg-type]


async def delete_repo_tag(request: web.Request, principal: Principal) -> web.Response:
    namespace, name, tag = namespace_param(request), repository_param(request), tag_param(request)
    async with state(request).db.write() as session:
        _, repo = await repository_for(session, principal, namespace, name, EDIT)
        if not await inventory.delete_tag(session, repo.id, tag):
            raise tag_not_found(tag)
    return web.Response(status=204)


async def create_repo_tag(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    body = await parse_body(request, CreateRepoTagBody)
    for value in (body.source_tag, body.destination_tag):
        if not is_tag(value):
            raise swr_bad_request(f"invalid image tag {value!r}", "SVCSTG.SWR.4009021")
    async with state(request).db.write() as session:
        _, repo = await repository_for(session, principal, namespace, name, EDIT)
        if not body.override and await inventory.tag_view(session, repo.id, body.destination_tag):
            raise conflict("SVCSTG.SWR.4090006", f"tag '{body.destination_tag}' exists and override is false")
        operator = principal.operator
        events = state(request).tag_events
        if (
            await inventory.retag(session, events, repo, body.source_tag, body.destination_tag, operator)
            is None
        ):
            raise tag_not_found(body.source_tag)
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
