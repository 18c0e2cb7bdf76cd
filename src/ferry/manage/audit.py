"""POST …/sync_audit: audit a repository against its sync targets, and optionally repair it.

Ferry's extension beside SWR's sync operations (README "Audit and self-repair"). An audit of a
large repository is paced and can take minutes: past a few seconds the answer starts (200,
JSON) and carries a space every few seconds until the document follows, so neither a client's
read timeout nor a proxy's idle timeout ends it. Leading whitespace is valid JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web
from pydantic import BaseModel, Field

from ferry.identity.service import Principal
from ferry.manage.operations import (
    authenticated,
    json_response,
    namespace_param,
    parse_body,
    repository_param,
)
from ferry.manage.schemas import Body
from ferry.state import state
from ferry.sync.audit import AuditOptions, requested_audit
from ferry.sync.audit_report import AuditReport

AUDIT = "/v2/manage/namespaces/{namespace}/repos/{repository}/sync_audit"
TAG = "sync"
# An answer that is not ready after this long starts streaming, with a space every KEEPALIVE.
PATIENCE_SECONDS = 5.0
KEEPALIVE_SECONDS = 10.0


class AuditBody(Body):
    remoteRegionId: str | None = Field(default=None, min_length=1, max_length=64)
    repair: bool = False
    verifySample: float = Field(default=0.0, ge=0, le=1)


class DriftView(BaseModel):
    kind: str
    tag: str
    target: str
    digest: str
    detail: str


class AuditView(BaseModel):
    auditId: int | None
    repository: str
    tagsChecked: int
    pending: int
    notSynced: int
    requests: int
    drift: list[DriftView]
    repaired: int
    targets: list[str]
    errors: list[str]


async def sync_audit(request: web.Request, principal: Principal) -> web.StreamResponse:
    namespace, name = namespace_param(request), repository_param(request)
    body = await parse_body(request, AuditBody)
    app = state(request)
    options = AuditOptions(
        region=body.remoteRegionId, verify_sample=body.verifySample, rate=app.settings.audit_rate
    )
    audit = asyncio.ensure_future(
        requested_audit(app.db, app.store, app.peer_clients, principal, namespace, name, options, body.repair)
    )
    try:
        done, _ = await asyncio.wait({audit}, timeout=PATIENCE_SECONDS)
        if done:
            return json_response(audit.result().view())
        return await _stream(request, audit)
    finally:
        if not audit.done():  # the caller went away
            audit.cancel()
            with contextlib.suppress(BaseException):
                await audit


async def _stream(request: web.Request, audit: asyncio.Future[AuditReport]) -> web.StreamResponse:
    """The answer of a long audit: spaces while it runs, then the document (or, if the audit
    failed after the answer began, SWR's error body: the status can no longer say it)."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    while True:
        done, _ = await asyncio.wait({audit}, timeout=KEEPALIVE_SECONDS)
        if done:
            break
        await response.write(b" ")
    try:
        document: dict[str, object] = audit.result().view()
    except Exception as error:
        document = {"error_code": "SVCSTG.SWR.5000007", "error_msg": f"audit failed: {error}"}
    await response.write(json.dumps(document).encode())
    await response.write_eof()
    return response


OPERATIONS = [
    authenticated(
        sync_audit,
        "POST",
        AUDIT,
        "Audit the repository's sync targets (drift), and optionally queue repairs",
        body=AuditBody,
        response=AuditView,
        tag=TAG,
    ),
]
