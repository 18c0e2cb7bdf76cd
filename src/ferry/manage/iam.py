"""The IAM subset: password tokens (`POST /v3/auth/tokens`) and the SDK's project lookup."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ferry.errors import swr_bad_request
from ferry.identity import organizations as orgs
from ferry.identity.password_login import PasswordLogin, Reference, password_login
from ferry.identity.service import Principal
from ferry.manage.operations import authenticated, json_response, parse_body, public
from ferry.state import state

TAG = "iam"


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class NameOrId(_Loose):
    name: str | None = None
    id: str | None = None


class PasswordUser(_Loose):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    domain: NameOrId | None = None


class PasswordMethod(_Loose):
    user: PasswordUser


class Identity(_Loose):
    methods: list[str]
    password: PasswordMethod


class Scope(_Loose):
    project: NameOrId | None = None
    domain: NameOrId | None = None


class AuthBody(_Loose):
    identity: Identity
    scope: Scope | None = None


class TokenRequest(_Loose):
    auth: AuthBody


class Project(BaseModel):
    id: str
    name: str
    domain_id: str
    enabled: bool = True
    description: str = ""


class ProjectList(BaseModel):
    projects: list[Project]


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def create_token(request: web.Request) -> web.Response:
    body = await parse_body(request, TokenRequest)
    if "password" not in body.auth.identity.methods:
        raise swr_bad_request("only the password method is supported", "SVCSTG.SWR.4000014")
    app = state(request)
    user, scope = body.auth.identity.password.user, body.auth.scope or Scope()
    login = await password_login(
        app.db,
        app.login_throttle,
        app.iam_tokens,
        app.client_address(request),
        user.name,
        user.password,
        _reference(user.domain),
        _reference(scope.project),
        app.settings.region,
    )
    token = _keystone_token(login, app.settings.region)
    if request.query.get("nocatalog") != "true":
        token["catalog"] = _catalog(app.base_url(request), app.settings.region)
    return json_response({"token": token}, status=201, headers={"X-Subject-Token": login.token.token})


def _reference(value: NameOrId | None) -> Reference | None:
    return Reference(value.name, value.id) if value is not None else None


def _keystone_token(login: PasswordLogin, region: str) -> dict[str, Any]:
    """The token body as Keystone (and so the SDK) has it, scoped to the project or the domain."""
    principal, account = login.principal, login.account
    domain = {"id": account.domain_id, "name": account.name}
    token: dict[str, Any] = {
        "expires_at": _iso(login.token.expires_at),
        "issued_at": _iso(login.token.issued_at),
        "methods": ["password"],
        "user": {"id": str(principal.user_id), "name": principal.name, "domain": domain},
        "roles": [{"id": "0", "name": "te_admin" if principal.is_admin else "te_agency"}],
    }
    if login.project_scoped:
        token["project"] = {"id": account.project_id, "name": region, "domain": domain}
    else:
        token["domain"] = domain
    return token


def _catalog(base_url: str, region: str) -> list[dict[str, Any]]:
    endpoint = {
        "interface": "public",
        "region": region,
        "region_id": region,
        "url": base_url,
        "id": "swr-" + region,
    }
    return [{"type": "swr", "name": "swr", "id": "swr", "endpoints": [endpoint]}]


async def list_projects(request: web.Request, principal: Principal) -> web.Response:
    app = state(request)
    async with app.db.read() as session:
        account = await orgs.account_of(session, principal.account_id)
    wanted = request.query.get("name")
    region = app.settings.region
    projects = (
        []
        if wanted not in (None, region)
        else [Project(id=account.project_id, name=region, domain_id=account.domain_id)]
    )
    return json_response(ProjectList(projects=projects))


OPERATIONS = [
    public(
        create_token,
        "POST",
        "/v3/auth/tokens",
        "Get an IAM token with a password",
        status=201,
        body=TokenRequest,
        tag=TAG,
    ),
    authenticated(
        list_projects,
        "GET",
        "/v3/projects",
        "Find this region's project",
        response=ProjectList,
        query=("name",),
        tag=TAG,
    ),
]
