"""The IAM subset: password tokens (`POST /v3/auth/tokens`) and the SDK's project lookup."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ferry.errors import SWRError, swr_bad_request
from ferry.identity import organizations as orgs
from ferry.identity.service import Principal, authenticate_password
from ferry.identity.throttle import LoginThrottled, user_identity
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
    user = body.auth.identity.password.user

    async def login() -> Principal | None:
        async with app.db.read() as session:
            return await authenticate_password(session, user.name, user.password)

    try:
        principal = await app.login_throttle.attempt(
            user_identity(user.name), app.client_address(request), login
        )
    except LoginThrottled as throttled:
        raise SWRError(
            429, "APIGW.0308", str(throttled), headers={"Retry-After": str(throttled.retry_after)}
        ) from None
    async with app.db.read() as session:
        account = await orgs.account_of(session, principal.account_id) if principal else None
    if principal is None or account is None or not _domain_matches(user.domain, account):
        raise SWRError(401, "IAM.0004", "The username or password is wrong.")
    scope = body.auth.scope or Scope()
    region = app.settings.region
    if scope.project and not (scope.project.name == region or scope.project.id == account.project_id):
        raise SWRError(
            401, "IAM.0015", f"no project {scope.project.name or scope.project.id!r} in this region"
        )
    issued = app.iam_tokens.issue(principal, {"project": account.project_id} if scope.project else {})
    domain = {"id": account.domain_id, "name": account.name}
    token: dict[str, Any] = {
        "expires_at": _iso(issued.expires_at),
        "issued_at": _iso(issued.issued_at),
        "methods": ["password"],
        "user": {"id": str(principal.user_id), "name": principal.name, "domain": domain},
        "roles": [{"id": "0", "name": "te_admin" if principal.is_admin else "te_agency"}],
    }
    if scope.project:
        token["project"] = {"id": account.project_id, "name": region, "domain": domain}
    else:
        token["domain"] = domain
    if request.query.get("nocatalog") != "true":
        base = app.base_url(request)
        token["catalog"] = [
            {
                "type": "swr",
                "name": "swr",
                "id": "swr",
                "endpoints": [
                    {
                        "interface": "public",
                        "region": region,
                        "region_id": region,
                        "url": base,
                        "id": "swr-" + region,
                    }
                ],
            }
        ]
    return json_response({"token": token}, status=201, headers={"X-Subject-Token": issued.token})


def _domain_matches(domain: NameOrId | None, account: orgs.Account) -> bool:
    if domain is None:
        return True
    return domain.name in (None, account.name) and domain.id in (None, account.domain_id)


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
