"""Retention policies of repositories: what the management API stores and lists, and running a
policy, which deletes tags (never manifests or blobs: GC frees the bytes later) and records each
deletion in the repository's retention history.

Reading needs read permission on the organization; changing or running a policy needs edit, as
deleting a tag does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from ferry.identity.caller import EDIT, READ, Operator
from ferry.identity.service import Principal
from ferry.images.events import TagEvents
from ferry.images.repositories import repository_for
from ferry.images.retention_rules import (
    RetentionExists,
    RetentionPolicy,
    RetentionUnknown,
    TagAge,
    policy_from_json,
)
from ferry.images.tags import remove_tag
from ferry.metadata.db import Database
from ferry.metadata.models import Organization, Repository, Retention, RetentionHistory, Tag, utcnow
from ferry.observability import metrics

# Who a retention policy's deletions are by, as events and records name operators.
RETENTION = Operator("", "retention")
log = logging.getLogger("ferry.retention")


@dataclass(frozen=True)
class Deleted:
    tag: str
    digest: str


@dataclass(frozen=True)
class RunReport:
    retention_id: int
    deleted: list[Deleted]


@dataclass(frozen=True)
class HistoryPage:
    entries: list[RetentionHistory]
    total: int


def policy_of(retention: Retention) -> RetentionPolicy:
    return policy_from_json(retention.algorithm, retention.rules)


async def _repository(
    session: AsyncSession, principal: Principal, namespace: str, name: str, needs: int
) -> Repository:
    _, repository = await repository_for(session, principal, namespace, name, needs)
    return repository


async def _retention_in(
    session: AsyncSession, repository: Repository, retention_id: int, label: str
) -> Retention:
    retention = await session.get(Retention, retention_id)
    if retention is None or retention.repository_id != repository.id:
        raise RetentionUnknown(retention_id, label)
    return retention


async def create_retention(
    session: AsyncSession, principal: Principal, namespace: str, name: str, policy: RetentionPolicy
) -> Retention:
    """The repository's one policy; RetentionExists when it has one already."""
    repository = await _repository(session, principal, namespace, name, EDIT)
    existing = await session.scalar(select(Retention.id).where(Retention.repository_id == repository.id))
    if existing is not None:
        raise RetentionExists(f"{namespace}/{name}", existing)
    retention = Retention(
        repository_id=repository.id,
        algorithm=policy.algorithm,
        rules=policy.rules_json(),
        creator_name=principal.name,
    )
    session.add(retention)
    await session.flush()
    return retention


async def list_retentions(
    session: AsyncSession, principal: Principal, namespace: str, name: str
) -> list[Retention]:
    repository = await _repository(session, principal, namespace, name, READ)
    found = await session.scalars(
        select(Retention).where(Retention.repository_id == repository.id).order_by(Retention.id)
    )
    return list(found)


async def show_retention(
    session: AsyncSession, principal: Principal, namespace: str, name: str, retention_id: int
) -> Retention:
    repository = await _repository(session, principal, namespace, name, READ)
    return await _retention_in(session, repository, retention_id, f"{namespace}/{name}")


async def update_retention(
    session: AsyncSession,
    principal: Principal,
    namespace: str,
    name: str,
    retention_id: int,
    policy: RetentionPolicy,
) -> Retention:
    repository = await _repository(session, principal, namespace, name, EDIT)
    retention = await _retention_in(session, repository, retention_id, f"{namespace}/{name}")
    retention.algorithm, retention.rules = policy.algorithm, policy.rules_json()
    retention.updated_at = utcnow()
    return retention


async def delete_retention(
    session: AsyncSession, principal: Principal, namespace: str, name: str, retention_id: int
) -> None:
    """The policy; its history stays with the repository."""
    repository = await _repository(session, principal, namespace, name, EDIT)
    await session.delete(await _retention_in(session, repository, retention_id, f"{namespace}/{name}"))


async def list_histories(
    session: AsyncSession, principal: Principal, namespace: str, name: str, offset: int, limit: int
) -> HistoryPage:
    """The repository's deletions by retention, newest first."""
    repository = await _repository(session, principal, namespace, name, READ)
    where = RetentionHistory.repository_id == repository.id
    total = await session.scalar(select(func.count()).select_from(RetentionHistory).where(where))
    entries = await session.scalars(
        select(RetentionHistory).where(where).order_by(RetentionHistory.id.desc()).offset(offset).limit(limit)
    )
    return HistoryPage(list(entries), total or 0)


async def authorize_run(
    session: AsyncSession, principal: Principal, namespace: str, name: str, retention_id: int
) -> int:
    """The policy's id, when the caller may run it (edit, as for deleting tags)."""
    repository = await _repository(session, principal, namespace, name, EDIT)
    return (await _retention_in(session, repository, retention_id, f"{namespace}/{name}")).id


async def _tags(session: AsyncSession, repository_id: int) -> list[TagAge]:
    rows = await session.execute(
        select(Tag.name, Tag.digest, Tag.updated_at).where(Tag.repository_id == repository_id)
    )
    return [TagAge(name, digest, updated_at) for name, digest, updated_at in rows.all()]


async def _apply(session: AsyncSession, events: TagEvents, retention: Retention, now: datetime) -> RunReport:
    """Deletes what the policy does not keep, each with its history row, in this transaction."""
    repository = await session.get(Repository, retention.repository_id)
    assert repository is not None
    organization = await session.get(Organization, repository.organization_id)
    assert organization is not None
    policy = policy_of(retention)
    rule_type, deleted = policy.rule_type(), []
    for tag in policy.doomed(await _tags(session, repository.id), now):
        # Only while the tag still points where it did when judged: a push meanwhile wins.
        if not await remove_tag(
            session, events, repository, tag.name, RETENTION, tag.digest, by_retention=True
        ):
            continue
        session.add(
            RetentionHistory(
                repository_id=repository.id,
                retention_id=retention.id,
                namespace=organization.name,
                repo=repository.name,
                tag=tag.name,
                digest=tag.digest,
                rule_type=rule_type,
                created_at=now,
            )
        )
        deleted.append(Deleted(tag.name, tag.digest))
    if deleted:
        repository.updated_at = now
        log.info(
            "retention %d deleted %d tag(s) of %s/%s: %s",
            retention.id,
            len(deleted),
            organization.name,
            repository.name,
            ", ".join(d.tag for d in deleted),
        )
    return RunReport(retention.id, deleted)


async def _claim_and_apply(
    db: Database, events: TagEvents, retention_id: int, trigger: str, interval_seconds: float | None = None
) -> RunReport | None:
    """Moves the policy's last_run_at (only when it is due, given an interval) and, when that
    moved it, runs the policy in the same transaction; None when it was gone or not due.

    The update takes the row's lock on PostgreSQL, so another process claiming the same policy
    waits for this run and then finds it not due (or runs after it, on demand)."""
    now = utcnow()
    claim = update(Retention).where(Retention.id == retention_id).values(last_run_at=now)
    if interval_seconds is not None:
        claim = claim.where(_due(now, interval_seconds))
    async with db.write() as session:
        if not (await session.execute(claim)).rowcount:  # type: ignore[attr-defined]
            return None
        retention = await session.get(Retention, retention_id)
        assert retention is not None
        report = await _apply(session, events, retention, now)
    metrics.RETENTION_RUNS.labels(trigger).inc()
    metrics.RETENTION_DELETED_TAGS.inc(len(report.deleted))
    return report


async def run_retention(
    db: Database, events: TagEvents, retention_id: int, trigger: str = "demand"
) -> RunReport | None:
    """Runs the policy now (on demand, or right after it is set); None when it is gone."""
    return await _claim_and_apply(db, events, retention_id, trigger)


async def run_due(db: Database, events: TagEvents, interval_seconds: float) -> list[RunReport]:
    """Every policy not run for `interval_seconds`, each claimed by a conditional update so that
    one process of the region runs it, whichever processes run the schedule."""
    async with db.read() as session:
        due = list(await session.scalars(select(Retention.id).where(_due(utcnow(), interval_seconds))))
    reports = []
    for retention_id in due:
        report = await _claim_and_apply(db, events, retention_id, "schedule", interval_seconds)
        if report is not None:  # else another process ran it meanwhile, or it is gone
            reports.append(report)
    return reports


def _due(now: datetime, interval_seconds: float) -> ColumnElement[bool]:
    cutoff = now - timedelta(seconds=interval_seconds)
    return or_(Retention.last_run_at.is_(None), Retention.last_run_at <= cutoff)


async def _apply_now(db: Database, events: TagEvents, retention_id: int) -> RunReport | None:
    """A policy takes effect when it is set (SWR's user guide); the schedule retries a failure."""
    try:
        return await run_retention(db, events, retention_id, "set")
    except Exception:
        log.exception("retention %d could not run; the schedule runs it later", retention_id)
        return None


async def set_retention(
    db: Database, events: TagEvents, principal: Principal, namespace: str, name: str, policy: RetentionPolicy
) -> int:
    """Creates the repository's policy and runs it once; its id."""
    async with db.write() as session:
        retention_id = (await create_retention(session, principal, namespace, name, policy)).id
    await _apply_now(db, events, retention_id)
    return retention_id


async def change_retention(
    db: Database,
    events: TagEvents,
    principal: Principal,
    namespace: str,
    name: str,
    retention_id: int,
    policy: RetentionPolicy,
) -> None:
    """Replaces the policy's rules and runs it once."""
    async with db.write() as session:
        await update_retention(session, principal, namespace, name, retention_id, policy)
    await _apply_now(db, events, retention_id)


async def run_now(
    db: Database, events: TagEvents, principal: Principal, namespace: str, name: str, retention_id: int
) -> RunReport:
    """Runs the policy on demand, for a caller who may delete the repository's tags."""
    async with db.read() as session:
        await authorize_run(session, principal, namespace, name, retention_id)
    report = await run_retention(db, events, retention_id)
    if report is None:  # deleted between the check and the run
        raise RetentionUnknown(retention_id, f"{namespace}/{name}")
    return report
