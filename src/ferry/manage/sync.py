"""The six image sync operations (SWR-API.md 2a and 8)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ferry.errors import swr_bad_request
from ferry.identity.service import Principal
from ferry.manage.operations import (
    authenticated,
    content_range,
    json_response,
    namespace_param,
    page,
    parse_body,
    parse_filter,
    repository_param,
)
from ferry.manage.schemas import rfc3339
from ferry.metadata.models import JobStatus, SyncJob, SyncRule
from ferry.names import invalid_tag, is_tag
from ferry.state import state
from ferry.sync import rules

SYNC = "/v2/manage/namespaces/{namespace}/repos/{repository}"
TAG = "sync"


class _Camel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SyncTarget(_Camel):
    """The (target region, target organization) pair that names a rule or a copy."""

    remote_region_id: str = Field(alias="remoteRegionId", min_length=1, max_length=64)
    remote_namespace: str = Field(alias="remoteNamespace", min_length=1, max_length=64)


class CreateSyncRuleBody(SyncTarget):
    sync_auto: bool = Field(default=False, alias="syncAuto")
    override: bool = False


class DeleteSyncRuleBody(SyncTarget):
    pass


class ManualSyncBody(SyncTarget):
    image_tag: list[str] = Field(alias="imageTag", max_length=1000)
    override: bool = False


class SyncRepo(BaseModel):
    createdAt: str
    domainID: str
    domainName: str
    id: int
    namespace: str
    override: bool
    remoteNamespace: str
    remoteRegionId: str
    repoName: str
    syncAuto: bool
    updatedAt: str


class SyncJobView(BaseModel):
    createdAt: str
    domainID: str
    domainName: str
    id: int
    namespace: str
    override: bool
    remoteNamespace: str
    remoteRegionId: str
    repoName: str
    status: str
    syncOperatorId: str
    syncOperatorName: str
    tag: str
    updatedAt: str
    digest: str | None
    bytes: int
    blobsSkipped: int
    blobsMounted: int
    message: str
    startedAt: str | None
    finishedAt: str | None
    attempts: int
    trigger: str


class RegionInfo(BaseModel):
    regionID: str
    registryURL: str


def target_of(body: SyncTarget) -> rules.SyncTarget:
    return rules.SyncTarget(body.remote_region_id, body.remote_namespace)


async def create_sync_rule(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    body = await parse_body(request, CreateSyncRuleBody)
    app = state(request)
    await rules.create_rule(
        app.db, app.peer_clients, principal, namespace, name, target_of(body), body.sync_auto, body.override
    )
    return web.Response(status=200)


def _rule_view(rule: SyncRule, namespace: str, name: str, domain_id: str, domain_name: str) -> SyncRepo:
    return SyncRepo(
        createdAt=rfc3339(rule.created_at),
        domainID=domain_id,
        domainName=domain_name,
        id=rule.id,
        namespace=namespace,
        override=rule.override,
        remoteNamespace=rule.remote_namespace,
        remoteRegionId=rule.remote_region_id,
        repoName=name,
        syncAuto=rule.sync_auto,
        updatedAt=rfc3339(rule.updated_at),
    )


async def list_sync_rules(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    async with state(request).db.read() as session:
        found, account = await rules.list_rules(session, principal, namespace, name)
    return json_response([_rule_view(r, namespace, name, account.domain_id, account.name) for r in found])


async def delete_sync_rule(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    body = await parse_body(request, DeleteSyncRuleBody)
    async with state(request).db.write() as session:
        await rules.delete_rule(session, principal, namespace, name, target_of(body))
    return web.Response(status=200)


async def manual_sync(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    body = await parse_body(request, ManualSyncBody)
    if not body.image_tag:
        raise swr_bad_request("imageTag must list at least one tag", "SVCSTG.SWR.4001014")
    bad = [t for t in body.image_tag if not is_tag(t)]
    if bad:
        raise swr_bad_request(invalid_tag(bad[0]), "SVCSTG.SWR.4009021")
    app = state(request)
    failed = await rules.sync_now(
        app.db, app.peer_clients, principal, namespace, name, body.image_tag, target_of(body), body.override
    )
    return json_response(failed)


def _moment(value: datetime | None) -> str | None:
    """Ferry's startedAt / finishedAt, in milliseconds (SWR's own times are whole seconds): a
    job's duration is often under a second."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _job_view(job: SyncJob, domain_id: str, domain_name: str) -> SyncJobView:
    return SyncJobView(
        createdAt=rfc3339(job.created_at),
        domainID=domain_id,
        domainName=domain_name,
        id=job.id,
        namespace=job.namespace,
        override=job.override,
        remoteNamespace=job.remote_namespace,
        remoteRegionId=job.remote_region_id,
        repoName=job.repo_name,
        status=job.status,
        syncOperatorId=job.operator_id,
        syncOperatorName=job.operator_name,
        tag=job.tag,
        updatedAt=rfc3339(job.updated_at),
        digest=job.digest,
        bytes=job.bytes_sent,
        blobsSkipped=job.blobs_skipped,
        blobsMounted=job.blobs_mounted,
        message=job.message,
        startedAt=_moment(job.started_at),
        finishedAt=_moment(job.finished_at),
        attempts=job.attempts,
        trigger=job.trigger,
    )


def _job_filter(filters: dict[str, str]) -> rules.JobFilter:
    """Ferry's own filter keys beside SWR's (SWR has none for this): `status::failed,timeout`
    and `since::<ISO 8601 time>` (records created at or after it; UTC when no offset is given)."""
    statuses = frozenset(s for s in filters.get("status", "").split(",") if s)
    unknown = sorted(statuses - set(JobStatus))
    if unknown:
        known = ", ".join(JobStatus)
        raise swr_bad_request(f"invalid status {unknown[0]!r}: use {known}", "SVCSTG.SWR.4001035")
    since = None
    if filters.get("since"):
        try:
            parsed = datetime.fromisoformat(filters["since"])
            since = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
        except (ValueError, OverflowError):  # OverflowError: year 1 in a zone east of UTC
            raise swr_bad_request(
                f"invalid since {filters['since']!r}: use an ISO 8601 time", "SVCSTG.SWR.4001035"
            ) from None
    return rules.JobFilter(statuses, since)


async def list_sync_jobs(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    filters = parse_filter(request)
    if filters is None or "limit" not in filters or "offset" not in filters:
        raise swr_bad_request("filter with limit::N|offset::M is required", "SVCSTG.SWR.4001035")
    offset, limit = page(filters)
    order = filters.get("order", "desc")
    if order not in ("asc", "desc"):
        raise swr_bad_request("order must be asc or desc", "SVCSTG.SWR.4001035")
    kept = _job_filter(filters)
    async with state(request).db.read() as session:
        found = await rules.list_jobs(
            session, principal, namespace, name, offset, limit, order == "desc", kept
        )
    views = [_job_view(j, found.account.domain_id, found.account.name) for j in found.jobs]
    return json_response(views, headers=content_range(offset, len(views), found.total))


async def list_sync_regions(request: web.Request, principal: Principal) -> web.Response:
    settings = state(request).settings
    regions = [RegionInfo(regionID=p.id, registryURL=p.url) for p in settings.peer_regions()]
    return json_response(regions)


OPERATIONS = [
    authenticated(
        create_sync_rule,
        "POST",
        SYNC + "/sync_repo",
        "Create or update an automatic sync rule",
        body=CreateSyncRuleBody,
        tag=TAG,
    ),
    authenticated(
        list_sync_rules,
        "GET",
        SYNC + "/sync_repo",
        "List automatic sync rules",
        response=list[SyncRepo],
        tag=TAG,
    ),
    authenticated(
        delete_sync_rule,
        "DELETE",
        SYNC + "/sync_repo",
        "Delete an automatic sync rule",
        body=DeleteSyncRuleBody,
        tag=TAG,
    ),
    authenticated(
        manual_sync,
        "POST",
        SYNC + "/sync_images",
        "Sync existing tags now",
        body=ManualSyncBody,
        response=list[str],
        tag=TAG,
    ),
    authenticated(
        list_sync_jobs,
        "GET",
        SYNC + "/sync_job",
        "List sync records",
        response=list[SyncJobView],
        query=("filter",),
        tag=TAG,
    ),
    authenticated(
        list_sync_regions,
        "GET",
        "/v2/manage/regions",
        "List regions images can sync to",
        response=list[RegionInfo],
        tag=TAG,
    ),
]
