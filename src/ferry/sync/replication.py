"""Per-tag replication state: for every (source repository, tag, target region/org), one state.

Derived, never stored: from the repository's rules, the source's tags and the job table (the
single source of truth, no second bookkeeping). A handful of queries whatever the number of
tags: rules, tags, the newest final job per (tag, target), the active jobs, the claim order of
the waiting ones, and the bytes of running uploads.

States: in-sync, pending (queued, retrying or running), behind (the newest job copied an older
digest of the tag and nothing is queued), conflict, failed, not-synced (no job ever ran for the
tag, e.g. it existed before the rule) and excluded (reserved for rule filters).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.metadata.db import Database
from ferry.metadata.models import FINAL_STATUSES, JobStatus, SyncJob, SyncTransfer, Tag, utcnow
from ferry.sync import reasons
from ferry.sync.applied import AppliedRule, applied_rules
from ferry.sync.holds import held
from ferry.sync.queue import LANE

IN_SYNC, PENDING, BEHIND, CONFLICT, FAILED = "in-sync", "pending", "behind", "conflict", "failed"
NOT_SYNCED, EXCLUDED = "not-synced", "excluded"
STATES = (IN_SYNC, PENDING, BEHIND, CONFLICT, FAILED, NOT_SYNCED, EXCLUDED)


@dataclass(frozen=True)
class Target:
    region: str
    namespace: str

    def __str__(self) -> str:
        return f"{self.region}/{self.namespace}"


@dataclass(frozen=True)
class TagState:
    """One tag's state in one target, and what the state rests on."""

    repository_id: int
    tag: str
    target: Target
    state: str
    digest: str | None  # the source tag's digest now
    phase: str | None = None  # pending only: queued, retrying, paused or running
    job_id: int | None = None  # the job the state comes from
    attempt: int = 0
    bytes_sent: int = 0
    position: int | None = None  # queued: jobs ahead in claim order
    next_attempt_at: datetime | None = None
    reason: str | None = None
    message: str = ""
    copied_digest: str | None = None  # what the newest final job copied (or found)
    target_digest: str | None = None  # what the target held when a job last looked
    visible_at: datetime | None = None


# The job columns a state needs, read as plain rows (not ORM objects: ten times cheaper when a
# repository has ten thousand tags).
_COLUMNS = (
    SyncJob.id,
    SyncJob.repository_id,
    SyncJob.tag,
    SyncJob.remote_region_id,
    SyncJob.remote_namespace,
    SyncJob.status,
    SyncJob.attempts,
    SyncJob.bytes_sent,
    SyncJob.reason,
    SyncJob.message,
    SyncJob.digest,
    SyncJob.target_digest,
    SyncJob.visible_at,
    SyncJob.finished_at,
    SyncJob.next_attempt_at,
)
JobRow = Row[*tuple[Any, ...]]


@dataclass
class _Jobs:
    """The job table's part the states need, read in a few queries."""

    final: dict[tuple[int, str, Target], JobRow]
    active: dict[tuple[int, str, Target], JobRow]
    claim_order: dict[int, int]  # id → place of each job claimable now, in claim order (lane, id)
    transferred: dict[int, int]  # running job id → bytes its open uploads hold
    paused: set[int]  # waiting job ids a pause holds (sync/holds.py)


def _key(job: JobRow) -> tuple[int, str, Target]:
    return int(job.repository_id), job.tag, Target(job.remote_region_id, job.remote_namespace)


async def _jobs(session: AsyncSession, repository_ids: list[int] | None, tag: str | None) -> _Jobs:
    conditions: list[ColumnElement[bool]] = [SyncJob.repository_id.is_not(None)]
    if repository_ids is not None:
        conditions.append(SyncJob.repository_id.in_(repository_ids))
    if tag is not None:
        conditions.append(SyncJob.tag == tag)
    where = and_(*conditions)
    columns = (SyncJob.repository_id, SyncJob.tag, SyncJob.remote_region_id, SyncJob.remote_namespace)
    newest = (
        select(func.max(SyncJob.id).label("id"))
        .where(where, SyncJob.status.in_(sorted(FINAL_STATUSES)))
        .group_by(*columns)
        .subquery()
    )
    final = (await session.execute(select(*_COLUMNS).join(newest, SyncJob.id == newest.c.id))).all()
    active = (
        await session.execute(
            select(*_COLUMNS)
            .where(where, SyncJob.status.in_([JobStatus.WAITING, JobStatus.RUNNING]))
            .order_by(SyncJob.id)
        )
    ).all()
    now = utcnow()
    ready = (SyncJob.status == JobStatus.WAITING) & (SyncJob.next_attempt_at <= now)
    claimable = await session.scalars(select(SyncJob.id).where(ready & ~held()).order_by(LANE, SyncJob.id))
    claim_order = {job_id: place for place, job_id in enumerate(claimable)}
    paused = set(
        await session.scalars(select(SyncJob.id).where(where, SyncJob.status == JobStatus.WAITING, held()))
    )
    running = [job.id for job in active if job.status == JobStatus.RUNNING]
    transferred: dict[int, int] = {}
    if running:
        rows = await session.execute(
            select(SyncTransfer.job_id, func.sum(SyncTransfer.offset))
            .where(SyncTransfer.job_id.in_(running))
            .group_by(SyncTransfer.job_id)
        )
        transferred = {int(job_id): int(total or 0) for job_id, total in rows}
    # Several active jobs for one key (different actors): the oldest one speaks for them.
    actives: dict[tuple[int, str, Target], JobRow] = {}
    for job in active:
        actives.setdefault(_key(job), job)
    return _Jobs({_key(job): job for job in final}, actives, claim_order, transferred, paused)


async def tag_states(
    session: AsyncSession,
    repository_ids: list[int] | None = None,
    tag: str | None = None,
    target: Target | None = None,
) -> list[TagState]:
    """The state of every existing tag in every target of its repository (the rules' targets,
    and any other target a job copied the tag to). None for `repository_ids`: every repository
    that has a rule."""
    rules = await applied_rules(session, repository_ids)
    if repository_ids is None:
        repository_ids = sorted({rule.repository_id for rule in rules})
    if not repository_ids:
        return []
    tag_query = select(Tag.repository_id, Tag.name, Tag.digest).where(Tag.repository_id.in_(repository_ids))
    if tag is not None:
        tag_query = tag_query.where(Tag.name == tag)
    tags = {(repo, name): digest for repo, name, digest in await session.execute(tag_query)}
    jobs = await _jobs(session, repository_ids, tag)
    by_repository: dict[int, list[AppliedRule]] = {}
    for rule in rules:
        by_repository.setdefault(rule.repository_id, []).append(rule)
    pairs: set[tuple[int, str, Target]] = set()
    excluded: set[tuple[int, str, Target]] = set()
    for repo, name in tags:
        for rule in by_repository.get(repo, ()):
            kept = pairs if rule.copies(name) else excluded
            kept.add((repo, name, Target(rule.remote_region_id, rule.remote_namespace)))
    pairs |= {key for key in (*jobs.final, *jobs.active) if key[:2] in tags}
    # A tag an organization rule's tag filter leaves out, and that no job ever copied there.
    excluded -= pairs
    pairs |= excluded
    if target is not None:
        pairs = {pair for pair in pairs if pair[2] == target}
    ordered = sorted(pairs, key=lambda p: (p[0], p[1], str(p[2])))
    return [
        _excluded(repo, name, t, tags[(repo, name)])
        if (repo, name, t) in excluded
        else _state(repo, name, t, tags[(repo, name)], jobs)
        for repo, name, t in ordered
    ]


def _excluded(repository_id: int, tag: str, target: Target, digest: str) -> TagState:
    message = f"the tag filter of the organization rule to {target} leaves this tag out"
    return TagState(repository_id, tag, target, EXCLUDED, digest, message=message)


def _state(repository_id: int, tag: str, target: Target, digest: str, jobs: _Jobs) -> TagState:
    key = (repository_id, tag, target)
    active, final = jobs.active.get(key), jobs.final.get(key)
    base = TagState(repository_id, tag, target, NOT_SYNCED, digest)
    if final is not None:
        base = _final_state(base, final)
    if active is None:
        return base
    return _pending(base, active, jobs)


def _pending(base: TagState, job: JobRow, jobs: _Jobs) -> TagState:
    now = utcnow()
    common = {
        "state": PENDING,
        "job_id": job.id,
        "attempt": job.attempts,
        "bytes_sent": job.bytes_sent,
        "reason": job.reason,
        "message": job.message,
    }
    if job.status == JobStatus.RUNNING:
        sent = job.bytes_sent + jobs.transferred.get(job.id, 0)
        return _replace(base, **(common | {"phase": "running", "bytes_sent": sent}))
    if job.id in jobs.paused:
        return _replace(base, **common, phase="paused", next_attempt_at=job.next_attempt_at)
    if job.next_attempt_at > now:
        return _replace(base, **common, phase="retrying", next_attempt_at=job.next_attempt_at)
    ahead = jobs.claim_order.get(job.id, len(jobs.claim_order))
    return _replace(base, **common, phase="queued", position=ahead, next_attempt_at=job.next_attempt_at)


def _final_state(base: TagState, job: JobRow) -> TagState:
    done = {
        "job_id": job.id,
        "attempt": job.attempts,
        "bytes_sent": job.bytes_sent,
        "reason": job.reason,
        "message": job.message,
        "copied_digest": job.digest,
        "target_digest": job.target_digest,
    }
    if job.status in (JobStatus.SUCCESS, JobStatus.EXISTED):
        if job.reason == reasons.CONFLICT:
            return _replace(base, **done, state=CONFLICT)
        if job.digest == base.digest:
            return _replace(base, **done, state=IN_SYNC, visible_at=job.visible_at or job.finished_at)
        return _replace(base, **done, state=BEHIND)
    if job.status in (JobStatus.FAILED, JobStatus.TIMEOUT):
        return _replace(base, **done, state=FAILED)
    # Cancelled (the tag was gone at the source then): nothing copied for the tag it is now.
    return _replace(base, **done, state=NOT_SYNCED)


def _replace(base: TagState, **changes: Any) -> TagState:
    return replace(base, **changes)


def counts(states: Iterable[TagState]) -> dict[tuple[str, str], int]:
    """(state, target) → tags, for the ferry_sync_tags gauge."""
    result: dict[tuple[str, str], int] = {}
    for one in states:
        key = (one.state, str(one.target))
        result[key] = result.get(key, 0) + 1
    return result


async def tag_state_counts(db: Database) -> dict[tuple[str, str], int]:
    """Tags per (state, target) over every repository with a rule: /metrics' ferry_sync_tags."""
    async with db.read() as session:
        return counts(await tag_states(session))
