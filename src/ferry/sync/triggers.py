"""Sync jobs born in the same transaction as the tag change that calls for them.

Because the job rows commit with the tag, a push that succeeded always has its jobs recorded,
even if the process dies a moment later. `SyncTriggers` is what images/ reports tag moves and
new referrers to (images.events.TagEvents); every job recorded wakes the workers at commit
(sync.wakeup).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ferry.identity.caller import Operator
from ferry.metadata.models import (
    JobStatus,
    Manifest,
    ManifestReference,
    Organization,
    Repository,
    SyncJob,
    Tag,
    utcnow,
)
from ferry.observability import metrics
from ferry.sync import reasons
from ferry.sync.applied import AppliedRule, applied_rules
from ferry.sync.queue import cancel_jobs
from ferry.sync.wakeup import jobs_recorded

# The trigger of a deletion sync's job (sync/deletion.py runs it).
DELETE = "delete"
# Jobs a transaction recorded, counted in ferry_sync_jobs_created_total once it commits.
CREATED = "ferry.sync.jobs_created"


@event.listens_for(Session, "after_commit")
def _count_created(session: Session, *_args: Any) -> None:
    for trigger, region in session.info.pop(CREATED, ()):
        metrics.SYNC_JOBS_CREATED.labels(trigger, region).inc()


@event.listens_for(Session, "after_rollback")
def _forget_created(session: Session, *_args: Any) -> None:
    session.info.pop(CREATED, None)


@dataclass(frozen=True)
class Target:
    region: str
    namespace: str
    override: bool
    # The user whose rights the copy uses (sync/authorization.py): the rule's owner, or the
    # caller of a manual sync.
    actor_id: int | None
    platforms: tuple[str, ...] = ()  # an index's platforms to copy; (): the whole index
    org_rule_id: int | None = None  # the organization rule it copies for, if one
    bandwidth: int | None = None  # that rule's cap, bytes per second


async def enqueue(
    session: AsyncSession,
    repository: Repository,
    tag: str,
    target: Target,
    trigger: str,
    operator: Operator,
    due_at: datetime | None = None,
    digest: str | None = None,
) -> SyncJob | None:
    """A waiting job for the tag and target, unless one of the same kind (a copy, or a
    deletion) is already waiting (a copy will copy the newest). `due_at`: not before then."""
    same_kind = SyncJob.trigger == DELETE if trigger == DELETE else SyncJob.trigger != DELETE
    waiting = await session.scalar(
        select(SyncJob).where(
            SyncJob.repository_id == repository.id,
            SyncJob.remote_region_id == target.region,
            SyncJob.remote_namespace == target.namespace,
            SyncJob.tag == tag,
            SyncJob.status == JobStatus.WAITING,
            same_kind,
            # Only a job acting for the same user stands in: another's might be refused.
            SyncJob.actor_id.is_(None) if target.actor_id is None else SyncJob.actor_id == target.actor_id,
        )
    )
    if waiting is not None:
        waiting.override = waiting.override or target.override
        return None
    org = await session.get(Organization, repository.organization_id)
    assert org is not None
    job = SyncJob(
        repository_id=repository.id,
        account_id=org.account_id,
        namespace=org.name,
        repo_name=repository.name,
        remote_region_id=target.region,
        remote_namespace=target.namespace,
        tag=tag,
        override=target.override,
        trigger=trigger,
        operator_id=operator.id,
        operator_name=operator.name,
        actor_id=target.actor_id,
        digest=digest,
        platforms=list(target.platforms) or None,
        org_rule_id=target.org_rule_id,
        bandwidth=target.bandwidth,
    )
    if due_at is not None:
        job.next_attempt_at = due_at
    session.add(job)
    await session.flush()
    await jobs_recorded(session)
    session.info.setdefault(CREATED, []).append((trigger, target.region))
    return job


async def auto_rules(session: AsyncSession, repository_id: int) -> list[AppliedRule]:
    """The automatic rules of the repository and of its organization (sync/applied.py)."""
    return [rule for rule in await applied_rules(session, [repository_id]) if rule.sync_auto]


async def tag_moved(session: AsyncSession, repository: Repository, tag: str, operator: Operator) -> None:
    for rule in await auto_rules(session, repository.id):
        if rule.copies(tag):
            if rule.sync_deletes:
                await _cancel_deletion(session, repository, tag, rule)
            await enqueue(session, repository, tag, rule_target(rule), "auto", operator)


async def tag_removed(
    session: AsyncSession,
    repository: Repository,
    tag: str,
    digest: str,
    operator: Operator,
    by_retention: bool,
) -> None:
    """Deletion sync (opt-in per organization rule): a deletion job, due after the rule's grace
    period, that deletes the target's tag only if it still holds what a sync from here wrote."""
    for rule in await auto_rules(session, repository.id):
        if not (rule.sync_deletes and rule.copies(tag)) or (by_retention and not rule.sync_retention_deletes):
            continue
        due = utcnow() + timedelta(seconds=rule.delete_grace_seconds)
        await enqueue(
            session, repository, tag, rule_target(rule), DELETE, operator, due_at=due, digest=digest
        )


async def _cancel_deletion(
    session: AsyncSession, repository: Repository, tag: str, rule: AppliedRule
) -> None:
    """The tag is back before its deletion was due: the deletion is void."""
    await cancel_jobs(
        session,
        SyncJob.repository_id == repository.id,
        SyncJob.remote_region_id == rule.remote_region_id,
        SyncJob.remote_namespace == rule.remote_namespace,
        SyncJob.tag == tag,
        SyncJob.trigger == DELETE,
        SyncJob.status == JobStatus.WAITING,
        reason=reasons.CANCELLED,
        message="cancelled: the tag was pushed again before its deletion was due; nothing deleted",
    )


def rule_target(rule: AppliedRule) -> Target:
    return Target(
        rule.remote_region_id,
        rule.remote_namespace,
        rule.override,
        rule.creator_id,
        rule.platforms,
        rule.organization_rule_id,
        rule.bandwidth,
    )


async def referrer_added(
    session: AsyncSession, repository: Repository, subject: str, operator: Operator
) -> None:
    """A signature or SBOM pushed later follows its image: re-sync the tags that show the subject."""
    rules = await auto_rules(session, repository.id)
    if not rules:
        return
    # A referrer of a referrer (a signature of an SBOM) belongs to the image at the chain's top.
    subjects = [subject]
    while len(subjects) < 16:
        above = await session.scalar(
            select(Manifest.subject_digest).where(
                Manifest.repository_id == repository.id, Manifest.digest == subjects[-1]
            )
        )
        if above is None or above in subjects:
            break
        subjects.append(above)
    parents = (
        select(Manifest.digest)
        .join(ManifestReference, ManifestReference.manifest_id == Manifest.id)
        .where(Manifest.repository_id == repository.id, ManifestReference.digest.in_(subjects))
    )
    tags = await session.scalars(
        select(Tag.name).where(
            Tag.repository_id == repository.id, Tag.digest.in_(subjects) | Tag.digest.in_(parents)
        )
    )
    for tag in list(tags):
        for rule in rules:
            if rule.copies(tag):
                await enqueue(session, repository, tag, rule_target(rule), "auto", operator)


class SyncTriggers:
    """images.events.TagEvents, answered by recording sync jobs in the same transaction."""

    async def tag_moved(
        self, session: AsyncSession, repository: Repository, tag: str, digest: str, operator: Operator
    ) -> None:
        await tag_moved(session, repository, tag, operator)

    async def referrer_added(
        self, session: AsyncSession, repository: Repository, subject: str, operator: Operator
    ) -> None:
        await referrer_added(session, repository, subject, operator)

    async def tag_removed(
        self,
        session: AsyncSession,
        repository: Repository,
        tag: str,
        digest: str,
        operator: Operator,
        by_retention: bool,
    ) -> None:
        await tag_removed(session, repository, tag, digest, operator, by_retention)
