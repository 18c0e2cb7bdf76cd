"""The six image sync operations (SWR-API.md 2a and 8)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.errors import SWRError, swr_bad_request, swr_forbidden
from ferry.identity.organizations import account_of
from ferry.identity.service import Principal
from ferry.manage.access import EDIT, MANAGE, READ, repository_for
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
from ferry.metadata.models import Repository, SyncJob, SyncRule
from ferry.names import is_organization, is_tag
from ferry.state import AppState, state
from ferry.sync import rules
from ferry.sync.authorization import SyncRefused, actor_of, check_target, may_configure_rules
from ferry.sync.peer_client import PeerError
from ferry.sync.triggers import Target

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


def _check_target(app: AppState, region: str, namespace: str) -> None:
    valid = [p.id for p in app.settings.peer_regions()]
    if region not in valid:
        names = ", ".join(valid) or "none configured"
        raise swr_bad_request(
            f"invalid remoteRegionId {region!r}: valid target regions are {names}", "SVCSTG.SWR.4000014"
        )
    if not is_organization(namespace):
        raise swr_bad_request(f"invalid remoteNamespace {namespace!r}", "SVCSTG.SWR.4001028")


async def _check_target_region(
    app: AppState, principal: Principal, target: SyncTarget, repository: str, *, unreachable_ok: bool = False
) -> None:
    """The target region must let the caller push there (sync/authorization.py).

    Unreachable: a rule is not stored (500), a manual sync queues its jobs, which check again.
    """
    region, namespace = target.remote_region_id, target.remote_namespace
    async with app.db.read() as session:
        actor = await actor_of(session, principal)
    try:
        await check_target(app.peer_clients[region], actor, namespace, repository)
    except SyncRefused as refused:
        raise SWRError(404, "SVCSTG.SWR.4040058", str(refused)) from None
    except PeerError as error:
        if unreachable_ok and error.retryable:
            return
        raise SWRError(
            500,
            "SVCSTG.SWR.5000046",
            f"cannot check the target organization in region {region}: {error}; "
            f"check that {region} is up and the peer credential configured for it",
        ) from None


async def _rule_repository(
    session: AsyncSession, principal: Principal, namespace: str, name: str
) -> Repository:
    """The source repository, when the caller may configure automatic sync on it (SWR: only the
    account's administrators)."""
    visible, repository = await repository_for(session, principal, namespace, name, MANAGE)
    if not may_configure_rules(principal, visible.organization):
        raise swr_forbidden(
            f"Insufficient permissions: only administrators of the account owning organization "
            f"'{namespace}' may configure automatic sync"
        )
    return repository


async def create_sync_rule(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    body = await parse_body(request, CreateSyncRuleBody)
    app = state(request)
    _check_target(app, body.remote_region_id, body.remote_namespace)
    async with app.db.read() as session:
        await _rule_repository(session, principal, namespace, name)
    await _check_target_region(app, principal, body, name)
    async with app.db.write() as session:
        repo = await _rule_repository(session, principal, namespace, name)
        await rules.upsert_rule(
            session,
            repo,
            body.remote_region_id,
            body.remote_namespace,
            body.sync_auto,
            body.override,
            principal.user_id,
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
        visible, repo = await repository_for(session, principal, namespace, name, READ)
        account = await account_of(session, visible.organization.account_id)
        found = await rules.rules_of(session, repo.id)
    return json_response([_rule_view(r, namespace, name, account.domain_id, account.name) for r in found])


async def delete_sync_rule(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    body = await parse_body(request, DeleteSyncRuleBody)
    async with state(request).db.write() as session:
        repo = await _rule_repository(session, principal, namespace, name)
        rule = await rules.find_rule(session, repo.id, body.remote_region_id, body.remote_namespace)
        if rule is None:
            raise SWRError(
                404,
                "SVCSTG.SWR.4040083",
                f"no sync rule to {body.remote_region_id}/{body.remote_namespace} on {namespace}/{name}",
            )
        await session.delete(rule)
    return web.Response(status=200)


async def manual_sync(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    body = await parse_body(request, ManualSyncBody)
    if not body.image_tag:
        raise swr_bad_request("imageTag must list at least one tag", "SVCSTG.SWR.4001014")
    bad = [t for t in body.image_tag if not is_tag(t)]
    if bad:
        raise swr_bad_request(f"invalid image tag {bad[0]!r}", "SVCSTG.SWR.4009021")
    app = state(request)
    _check_target(app, body.remote_region_id, body.remote_namespace)
    async with app.db.read() as session:
        await repository_for(session, principal, namespace, name, EDIT)
    await _check_target_region(app, principal, body, name, unreachable_ok=True)
    target = Target(body.remote_region_id, body.remote_namespace, body.override, principal.user_id)
    async with app.db.write() as session:
        _, repo = await repository_for(session, principal, namespace, name, EDIT)
        operator = principal.operator
        failed = await rules.manual_sync(session, repo, body.image_tag, target, operator)
    return json_response(failed)


def _job_view(job: SyncJob, domain_id: str, domain_name: str) -> SyncJobView:
    def moment(value: object) -> str | None:
        return rfc3339(value) if value is not None else None  # type: ignore[arg-type]

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
        startedAt=moment(job.started_at),
        finishedAt=moment(job.finished_at),
        attempts=job.attempts,
        trigger=job.trigger,
    )


async def list_sync_jobs(request: web.Request, principal: Principal) -> web.Response:
    namespace, name = namespace_param(request), repository_param(request)
    filters = parse_filter(request)
    if filters is None or "limit" not in filters or "offset" not in filters:
        raise swr_bad_request("filter with limit::N|offset::M is required", "SVCSTG.SWR.4001035")
    offset, limit = page(filters)
    order = filters.get("order", "desc")
    if order not in ("asc", "desc"):
        raise swr_bad_request("order must be asc or desc", "SVCSTG.SWR.4001035")
    async with state(request).db.read() as session:
        visible, _ = await repository_for(session, principal, namespace, name, READ)
        account = await account_of(session, visible.organization.account_id)
        jobs, total = await rules.job_page(session, namespace, name, offset, limit, order == "desc")
    views = [_job_view(j, account.domain_id, account.name) for j in jobs]
    return json_response(views, headers=content_range(offset, len(views), total))


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
