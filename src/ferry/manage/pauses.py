"""Pause and resume a rule's copies (Ferry's extension): a repository rule (by its target, as
SWR names rules) or an organization rule (by id). The account's administrators, as for rules."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from ferry.identity.service import Principal
from ferry.manage.operations import (
    authenticated,
    id_param,
    json_response,
    namespace_param,
    parse_body,
    repository_param,
)
from ferry.manage.org_rules import RULE
from ferry.manage.sync import SYNC, SyncTarget, target_of
from ferry.state import state
from ferry.sync import pauses

TAG = "sync"


class PausedView(BaseModel):
    paused: bool
    scope: str  # what the pause holds, in words


async def _repository_rule(request: web.Request, principal: Principal, paused: bool) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    body = await parse_body(request, SyncTarget)
    async with state(request).db.write() as session:
        scope = await pauses.pause_repository_rule(
            session, principal, namespace, name, target_of(body), paused
        )
    return json_response(PausedView(paused=paused, scope=str(scope)))


async def _org_rule(request: web.Request, principal: Principal, paused: bool) -> web.Response:
    namespace, rule_id = namespace_param(request), id_param(request, "rule_id")
    async with state(request).db.write() as session:
        scope = await pauses.pause_org_rule(session, principal, namespace, rule_id, paused)
    return json_response(PausedView(paused=paused, scope=str(scope)))


async def pause_sync_rule(request: web.Request, principal: Principal) -> web.Response:
    return await _repository_rule(request, principal, True)


async def resume_sync_rule(request: web.Request, principal: Principal) -> web.Response:
    return await _repository_rule(request, principal, False)


async def pause_org_rule(request: web.Request, principal: Principal) -> web.Response:
    return await _org_rule(request, principal, True)


async def resume_org_rule(request: web.Request, principal: Principal) -> web.Response:
    return await _org_rule(request, principal, False)


_HOLD = "waiting copies stay queued, a running one finishes"
OPERATIONS = [
    authenticated(
        pause_sync_rule,
        "POST",
        SYNC + "/sync_repo/pause",
        f"Pause the repository's copies to a rule's target ({_HOLD}; Ferry extension)",
        body=SyncTarget,
        response=PausedView,
        tag=TAG,
    ),
    authenticated(
        resume_sync_rule,
        "POST",
        SYNC + "/sync_repo/resume",
        "Resume the repository's copies to a rule's target (Ferry extension)",
        body=SyncTarget,
        response=PausedView,
        tag=TAG,
    ),
    authenticated(
        pause_org_rule,
        "POST",
        RULE + "/pause",
        f"Pause an organization rule's copies ({_HOLD}; Ferry extension)",
        response=PausedView,
        tag=TAG,
    ),
    authenticated(
        resume_org_rule,
        "POST",
        RULE + "/resume",
        "Resume an organization rule's copies (Ferry extension)",
        response=PausedView,
        tag=TAG,
    ),
]
