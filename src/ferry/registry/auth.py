"""Authentication and authorization for /v2, in one place, plus the token endpoint.

Each registry endpoint is wrapped by `requires(action)`, which checks the bearer token against
the action before the endpoint runs and hands the endpoint the caller.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ferry.errors import OCIError
from ferry.identity.caller import ANONYMOUS, Caller
from ferry.identity.grants import allowed_actions_now, password_principal
from ferry.identity.login import authenticate_basic, basic_identity
from ferry.identity.registry_tokens import Scope
from ferry.identity.service import Principal, acting_principal, allowed_actions, allowed_actions_acting
from ferry.identity.temporary_login import expiry_of
from ferry.identity.throttle import LoginThrottled
from ferry.metadata.db import Database
from ferry.names import invalid_image_name, parse_image_name
from ferry.state import CALLER, state

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A registry endpoint: it receives the caller that `requires` authenticated and authorized.
Endpoint = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]
# Actions an endpoint can require: a repository action on match_info["name"], or "login" for
# endpoints that only need a valid token (GET /v2/, the catalog).
REPOSITORY_ACTIONS = ("pull", "push", "delete")


def requires(action: str) -> Callable[[Endpoint], Handler]:
    """Wraps an endpoint: the request's token must grant `action`; the endpoint gets the caller."""

    def wrap(endpoint: Endpoint) -> Handler:
        @functools.wraps(endpoint)
        async def guarded(request: web.Request) -> web.StreamResponse:
            caller = await authorize(request, action)
            request[CALLER] = caller.name  # for the access line
            return await endpoint(request, caller)

        return guarded

    return wrap


async def authorize(request: web.Request, action: str) -> Caller:
    """The caller, when its bearer token grants `action` on the named repository; else the
    challenge that tells the client which token to fetch."""
    name = request.match_info.get("name")
    if name is not None and parse_image_name(name) is None:
        raise OCIError(400, "NAME_INVALID", invalid_image_name(name), {"name": name})
    caller = _bearer_caller(request)
    if caller is None:
        raise _challenge(request, name, action, error=None)
    if name is not None and not caller.may(name, action):
        raise _challenge(request, name, action, error="insufficient_scope", caller=caller)
    if name is not None and (source := await _mount_source_to_challenge(request, caller)):
        raise _challenge(request, name, action, "insufficient_scope", caller, also=source)
    return caller


async def _mount_source_to_challenge(request: web.Request, caller: Caller) -> str | None:
    """The `from` repository of a mount whose pull the token lacks but the caller would be granted.

    Distribution challenges for `repository:<from>:pull` so that clients which ask for exactly
    the challenged scopes can mount. A caller who may not read the source is not challenged (its
    mount becomes an upload), so it cannot loop on a scope it will never get.
    """
    source = request.query.get("from")
    if request.method != "POST" or "mount" not in request.query or not source or caller.anonymous:
        return None
    image = parse_image_name(source)
    if image is None or caller.may(source, "pull"):
        return None
    async with state(request).db.read() as session:
        principal = _principal_of(caller)
        actor = _principal_of(caller.acting) if caller.acting else None
        if actor is None:
            allowed = await allowed_actions(session, principal, image)
        else:
            allowed = await allowed_actions_acting(session, principal, actor, image)
    return source if "pull" in allowed else None


def _principal_of(caller: Caller) -> Principal:
    return Principal(caller.user_id or 0, caller.name, caller.account_id or 0, caller.is_admin)


def _bearer_caller(request: web.Request) -> Caller | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    claims = state(request).registry_tokens.verify(token.strip())
    if claims is None:
        return None
    grants: dict[str, frozenset[str]] = {}
    for entry in claims.get("access", []):
        if entry.get("type") == "repository":
            grants[entry["name"]] = grants.get(entry["name"], frozenset()) | set(entry["actions"])
    if claims.get("uid") is None:
        return Caller(user_id=None, name="anonymous", grants=grants)
    acting = claims.get("act")
    actor = None
    if isinstance(acting, dict):
        actor = Caller(
            acting.get("uid") or 0, str(acting.get("sub", "")), acting.get("acct"), bool(acting.get("adm"))
        )
    return Caller(claims["uid"], claims["sub"], claims.get("acct"), bool(claims.get("adm")), grants, actor)


def _challenge(
    request: web.Request,
    name: str | None,
    action: str,
    error: str | None,
    caller: Caller | None = None,
    also: str | None = None,
) -> OCIError:
    """401 asks for (other) credentials; 403 tells a signed-in caller its token lacks a scope.

    A signed-in caller whose token lacks the action gets 403 with the challenge (RFC 6750
    section 3.1), so clients that refresh their token only on 403 (oras-py) ask for the
    challenged scope; an anonymous caller gets 401, since signing in may help. The one case that
    stays 401 for a signed-in caller is a mount's missing `from` scope, as distribution answers.
    """
    app_state = state(request)
    parts = [
        f'realm="{app_state.base_url(request)}/v2/token"',
        f'service="{app_state.settings.region}"',
    ]
    if name is not None:
        actions = "pull" if action == "pull" else f"pull,{action}"
        scopes = [f"repository:{name}:{actions}"] + ([f"repository:{also}:pull"] if also else [])
        parts.append(f'scope="{" ".join(scopes)}"')
    if error:
        parts.append(f'error="{error}"')
    headers = {"WWW-Authenticate": "Bearer " + ",".join(parts)}
    if not error:
        return OCIError(401, "UNAUTHORIZED", headers=headers)
    detail = {"name": also or name, "action": "pull" if also else action}
    if caller is None or caller.anonymous or also is not None:
        return OCIError(401, "DENIED", detail=detail, headers=headers)
    return OCIError(403, "DENIED", _denied_message(name, action), detail, headers)


def _denied_message(name: str | None, action: str) -> str:
    """Says what right is missing without saying whether the organization exists."""
    organization = (name or "").partition("/")[0]
    needs = "read" if action == "pull" else "edit"
    return (
        f"requested access to the resource is denied: {action} on {name} needs {needs} permission "
        f"on organization '{organization}' (an organization must be created before pushing to it)"
    )


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise OCIError(401, "UNAUTHORIZED", "malformed Basic credentials") from None
    return username, password


async def token_endpoint(request: web.Request) -> web.Response:
    """Docker token protocol: GET with Basic auth, or the OAuth2 password grant by POST.

    A peer region's sync also names whom it copies for (`acting_account`, `acting_user`); the
    token then grants only what both the credential and that user may do here.
    """
    app_state = state(request)
    credentials = _basic_credentials(request)
    params: Mapping[str, str] = request.query
    scopes = request.query.getall("scope", [])
    if request.method == "POST":
        form = await request.post()
        params = {key: str(value) for key, value in form.items()}
        if form.get("grant_type") == "password":
            credentials = (params.get("username", ""), params.get("password", ""))
        scopes = [params.get("scope", "")]
    principal = await _authenticate(request, credentials) if credentials is not None else None
    if principal is not None:
        request[CALLER] = principal.name
    actor = await _actor(app_state.db, principal, params)
    access = await _grant(app_state.db, principal, actor, scopes)
    extra: dict[str, Any] = {}
    if principal is not None:
        extra = {"uid": principal.user_id, "acct": principal.account_id, "adm": principal.is_admin}
    if actor is not None:
        extra["act"] = {
            "uid": actor.user_id,
            "sub": actor.name,
            "acct": actor.account_id,
            "adm": actor.is_admin,
        }
    subject = principal.name if principal else ANONYMOUS.name
    # A temporary docker login's tokens expire with it (it authenticated, so its expiry is true).
    not_after = expiry_of(credentials[1]) if credentials is not None and "@" in credentials[0] else None
    token, issued, ttl = app_state.registry_tokens.issue(subject, access, extra, not_after)
    issued_at = datetime.fromtimestamp(issued, UTC).isoformat().replace("+00:00", "Z")
    body = {"token": token, "access_token": token, "expires_in": ttl, "issued_at": issued_at}
    return web.json_response(body)


async def _authenticate(request: web.Request, credentials: tuple[str, str]) -> Principal:
    app_state = state(request)

    async def login() -> Principal | None:
        if "@" not in credentials[0]:  # a user's password: the common case, one statement
            return await password_principal(app_state.db, *credentials)
        async with app_state.db.read() as session:
            return await authenticate_basic(session, app_state.settings.region, *credentials)

    identity, address = basic_identity(credentials[0]), app_state.client_address(request)
    try:
        principal = await app_state.login_throttle.attempt(identity, address, login)
    except LoginThrottled as throttled:
        headers = {"Retry-After": str(throttled.retry_after)}
        raise OCIError(429, "TOOMANYREQUESTS", str(throttled), headers=headers) from None
    if principal is None:
        raise OCIError(
            401,
            "UNAUTHORIZED",
            "incorrect username or password",
            headers={"WWW-Authenticate": f'Basic realm="{app_state.settings.region}"'},
        )
    return principal


async def _actor(db: Database, principal: Principal | None, params: Mapping[str, str]) -> Principal | None:
    """The user a signed-in peer says it acts for; a Principal that may do nothing when unknown."""
    account, user = params.get("acting_account"), params.get("acting_user")
    if principal is None or not (account or user):
        return None
    async with db.read() as session:
        found = await acting_principal(session, account or "", user or "")
    # Unknown here: a principal no organization knows, so the intersection grants nothing.
    return found or Principal(user_id=0, name=user or "", account_id=0, is_admin=False)


async def _grant(
    db: Database, principal: Principal | None, actor: Principal | None, scopes: list[str]
) -> list[dict[str, Any]]:
    access: list[dict[str, Any]] = []
    for text in (s for raw in scopes for s in raw.split(" ") if s):
        scope = Scope.parse(text)
        if scope is None:
            continue
        if scope.type == "registry" and scope.name == "catalog":
            access.append({"type": "registry", "name": "catalog", "actions": ["*"]})
            continue
        image = parse_image_name(scope.name)
        if scope.type != "repository" or image is None:
            continue
        wanted = set(REPOSITORY_ACTIONS if "*" in scope.actions else scope.actions)
        allowed = await allowed_actions_now(db, principal, image)
        if actor is not None and allowed:  # only what both the credential and its user may
            allowed &= await allowed_actions_now(db, actor, image)
        access.append({"type": "repository", "name": scope.name, "actions": sorted(wanted & allowed)})
    return access
