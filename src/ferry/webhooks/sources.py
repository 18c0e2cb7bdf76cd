"""Where events come from, each recorded in its cause's transaction: tag moves (a TagEvents
listener beside sync's triggers) and the end of sync jobs (sync/queue.py's JobQueue.finish)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import Operator
from ferry.metadata.models import JobStatus, Organization, Repository, SyncJob
from ferry.webhooks import events
from ferry.webhooks.outbox import record


class WebhookTagEvents:
    """images.events.TagEvents, answered by queuing `ferry.image.pushed` deliveries."""

    def __init__(self, region: str) -> None:
        self.region = region

    async def tag_moved(
        self, session: AsyncSession, repository: Repository, tag: str, digest: str, operator: Operator
    ) -> None:
        org = await session.get(Organization, repository.organization_id)
        if org is None:
            return
        data = {
            "namespace": org.name,
            "repository": repository.name,
            "tag": tag,
            "digest": digest,
            "operator": operator.name,
        }
        subject = f"{org.name}/{repository.name}:{tag}"
        await record(session, org.id, events.IMAGE_PUSHED, subject, data, self.region)

    async def referrer_added(
        self, session: AsyncSession, repository: Repository, subject: str, operator: Operator
    ) -> None:
        return None

    async def tag_removed(
        self,
        session: AsyncSession,
        repository: Repository,
        tag: str,
        digest: str,
        operator: Operator,
        by_retention: bool,
    ) -> None:
        return None


def _lag_seconds(job: SyncJob, visible_at: datetime | None) -> float | None:
    if visible_at is None:
        return None
    return round(max(0.0, (visible_at - job.created_at).total_seconds()), 3)


def job_event_types(status: str, reason: str | None, trigger: str) -> list[str]:
    """The events a job's final status makes: a success is `tag.synced` (and, for a repair job,
    which only succeeds by copying something, `drift.repaired`); a conflict; a failure."""
    if trigger == "delete":  # deletion sync: only its failure is news
        return [events.SYNC_FAILED] if status in (JobStatus.FAILED, JobStatus.TIMEOUT) else []
    if status == JobStatus.SUCCESS:
        return [events.TAG_SYNCED] + ([events.DRIFT_REPAIRED] if trigger == "repair" else [])
    if status == JobStatus.EXISTED and reason == "conflict":
        return [events.SYNC_CONFLICT]
    if status in (JobStatus.FAILED, JobStatus.TIMEOUT):
        return [events.SYNC_FAILED]
    return []


async def job_finished(
    session: AsyncSession,
    job_id: int,
    region: str,
    status: str,
    reason: str | None,
    message: str,
    digest: str | None,
    visible_at: datetime | None,
) -> None:
    """Queues the events of a sync job's end, inside the transaction that records the end."""
    job = await session.get(SyncJob, job_id)
    if job is None or job.status != status:
        return  # the end was not recorded (another worker holds the job now)
    types = job_event_types(status, reason, job.trigger)
    if not types:
        return
    org_id = await session.scalar(select(Organization.id).where(Organization.name == job.namespace))
    if org_id is None:
        return
    data: dict[str, object] = {
        "namespace": job.namespace,
        "repository": job.repo_name,
        "tag": job.tag,
        "digest": digest or job.digest,
        "target": {"region": job.remote_region_id, "namespace": job.remote_namespace},
        "jobId": job.id,
        "trigger": job.trigger,
        "status": status,
        "reason": reason,
    }
    if status == JobStatus.SUCCESS:
        data["lagSeconds"] = _lag_seconds(job, visible_at)
    else:
        data["message"] = message[:500]
    subject = f"{job.namespace}/{job.repo_name}:{job.tag}"
    for event_type in types:
        await record(session, org_id, event_type, subject, data, region)
