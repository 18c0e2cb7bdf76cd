"""SWR's temporary docker login: `create_secret` (POST /v2/manage/utils/secret?projectname=) and
`create_authorization_token` (POST /v2/manage/utils/authorizationtoken). Both answer the login
command in `X-Swr-Dockerlogin`, its expiry in `X-Swr-Expireat`, and a docker config `auths`
document; identity/temporary_login.py makes and checks the credential."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel

from ferry.errors import swr_bad_request
from ferry.identity.service import Principal
from ferry.identity.temporary_login import DEFAULT_SECONDS, create_temporary_login
from ferry.manage.operations import authenticated
from ferry.parsing import whole_number
from ferry.state import SIGNING_KEY, state

TAG = "login"


class AuthInfo(BaseModel):
    auth: str


class LoginSecret(BaseModel):
    auths: dict[str, AuthInfo]


async def _login(request: web.Request, principal: Principal) -> web.Response:
    app = state(request)
    raw = request.query.get("duration_seconds", str(DEFAULT_SECONDS))
    seconds = whole_number(raw)
    if seconds is None:
        raise swr_bad_request(f"duration_seconds must be a whole number of seconds, not {raw!r}")
    async with app.db.read() as session:
        login = await create_temporary_login(
            session, principal, app.settings.region, seconds, request.get(SIGNING_KEY)
        )
    host = app.base_url(request).split("://", 1)[-1]
    auth = base64.b64encode(f"{login.username}:{login.password}".encode()).decode()
    expire_at = datetime.fromtimestamp(login.expire_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {
        "X-Swr-Dockerlogin": f"docker login -u {login.username} -p {login.password} {host}",
        "X-Swr-Expireat": expire_at,
        "Cache-Control": "no-store",
    }
    body = LoginSecret(auths={host: AuthInfo(auth=auth)})
    return web.json_response(body.model_dump(), headers=headers)


async def create_secret(request: web.Request, principal: Principal) -> web.Response:
    project = request.query.get("projectname")
    region = state(request).settings.region
    if project is not None and project != region:
        raise swr_bad_request(f"projectname {project!r} is not this region's project ({region})")
    return await _login(request, principal)


async def create_authorization_token(request: web.Request, principal: Principal) -> web.Response:
    return await _login(request, principal)


_SAID = (
    "(user <region>@<AK> of the access key the call was signed with, else the caller's newest; "
    "duration_seconds 900 to 86400, default 86400; it stops working at its expiry, or at once "
    "when the key is disabled)"
)
OPERATIONS = [
    authenticated(
        create_secret,
        "POST",
        "/v2/manage/utils/secret",
        f"A temporary docker login {_SAID}",
        response=LoginSecret,
        query=("projectname", "duration_seconds"),
        tag=TAG,
    ),
    authenticated(
        create_authorization_token,
        "POST",
        "/v2/manage/utils/authorizationtoken",
        f"A temporary docker login {_SAID}",
        response=LoginSecret,
        query=("duration_seconds",),
        tag=TAG,
    ),
]
