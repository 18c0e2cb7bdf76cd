"""Organizations (namespaces) and their permissions."""

from __future__ import annotations

from aiohttp import web

from ferry.errors import swr_bad_request
from ferry.identity import organizations as orgs
from ferry.identity.caller import READ
from ferry.identity.service import Principal
from ferry.manage.operations import (
    authenticated,
    json_response,
    namespace_param,
    parse_body,
    parse_filter,
)
from ferry.manage.schemas import CreateNamespaceBody, NamespaceAuth, NamespaceList, ShowNamespace, UserAuth
from ferry.state import state

NS = "/v2/manage/namespaces"
TAG = "organizations"


def _show(visible: orgs.VisibleOrganization) -> ShowNamespace:
    org = visible.organization
    return ShowNamespace(id=org.id, name=org.name, creator_name=org.creator_name, auth=visible.auth)


def _user_auth(user_id: int, name: str, auth: int) -> UserAuth:
    return UserAuth.model_validate({"user_id": str(user_id), "user_name": name, "auth": auth})


async def create_namespace(request: web.Request, principal: Principal) -> web.Response:
    body = await parse_body(request, CreateNamespaceBody)
    app = state(request)
    async with app.db.write() as session:
        await orgs.create_organization(session, principal, body.namespace, app.settings.namespace_quota)
    return json_response({}, status=201)


async def list_namespaces(request: web.Request, principal: Principal) -> web.Response:
    filters = parse_filter(request) or {}
    wanted = filters.get("namespace") or request.query.get("namespace") or None
    async with state(request).db.read() as session:
        visible = await orgs.list_organizations(session, principal, wanted)
    return json_response(NamespaceList(namespaces=[_show(v) for v in visible]))


async def show_namespace(request: web.Request, principal: Principal) -> web.Response:
    name = namespace_param(request)
    async with state(request).db.read() as session:
        visible = await orgs.require_organization(session, principal, name, READ)
    return json_response(_show(visible))


async def delete_namespace(request: web.Request, principal: Principal) -> web.Response:
    name = namespace_param(request)
    async with state(request).db.write() as session:
        await orgs.delete_organization(session, principal, name)
    return web.Response(status=204)


async def show_namespace_auth(request: web.Request, principal: Principal) -> web.Response:
    name = namespace_param(request)
    async with state(request).db.read() as session:
        visible, granted = await orgs.organization_permissions(session, principal, name)
    org = visible.organization
    others = [_user_auth(u.id, u.name, auth) for u, auth in granted if u.id != principal.user_id]
    body = NamespaceAuth(
        id=org.id,
        name=org.name,
        creator_name=org.creator_name,
        self_auth=_user_auth(principal.user_id, principal.name, visible.auth),
        others_auths=others,
    )
    return json_response(body)


async def _change_permissions(request: web.Request, principal: Principal, status: int) -> web.Response:
    name = namespace_param(request)
    grants = await parse_body(request, list[UserAuth])
    if not grants:
        raise swr_bad_request("at least one user permission is required", "SVCSTG.SWR.4001014")
    async with state(request).db.write() as session:
        await orgs.grant_permissions(session, principal, name, [(g.user_id, g.auth) for g in grants])
    return web.Response(status=status)


async def create_namespace_auth(request: web.Request, principal: Principal) -> web.Response:
    return await _change_permissions(request, principal, 201)


async def update_namespace_auth(request: web.Request, principal: Principal) -> web.Response:
    return await _change_permissions(request, principal, 201)


async def delete_namespace_auth(request: web.Request, principal: Principal) -> web.Response:
    name = namespace_param(request)
    user_ids = await parse_body(request, list[str])
    async with state(request).db.write() as session:
        await orgs.revoke_permissions(session, principal, name, user_ids)
    return web.Response(status=204)


OPERATIONS = [
    authenticated(
        create_namespace, "POST", NS, "Create an organization", status=201, body=CreateNamespaceBody, tag=TAG
    ),
    authenticated(
        list_namespaces,
        "GET",
        NS,
        "List organizations",
        response=NamespaceList,
        query=("namespace", "filter"),
        tag=TAG,
    ),
    authenticated(
        show_namespace, "GET", NS + "/{namespace}", "Show an organization", response=ShowNamespace, tag=TAG
    ),
    authenticated(
        delete_namespace, "DELETE", NS + "/{namespace}", "Delete an empty organization", status=204, tag=TAG
    ),
    authenticated(
        show_namespace_auth,
        "GET",
        NS + "/{namespace}/access",
        "Show permissions",
        response=NamespaceAuth,
        tag=TAG,
    ),
    authenticated(
        create_namespace_auth,
        "POST",
        NS + "/{namespace}/access",
        "Grant permissions",
        status=201,
        body=list[UserAuth],
        tag=TAG,
    ),
    authenticated(
        update_namespace_auth,
        "PATCH",
        NS + "/{namespace}/access",
        "Change permissions",
        status=201,
        body=list[UserAuth],
        tag=TAG,
    ),
    authenticated(
        delete_namespace_auth,
        "DELETE",
        NS + "/{namespace}/access",
        "Revoke permissions",
        status=204,
        body=list[str],
        tag=TAG,
    ),
]
