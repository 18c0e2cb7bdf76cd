"""Authentication for management and IAM routes, in one place: AK/SK signature or X-Auth-Token."""

from __future__ import annotations

import functools

from aiohttp import web

from ferry.errors import SWRError, swr_unauthorized
from ferry.identity import access_keys, signing
from ferry.identity.iam_tokens import TokenError
from ferry.identity.service import Principal, principal_by_id
from ferry.identity.throttle import LoginThrottled, key_identity
from ferry.manage.operations import Handler, Operation, Public
from ferry.metadata.models import Account
from ferry.state import CALLER, SIGNING_KEY, AppState, state

_PREFIX = "Incorrect IAM authentication information: "


def guard(operation: Operation) -> Handler:
    """The handler the router calls for an operation: a public one as it is, any other wrapped
    so that it runs only for a signed-in caller, whom it receives."""
    if isinstance(operation.access, Public):
        return operation.access.handler
    endpoint = operation.access.endpoint

    @functools.wraps(endpoint)
    async def authenticated(request: web.Request) -> web.StreamResponse:
        principal = await authenticate(request)
        request[CALLER] = principal.name  # for the access line
        return await endpoint(request, principal)

    return authenticated


async def authenticate(request: web.Request) -> Principal:
    """The caller of a management request: an AK/SK signature or an IAM token (X-Auth-Token)."""
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith(signing.ALGORITHM):
        return await _signed_principal(request, authorization)
    if token := request.headers.get("X-Auth-Token"):
        return await _token_principal(state(request), token)
    raise swr_unauthorized(_PREFIX + "x-auth-token not found")


async def _token_principal(app: AppState, token: str) -> Principal:
    async with app.db.read() as session:
        try:
            return await app.iam_tokens.verify(session, token)
        except TokenError as error:
            raise swr_unauthorized(_PREFIX + str(error)) from None


def _check_signed_headers(
    request: web.Request, parsed: signing.SignedAuthorization, headers: dict[str, str], app: AppState
) -> None:
    """Each signed header once (the signature and the handler must see the same value), the host
    and date among them, and the host this region's own."""
    repeated = [name for name in parsed.signed_headers if len(request.headers.getall(name, [])) > 1]
    if repeated:
        raise signing.SignatureError(f"verify aksk signature fail: header {repeated[0]} sent twice")
    signing.check_coverage(parsed, headers, functools.partial(_own_host, request, parsed, app))


def _own_host(request: web.Request, parsed: signing.SignedAuthorization, app: AppState, host: str) -> bool:
    """Whether the signed Host names this region.

    Its configured names (public URL, listen address) always do. Behind a trusted proxy without
    a public URL, Ferry cannot know its public name, and a proxy passes on whatever Host a client
    sent, so the Host the proxy forwards is accepted only when the signature also covers
    X-Project-Id: the project (checked against the key's account, `check_project`) binds the
    request to this region, and a request signed for another region cannot replay here.
    """
    if app.settings.accepts_host(host):
        return True
    forwarded = app.behind_trusted_proxy(request) and not app.settings.public_url
    bound = "x-project-id" in parsed.signed_headers
    return forwarded and bound and host.strip().lower() == app.client_host(request).lower()


async def _signed_principal(request: web.Request, authorization: str) -> Principal:
    app = state(request)
    try:
        parsed = signing.parse_authorization(authorization)
    except signing.SignatureError as error:
        raise swr_unauthorized(_PREFIX + str(error)) from None
    identity, address = key_identity(parsed.access_key), app.client_address(request)
    try:
        app.login_throttle.check(identity, address)
    except LoginThrottled as throttled:
        message = _PREFIX + "AK access failed to reach the limit,forbidden"
        raise SWRError(401, "APIGW.0301", message, {"Retry-After": str(throttled.retry_after)}) from None
    async with app.db.read() as session:
        key = await access_keys.usable_key(session, parsed.access_key)
        secret_key, user_id = (key.secret_key, key.user_id) if key else ("", 0)
    if key is None:
        app.login_throttle.failed(identity, address)
        raise swr_unauthorized(_PREFIX + "Get secretKey failed, ak not exist")
    headers = {name.lower(): value for name, value in request.headers.items()}
    body = await request.read()
    try:
        _check_signed_headers(request, parsed, headers, app)
        signing.verify(
            parsed,
            secret_key,
            request.method,
            request.raw_path.split("?", 1)[0],
            request.query_string,
            headers,
            body,
        )
    except signing.SignatureError as error:
        app.login_throttle.failed(identity, address)
        raise swr_unauthorized(_PREFIX + str(error)) from None
    app.login_throttle.succeeded(identity, address)
    async with app.db.read() as session:
        principal = await principal_by_id(session, user_id)
        account = await session.get(Account, principal.account_id) if principal else None
    if principal is None or account is None:
        raise swr_unauthorized(_PREFIX + "Get secretKey failed, ak not exist")
    try:
        signing.check_project(parsed, headers, account.project_id)
    except signing.SignatureError as error:
        raise swr_unauthorized(_PREFIX + str(error)) from None
    request[SIGNING_KEY] = parsed.access_key  # a temporary login binds to it (manage/account.py)
    return principal
