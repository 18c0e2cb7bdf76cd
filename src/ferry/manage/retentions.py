"""Retention policies (SWR "image aging"): the six SDK operations, and Ferry's on-demand run.

Shapes follow huaweicloudsdkswr.v2 (CreateRetentionRequestBody, Retention, RetentionLog);
README "Retention" says what SWR leaves open.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field, StrictInt, StrictStr

from ferry.identity.service import Principal
from ferry.images import retention
from ferry.images.retention_rules import RetentionPolicy, parse_policy, parse_rule
from ferry.manage.operations import (
    authenticated,
    content_range,
    id_param,
    json_response,
    namespace_param,
    page,
    parse_body,
    parse_filter,
    repository_param,
)
from ferry.manage.schemas import Body, rfc3339
from ferry.metadata.models import Retention, RetentionHistory
from ferry.state import state

RETENTIONS = "/v2/manage/namespaces/{namespace}/repos/{repository}/retentions"
RETENTION = RETENTIONS + "/{retention_id}"
TAG = "retentions"


# Requests


class TagSelectorBody(Body):
    kind: str = Field(max_length=16)
    pattern: str = Field(max_length=1024)


class RuleBody(Body):
    template: str = Field(max_length=32)
    # Strict: true is not the number 1, nor 2.5 the string "2.5".
    params: dict[str, StrictStr | StrictInt]
    tag_selectors: list[TagSelectorBody] = Field(default_factory=list, max_length=1000)


class RetentionBody(Body):
    algorithm: str = Field(max_length=16)
    rules: list[RuleBody] = Field(max_length=100)


# Responses


class TagSelectorView(BaseModel):
    kind: str
    pattern: str


class RuleView(BaseModel):
    template: str
    params: dict[str, str]
    tag_selectors: list[TagSelectorView]


class RetentionView(BaseModel):
    algorithm: str
    id: int
    rules: list[RuleView]
    scope: str


class RetentionCreated(BaseModel):
    id: int


class RetentionLogView(BaseModel):
    created_at: str
    id: int
    namespace: str
    repo: str
    retention_id: int
    rule_type: str
    tag: str
    digest: str  # Ferry's: which image the deleted tag named


class RetentionHistories(BaseModel):
    retention_log: list[RetentionLogView]
    total: int


class DeletedTag(BaseModel):
    tag: str
    digest: str


class RetentionRun(BaseModel):
    """Ferry's answer to an on-demand run: the tags it deleted."""

    id: int
    deleted: list[DeletedTag]


def _policy(body: RetentionBody) -> RetentionPolicy:
    rules = [
        parse_rule(
            rule.template, rule.params, [(s.kind, s.pattern) for s in rule.tag_selectors], f"rules.{i}"
        )
        for i, rule in enumerate(body.rules)
    ]
    return parse_policy(body.algorithm, rules)


def _view(found: Retention) -> RetentionView:
    return RetentionView.model_validate(
        {"algorithm": found.algorithm, "id": found.id, "rules": found.rules, "scope": found.scope}
    )


def _log_view(entry: RetentionHistory) -> RetentionLogView:
    return RetentionLogView(
        created_at=rfc3339(entry.created_at),
        id=entry.id,
        namespace=entry.namespace,
        repo=entry.repo,
        retention_id=entry.retention_id,
        rule_type=entry.rule_type,
        tag=entry.tag,
        digest=entry.digest,
    )


async def create_retention(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    policy = _policy(await parse_body(request, RetentionBody))
    retention_id = await retention.set_retention(
        state(request).db, state(request).tag_events, principal, namespace, name, policy
    )
    return json_response(RetentionCreated(id=retention_id), status=201)


async def list_retentions(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    async with state(request).db.read() as session:
        found = await retention.list_retentions(session, principal, namespace, name)
    return json_response([_view(r) for r in found])


async def show_retention(request: web.Request, principal: Principal) -> web.Response:
    namespace, name, retention_id = (
        namespace_param(request),
        repository_param(request),
        id_param(request, "retention_id"),
    )
    async with state(request).db.read() as session:
        found = await retention.show_retention(session, principal, namespace, name, retention_id)
    return json_response(_view(found))


async def update_retention(request: web.Request, principal: Principal) -> web.Response:
    namespace, name, retention_id = (
        namespace_param(request),
        repository_param(request),
        id_param(request, "retention_id"),
    )
    policy = _policy(await parse_body(request, RetentionBody))
    await retention.change_retention(
        state(request).db, state(request).tag_events, principal, namespace, name, retention_id, policy
    )
    return web.Response(status=201)


async def delete_retention(request: web.Request, principal: Principal) -> web.Response:
    namespace, name, retention_id = (
        namespace_param(request),
        repository_param(request),
        id_param(request, "retention_id"),
    )
    async with state(request).db.write() as session:
        await retention.delete_retention(session, principal, namespace, name, retention_id)
    return web.Response(status=200)


async def list_retention_histories(request: web.Request, principal: Principal) -> web.Response:
    """`limit` and `offset` as query parameters or in `filter=limit::N|offset::M`; with them the
    answer carries Content-Range, as SWR's does."""
    namespace, name = namespace_param(request), repository_param(request)
    filters = parse_filter(request)
    values = (
        filters
        if filters is not None
        else {k: request.query[k] for k in ("limit", "offset") if k in request.query}
    )
    offset, limit = page(values, default_limit=1000)
    async with state(request).db.read() as session:
        found = await retention.list_histories(session, principal, namespace, name, offset, limit)
    logs = [_log_view(entry) for entry in found.entries]
    headers = content_range(offset, len(logs), found.total) if "limit" in values else None
    return json_response(RetentionHistories(retention_log=logs, total=found.total), headers=headers)


async def run_retention(request: web.Request, principal: Principal) -> web.Response:
    namespace, name, retention_id = (
        namespace_param(request),
        repository_param(request),
        id_param(request, "retention_id"),
    )
    report = await retention.run_now(
        state(request).db, state(request).tag_events, principal, namespace, name, retention_id
    )
    deleted = [DeletedTag(tag=d.tag, digest=d.digest) for d in report.deleted]
    return json_response(RetentionRun(id=report.retention_id, deleted=deleted))


OPERATIONS = [
    authenticated(
        create_retention,
        "POST",
        RETENTIONS,
        "Create the repository's retention policy (it runs at once)",
        status=201,
        body=RetentionBody,
        response=RetentionCreated,
        tag=TAG,
    ),
    authenticated(
        list_retentions, "GET", RETENTIONS, "List retention policies", response=list[RetentionView], tag=TAG
    ),
    # Before RETENTION: "histories" is not a retention id.
    authenticated(
        list_retention_histories,
        "GET",
        RETENTIONS + "/histories",
        "List the tags retention deleted",
        response=RetentionHistories,
        query=("limit", "offset", "filter"),
        tag=TAG,
    ),
    authenticated(
        show_retention, "GET", RETENTION, "Show a retention policy", response=RetentionView, tag=TAG
    ),
    authenticated(
        update_retention,
        "PATCH",
        RETENTION,
        "Replace a retention policy's rules (it runs at once)",
        status=201,
        body=RetentionBody,
        tag=TAG,
    ),
    authenticated(delete_retention, "DELETE", RETENTION, "Delete a retention policy", tag=TAG),
    authenticated(
        run_retention,
        "POST",
        RETENTION + "/run",
        "Run a retention policy now (Ferry's)",
        response=RetentionRun,
        tag=TAG,
    ),
]
