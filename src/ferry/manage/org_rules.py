"""Organization sync rules (Ferry's extension beside SWR's per-repository rules): create or
replace, list, delete. README "Organization rules and filters" says what the filters mean."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from ferry.config import byte_rate
from ferry.errors import swr_bad_request
from ferry.identity.service import Principal
from ferry.manage.operations import authenticated, id_param, json_response, namespace_param, parse_body
from ferry.manage.schemas import rfc3339
from ferry.manage.sync import SyncTarget, target_of
from ferry.metadata.models import OrgSyncRule
from ferry.state import state
from ferry.sync import filters, org_rules, pauses
from ferry.sync.platforms import MAX_PLATFORMS, parse_platforms

RULES = "/v2/manage/namespaces/{namespace}/sync_rules"
RULE = RULES + "/{rule_id}"
TAG = "sync"
MAX_GRACE_SECONDS = 30 * 24 * 3600


class NamePatterns(BaseModel):
    """Globs (`*`, `?`, `**`, `{a,b}`, `[a-z]`) or, prefixed `re:`, regular expressions matching the
    whole name. A name passes when it matches an include (any, when there are none) and no exclude."""

    include: list[str] = Field(default_factory=list, max_length=filters.MAX_PATTERNS)
    exclude: list[str] = Field(default_factory=list, max_length=filters.MAX_PATTERNS)


class RuleFilters(BaseModel):
    repositories: NamePatterns = Field(default_factory=NamePatterns)
    tags: NamePatterns = Field(default_factory=NamePatterns)


class CreateOrgRuleBody(SyncTarget):
    override: bool = False
    filters: RuleFilters = Field(default_factory=RuleFilters)
    # Also queue a copy of every tag already in the organization that the filters pass.
    sync_existing: bool = Field(default=False, alias="syncExisting")
    # Opt-in deletion sync (README "Deletion sync").
    sync_deletes: bool = Field(default=False, alias="syncDeletes")
    delete_grace_seconds: int = Field(default=3600, ge=0, le=MAX_GRACE_SECONDS, alias="deleteGraceSeconds")
    sync_retention_deletes: bool = Field(default=False, alias="syncRetentionDeletes")
    # Only these platforms of an index ("linux/amd64", "linux/arm64/v8"); empty: every one.
    platforms: list[str] = Field(default_factory=list, max_length=MAX_PLATFORMS)
    # Bytes per second the rule's copies share ("20MiB", or a number); none: the peer's cap only.
    bandwidth: int | str | None = None


class OrgRuleView(BaseModel):
    id: int
    namespace: str
    remoteRegionId: str
    remoteNamespace: str
    syncAuto: bool
    override: bool
    filters: RuleFilters
    syncDeletes: bool
    deleteGraceSeconds: int
    syncRetentionDeletes: bool
    platforms: list[str]
    bandwidth: int | None
    paused: bool
    createdAt: str
    updatedAt: str


class OrgRuleCreated(OrgRuleView):
    queuedJobs: int


def _view(rule: OrgSyncRule, namespace: str, paused: bool = False) -> dict[str, object]:
    return {
        "id": rule.id,
        "namespace": namespace,
        "remoteRegionId": rule.remote_region_id,
        "remoteNamespace": rule.remote_namespace,
        "syncAuto": True,
        "override": rule.override,
        "filters": RuleFilters.model_validate(filters.from_json(rule.filters).as_json()),
        "syncDeletes": rule.sync_deletes,
        "deleteGraceSeconds": rule.delete_grace_seconds,
        "syncRetentionDeletes": rule.sync_retention_deletes,
        "platforms": list(rule.platforms or []),
        "bandwidth": rule.bandwidth,
        "paused": paused,
        "createdAt": rfc3339(rule.created_at),
        "updatedAt": rfc3339(rule.updated_at),
    }


def _rate(value: int | str | None) -> int | None:
    if value is None:
        return None
    try:
        return byte_rate(value)
    except ValueError as error:
        raise swr_bad_request(f"invalid parameter bandwidth: {error}", "SVCSTG.SWR.4001025") from None


async def create_org_rule(request: web.Request, principal: Principal) -> web.Response:
    namespace = namespace_param(request)
    body = await parse_body(request, CreateOrgRuleBody)
    wanted = body.filters
    rule_filter = filters.rule_filter(
        (wanted.repositories.include, wanted.repositories.exclude), (wanted.tags.include, wanted.tags.exclude)
    )
    app = state(request)
    rule, queued = await org_rules.create_org_rule(
        app.db,
        app.peer_clients,
        principal,
        namespace,
        target_of(body),
        body.override,
        rule_filter,
        body.sync_existing,
        org_rules.DeletionSync(body.sync_deletes, body.delete_grace_seconds, body.sync_retention_deletes),
        parse_platforms(body.platforms),
        _rate(body.bandwidth),
    )
    return json_response(OrgRuleCreated.model_validate(_view(rule, namespace) | {"queuedJobs": queued}))


async def list_org_rules(request: web.Request, principal: Principal) -> web.Response:
    namespace = namespace_param(request)
    async with state(request).db.read() as session:
        found = await org_rules.list_org_rules(session, principal, namespace)
        held = await pauses.paused_organization_targets(session, namespace)
        views = [
            OrgRuleView.model_validate(
                _view(rule, namespace, (rule.remote_region_id, rule.remote_namespace) in held)
            )
            for rule in found
        ]
        return json_response(views)


async def delete_org_rule(request: web.Request, principal: Principal) -> web.Response:
    namespace, rule_id = namespace_param(request), id_param(request, "rule_id")
    async with state(request).db.write() as session:
        await org_rules.delete_org_rule(session, principal, namespace, rule_id)
    return web.Response(status=204)


OPERATIONS = [
    authenticated(
        create_org_rule,
        "POST",
        RULES,
        "Create or replace an organization sync rule: automatic sync of every repository of the "
        "organization that passes the filters, also those created later (Ferry extension; the "
        "account's administrators)",
        body=CreateOrgRuleBody,
        response=OrgRuleCreated,
        tag=TAG,
    ),
    authenticated(
        list_org_rules, "GET", RULES, "List an organization's sync rules", response=list[OrgRuleView], tag=TAG
    ),
    authenticated(
        delete_org_rule,
        "DELETE",
        RULE,
        "Delete an organization sync rule; its waiting automatic jobs are cancelled",
        status=204,
        tag=TAG,
    ),
]
