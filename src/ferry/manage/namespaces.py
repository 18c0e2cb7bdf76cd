"""Organizations (namespaces) and their permissions."""

from __future__ import annotations

from aiohttp import web

from ferry.errors import SWRError, swr_bad_request
from ferry.identity import organizations as orgs
from ferry.identity.service import IdentityError, Principal, create_organization
from ferry.manage.access import MANAGE, READ, conflict, organization_for
from ferry.manage.operations import (
    authenticated,
    json_response,
    namespace_param,
    parse_body,
    parse_filter,
)
from ferry.manage.schemas import CreateNamespaceBody, NamespaceAuth, NamespaceList, ShowNamespace, UserAuth
from ferry.names import is_new_organization_name
from ferry.parsing import whole_number
from ferry.state import state

NS = "/v2/manage/namespaces"
TAG = "organizations"


def _show(visible: orgs.VisibleOrganization) -> ShowNamespace:
    org = visible.organization
    return ShowNamespace(id=org.id, name=org.name, creator_name=org.creator_name, auth=visible.auth)


async def create_namespace(request: web.Request, principal: Principal) -> web.Response:
    body = await parse_body(request, CreateNamespaceBody)
    if not is_new_organization_name(body.namespace):
        raise swr_bad_request(f"invalid organization name {body.namespace!r}", "SVCSTG.SWR.4001028")
    app = state(request)
    async with app.db.write() as session:
        used = await orgs.count_account_organizations(session, principal.account_id)
        if used >= app.settings.namespace_quota:
            raise swr_bad_request(
                f"organization quota of {app.settings.namespace_quota} reached", "SVCSTG.SWR.4000097"
            )
        if await orgs.find_organization(session, body.namespace):
            raise conflict("SVCSTG.SWR.4090060", f"organization '{body.namespace}' already exists")
        try:
            await create_organization(session, principal, body.namespace)
        except IdentityError as error:
            raise swr_bad_request(str(error), "SVCSTG.SWR.4001028") from None
    return json_response({}, status=201)


async def list_namespaces(request: web.Request, principal: Principal) -> web.Response:
    filters = parse_filter(request) or {}
    wanted = filters.get("namespace") or request.query.get("namespace")
    async with state(request).db.read() as session:
        visible = await orgs.visible_organizations(session, principal)
    items = [_show(v) for v in visible if not wanted or v.organization.name == wanted]
    return json_response(NamespaceList(namespaces=items))


async def show_namespace(request: web.Request, principal: Principal) -> web.Response:
    name = namespace_param(request)
    async with state(request).db.read() as session:
        visible = await organization_for(session, principal, name, READ)
    return json_response(_show(visible))


async def delete_namespace(request: web.Request, principal: Principal) -> web.Response:
    name = namespace_param(request)
    async with state(request).db.write() as session:
        visible = await organization_for(session, principal, name, MANAGE)
        try:
            await orgs.delete_organization(session, visible.organization)
        except orgs.OrganizationNotEmpty:
            raise SWRError(
                406, "SVCSTG.SWR.4060074", f"organization '{name}' still has repositories: delete them first"
            ) from None
    return web.Response(status=204)


async def show_namespace_auth(request: web.Request, principal: Principal) -> web.Response:
    name = namespace_param(request)
    async with state(request).db.read() as session:
        visible = await organization_for(session, principal, name, READ)
        granted = await orgs.permissions(session, visible.organization)
    org = visible.organization
    me = UserAuth(user_id=str(principal.user_id), user_name=principal.name, auth=visible.auth)  # type: ignore[arg-type]
    others = [
        UserAuth(user_id=str(u.id), user_name=u.name, auth=auth)  # type: ignore[arg-type]
        for u, auth in granted
        if u.id != principal.user_id
    ]
    body = NamespaceAuth(
        id=org.id, name=org.name, creator_name=org.creator_name, self_auth=me, others_auths=others
    )
    return json_response(body)


async def _change_permissions(request: web.Request, principal: Principal, status: int) -> web.Response:
    name = namespace_param(request)
    grants = await parse_body(request, list[UserAuth])
    if not grants:
        raise swr_bad_request("at least one user permission is required", "SVCSTG.SWR.4001014")
    async with state(request).db.write() as session:
        visible = await organization_for(session, principal, name, MANAGE)
        for grant in grants:
            user_id = whole_number(grant.user_id)
            if user_id is None or not await orgs.set_permission(
                session, visible.organization, user_id, grant.auth
            ):
                raise SWRError(404, "SVCSTG.SWR.4040006", f"user {grant.user_id!r} not found in this account")
    return web.Response(status=status)


async def create_namespace_auth(request: web.Request, principal: Principal) -> web.Response:
    return await _change_permissions(request, principal, 201)


async def update_namespace_auth(request: web.Request, principal: Principal) -> web.Response:
    return await _change_permissions(request, principal, 201)


async def delete_namespace_auth(request: web.Request, principal: Principal) -> web.Response:
    name = namespace_param(request)
    user_ids = await parse_body(request, list[str])
    async with state(request).db.write() as session:
        visible = await organization_for(session, principal, name, MANAGE)
        for user_id in user_ids:
            number = whole_number(user_id)
            if number is None or not await orgs.revoke_permission(session, visible.organization, number):
                raise SWRError(404, "SVCSTG.SWR.4040006", f"user {user_id!r} has no permission here")
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
