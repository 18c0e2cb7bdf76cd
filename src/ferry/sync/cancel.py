"""Cancelling a sync job by hand (a Ferry extension of SWR's sync records).

A waiting job ends at once. A running one ends in the database at once too: its worker, which
no longer holds the lease, stops the copy at its next lease renewal (within a third of
FERRY_SYNC_LEASE_SECONDS) and deletes the upload sessions it had open at the target, so a
cancelled copy leaves nothing half-written there (sync/jobs.py).
"""

from __future__ import annotations

from ferry.identity.caller import EDIT
from ferry.identity.service import Principal
from ferry.images.repositories import repository_for
from ferry.metadata.db import Database
from ferry.metadata.models import FINAL_STATUSES, JobStatus, SyncJob, utcnow
from ferry.sync import reasons
from ferry.sync.queue import cancel_jobs
from ferry.sync.rules import RuleError, SyncTarget


class SyncJobUnknown(RuleError):
    def __init__(self, job_id: int, source: str) -> None:
        super().__init__(f"no sync job {job_id} on {source}")


class SyncJobFinished(RuleError):
    def __init__(self, job: SyncJob) -> None:
        super().__init__(f"sync job {job.id} already ended: {job.status}")


async def cancel_job(db: Database, principal: Principal, namespace: str, name: str, job_id: int) -> SyncJob:
    """Ends the job as `cancel` (the caller needs edit rights on the source repository)."""
    async with db.write() as session:
        _, repository = await repository_for(session, principal, namespace, name, EDIT)
        job = await session.get(SyncJob, job_id)
        if job is None or job.repository_id != repository.id:
            raise SyncJobUnknown(job_id, f"{namespace}/{name}")
        if job.status in FINAL_STATUSES:
            raise SyncJobFinished(job)
        now = utcnow()
        was = "while copying" if job.status == JobStatus.RUNNING else "before it ran"
        job.status = JobStatus.CANCEL
        job.reason = reasons.CANCELLED
        job.message = f"cancelled by {principal.name} {was}"
        job.lease_owner = None
        job.lease_expires_at = None
        job.finished_at = now
        job.updated_at = now
    return job


async def cancel_target_jobs(
    db: Database, principal: Principal, namespace: str, name: str, target: SyncTarget
) -> int:
    """Cancels every job of the repository to `target` that has not ended (a rule's, manual
    syncs', repairs'), as cancel_job does one; returns how many."""
    async with db.write() as session:
        _, repository = await repository_for(session, principal, namespace, name, EDIT)
        return await cancel_jobs(
            session,
            SyncJob.repository_id == repository.id,
            SyncJob.remote_region_id == target.region,
            SyncJob.remote_namespace == target.namespace,
            SyncJob.status.in_([JobStatus.WAITING, JobStatus.RUNNING]),
            reason=reasons.CANCELLED,
            message=f"cancelled by {principal.name} with every job to {target.region}/{target.namespace}",
        )
