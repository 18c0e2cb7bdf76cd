"""Replication state, explain and wait: three GETs beside SWR's sync operations (README
"Replication state, explain and wait"). Read permission on the source repository, as the
sync record listing asks."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import select

from ferry.errors import swr_bad_request
from ferry.identity.caller import READ
from ferry.identity.service import Principal
from ferry.images.errors import TagUnknown
from ferry.images.repositories import repository_for
from ferry.manage.operations import (
    authenticated,
    json_response,
    namespace_param,
    parse_body,
    repository_param,
)
from ferry.manage.sync import SyncTarget as SyncTargetBody
from ferry.manage.sync import target_of
from ferry.metadata.models import Repository, SyncJob, Tag
from ferry.names import ImageName, invalid_tag, is_organization, is_tag
from ferry.parsing import whole_number
from ferry.state import state
from ferry.sync import replication as r
from ferry.sync.applied import AppliedRule
from ferry.sync.cancel import cancel_job, cancel_target_jobs
from ferry.sync.explain import explain
from ferry.sync.rules import TargetNamespaceInvalid, TargetRegionUnknown
from ferry.sync.waiting import MAX_WAIT_SECONDS, wait_visible

REPO = "/v2/manage/namespaces/{namespace}/repos/{repository}"
TAG = "sync"


def _moment(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TagStateView(BaseModel):
    tag: str
    target: str
    remoteRegionId: str
    remoteNamespace: str
    state: str
    digest: str | None
    phase: str | None
    jobId: int | None
    attempt: int
    bytes: int
    position: int | None
    nextAttemptAt: str | None
    reason: str | None
    message: str
    copiedDigest: str | None
    targetDigest: str | None
    visibleAt: str | None


class SyncStateView(BaseModel):
    repository: str
    tags: list[TagStateView]


class RuleView(BaseModel):
    scope: str  # "repository" (SWR's rule) or "organization" (Ferry's)
    organizationRuleId: int | None
    remoteRegionId: str
    remoteNamespace: str
    syncAuto: bool
    override: bool


class JobStepsView(BaseModel):
    id: int
    status: str
    trigger: str
    attempts: int
    reason: str | None
    message: str
    steps: list[str]
    digest: str | None
    targetDigest: str | None
    writtenDigest: str | None
    bytes: int
    createdAt: str | None
    startedAt: str | None
    finishedAt: str | None
    visibleAt: str | None
    nextAttemptAt: str | None


class ExplainView(BaseModel):
    repository: str
    tag: str
    target: str
    rules: list[RuleView]
    state: TagStateView
    jobs: list[JobStepsView]
    currentTargetDigest: str | None
    currentTargetError: str | None
    next: str


class WaitView(BaseModel):
    repository: str
    tag: str
    done: bool
    waitedSeconds: float
    states: list[TagStateView]


def state_view(s: r.TagState) -> TagStateView:
    return TagStateView(
        tag=s.tag,
        target=str(s.target),
        remoteRegionId=s.target.region,
        remoteNamespace=s.target.namespace,
        state=s.state,
        digest=s.digest,
        phase=s.phase,
        jobId=s.job_id,
        attempt=s.attempt,
        bytes=s.bytes_sent,
        position=s.position,
        nextAttemptAt=_moment(s.next_attempt_at),
        reason=s.reason,
        message=s.message,
        copiedDigest=s.copied_digest,
        targetDigest=s.target_digest,
        visibleAt=_moment(s.visible_at),
    )


def _job_view(job: SyncJob) -> JobStepsView:
    return JobStepsView(
        id=job.id,
        status=job.status,
        trigger=job.trigger,
        attempts=job.attempts,
        reason=job.reason,
        message=job.message,
        steps=list(job.steps or []),
        digest=job.digest,
        targetDigest=job.target_digest,
        writtenDigest=job.written_digest,
        bytes=job.bytes_sent,
        createdAt=_moment(job.created_at),
        startedAt=_moment(job.started_at),
        finishedAt=_moment(job.finished_at),
        visibleAt=_moment(job.visible_at),
        nextAttemptAt=_moment(job.next_attempt_at) if job.status == "waiting" else None,
    )


def _rule_view(rule: AppliedRule) -> RuleView:
    return RuleView(
        scope=rule.scope,
        organizationRuleId=rule.organization_rule_id,
        remoteRegionId=rule.remote_region_id,
        remoteNamespace=rule.remote_namespace,
        syncAuto=rule.sync_auto,
        override=rule.override,
    )


def _tag_query(request: web.Request, required: bool) -> str | None:
    tag = request.query.get("tag")
    if tag is None:
        if required:
            raise swr_bad_request("the tag query parameter is required", "SVCSTG.SWR.4009021")
        return None
    if not is_tag(tag):
        raise swr_bad_request(invalid_tag(tag), "SVCSTG.SWR.4009021")
    return tag


def _target_query(request: web.Request, required: bool) -> r.Target | None:
    """`target=REGION/ORG`: the region must be a peer of this one."""
    raw = request.query.get("target")
    if raw is None:
        if required:
            raise swr_bad_request("the target query parameter (REGION/ORG) is required", "SVCSTG.SWR.4000014")
        return None
    region, sep, namespace = raw.partition("/")
    peers = state(request).peer_clients
    if not sep or region not in peers:
        raise TargetRegionUnknown(region if sep else raw, list(peers))
    if not is_organization(namespace):
        raise TargetNamespaceInvalid(namespace)
    return r.Target(region, namespace)


async def _source(
    request: web.Request, principal: Principal, tag: str | None
) -> tuple[Repository, ImageName]:
    """The source repository (read permission), and that the tag exists there when named."""
    namespace, name = namespace_param(request), repository_param(request)
    async with state(request).db.read() as session:
        _, repository = await repository_for(session, principal, namespace, name, READ)
        if tag is not None:
            found = await session.scalar(
                select(Tag.name).where(Tag.repository_id == repository.id, Tag.name == tag)
            )
            if found is None:
                raise TagUnknown(tag)
    return repository, ImageName(namespace, name)


async def sync_state(request: web.Request, principal: Principal) -> web.Response:
    tag, target = _tag_query(request, False), _target_query(request, False)
    repository, source = await _source(request, principal, tag)
    async with state(request).db.read() as session:
        states = await r.tag_states(session, [repository.id], tag, target)
    return json_response(SyncStateView(repository=str(source), tags=[state_view(s) for s in states]))


async def sync_explain(request: web.Request, principal: Principal) -> web.Response:
    tag, target = _tag_query(request, True), _target_query(request, True)
    assert tag is not None and target is not None
    repository, source = await _source(request, principal, tag)
    app = state(request)
    found = await explain(app.db, app.peer_clients, repository, source, tag, target)
    view = ExplainView(
        repository=str(source),
        tag=tag,
        target=str(target),
        rules=[_rule_view(rule) for rule in found.rules],
        state=state_view(found.state),
        jobs=[_job_view(job) for job in found.jobs],
        currentTargetDigest=found.live.digest,
        currentTargetError=found.live.error,
        next=found.next_step,
    )
    return json_response(view)


async def sync_wait(request: web.Request, principal: Principal) -> web.Response:
    tag, target = _tag_query(request, True), _target_query(request, False)
    assert tag is not None
    raw = request.query.get("timeout", str(int(MAX_WAIT_SECONDS)))
    timeout = whole_number(raw)
    if timeout is None or timeout > MAX_WAIT_SECONDS:
        raise swr_bad_request(
            f"timeout must be a whole number of seconds, 0 to {MAX_WAIT_SECONDS:.0f}", "SVCSTG.SWR.4000056"
        )
    repository, source = await _source(request, principal, tag)
    result = await wait_visible(state(request).db, repository.id, source, tag, target, float(timeout))
    view = WaitView(
        repository=str(source),
        tag=tag,
        done=result.done,
        waitedSeconds=round(result.waited, 3),
        states=[state_view(s) for s in result.states],
    )
    return json_response(view)


async def sync_job_cancel(request: web.Request, principal: Principal) -> web.Response:
    job_id = whole_number(request.match_info["job_id"])
    if job_id is None:
        raise swr_bad_request("the job id must be a whole number", "SVCSTG.SWR.4001035")
    app = state(request)
    job = await cancel_job(app.db, principal, namespace_param(request), repository_param(request), job_id)
    return json_response(_job_view(job))


class CancelledView(BaseModel):
    cancelled: int


async def sync_jobs_cancel(request: web.Request, principal: Principal) -> web.Response:
    body = await parse_body(request, SyncTargetBody)
    app = state(request)
    count = await cancel_target_jobs(
        app.db, principal, namespace_param(request), repository_param(request), target_of(body)
    )
    return json_response(CancelledView(cancelled=count))


OPERATIONS = [
    authenticated(
        sync_state,
        "GET",
        REPO + "/sync_state",
        "Replication state of each tag in each sync target (Ferry extension)",
        response=SyncStateView,
        query=("tag", "target"),
        tag=TAG,
    ),
    authenticated(
        sync_explain,
        "GET",
        REPO + "/sync_explain",
        "Why a tag is or is not in a target, and what happens next (Ferry extension)",
        response=ExplainView,
        query=("tag", "target"),
        tag=TAG,
    ),
    authenticated(
        sync_wait,
        "GET",
        REPO + "/sync_wait",
        "Wait until a tag is visible in its targets, bounded (Ferry extension)",
        response=WaitView,
        query=("tag", "target", "timeout"),
        tag=TAG,
    ),
    authenticated(
        sync_job_cancel,
        "POST",
        REPO + "/sync_job/{job_id}/cancel",
        "Cancel a waiting or running sync job; a running copy stops and its upload sessions at "
        "the target are deleted (Ferry extension; edit rights on the repository)",
        response=JobStepsView,
        tag=TAG,
    ),
    authenticated(
        sync_jobs_cancel,
        "POST",
        REPO + "/sync_job/cancel",
        "Cancel every job of the repository to a target that has not ended, a rule's and manual "
        "ones (Ferry extension; edit rights on the repository)",
        body=SyncTargetBody,
        response=CancelledView,
        tag=TAG,
    ),
]
