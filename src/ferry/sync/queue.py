"""The job queue in the database: claim under a lease, renew, finish, retry.

Claims take a row lock where the database has them (PostgreSQL: FOR UPDATE SKIP LOCKED) and go
through the single writer on SQLite. A worker that dies stops renewing; once its lease expires
the job is claimed again, so a recorded job always reaches a final state.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.metadata.db import Database
from ferry.metadata.models import JobStatus, SyncJob, SyncTransfer, utcnow
from ferry.sync import reasons
from ferry.sync.holds import held
from ferry.webhooks.sources import job_finished


@dataclass
class Outcome:
    status: str
    message: str = ""
    digest: str | None = None
    bytes_sent: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    # When the target's tag was verified at the digest (success only): the lag metric's end.
    visible_at: datetime | None = None
    # A stable code (sync/reasons.py) for a failure or a conflict; None for a plain success.
    reason: str | None = None
    # This attempt's step log (the copier's Tally.steps); stored prefixed "attempt N:".
    steps: list[str] = field(default_factory=list)
    # What the target's tag held when the job last looked (after a copy: the digest copied).
    target_digest: str | None = None


# Which claimable jobs go first: a fresh push's (auto) ahead of manual syncs, and those ahead of
# an audit's repairs; oldest first within a lane. A manual sync of thousands of tags then delays
# a new push by at most the one job slot it waits for.
LANE = case((SyncJob.trigger == "auto", 0), (SyncJob.trigger == "manual", 1), else_=2)

# Lines of step log a job keeps in all (the newest); the copier caps each attempt at 40.
STEPS_KEPT = 200


def _with_steps(earlier: list[str] | None, attempt: int, steps: list[str]) -> list[str]:
    """The job's step log with this attempt's lines appended, the newest STEPS_KEPT kept."""
    lines = list(earlier or []) + [f"attempt {attempt}: {line}" for line in steps]
    return lines[-STEPS_KEPT:]


class JobQueue:
    def __init__(self, db: Database, owner: str, lease_seconds: float, region: str = "") -> None:
        self.db = db
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        # The region whose jobs these are: the `source` of the webhook events their ends make.
        self.region = region

    async def claim(self) -> SyncJob | None:
        jobs = await self.claim_many(1)
        return jobs[0] if jobs else None

    async def claim_many(
        self, limit: int, look_first: bool = True, room: Callable[[str], int] | None = None
    ) -> list[SyncJob]:
        """Up to `limit` claimable jobs, by lane (LANE) and then oldest first, taken under a lease
        in one write.

        With `look_first`, a read decides whether there is anything to take before the single
        writer (SQLite) or a row lock is taken, so that a poll of an empty queue costs a read,
        not a write; a caller that knows a job was just recorded skips it. `room(region)`: how
        many more jobs to that peer the caller may run now (sync/concurrency.py); a job for a
        peer without room is left for later.
        """
        now = utcnow()
        claimable = or_(
            # A paused one (sync/pauses.py) waits until resumed; a copy that was running when
            # its worker died is taken again, paused or not, as running copies finish.
            and_(SyncJob.status == JobStatus.WAITING, SyncJob.next_attempt_at <= now, ~held()),
            and_(SyncJob.status == JobStatus.RUNNING, SyncJob.lease_expires_at < now),
        )
        if look_first:
            async with self.db.read() as session:
                if await session.scalar(select(SyncJob.id).where(claimable).limit(1)) is None:
                    return []
        taken: list[SyncJob] = []
        async with self.db.write() as session:
            query = select(SyncJob).where(claimable).order_by(LANE, SyncJob.id).limit(max(20, 2 * limit))
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            keys: set[tuple[str, str, str, str, str]] = set()
            per_peer: dict[str, int] = {}
            for job in await session.scalars(query):
                region = job.remote_region_id
                if room is not None and per_peer.get(region, 0) >= room(region):
                    continue
                key = (job.namespace, job.repo_name, region, job.remote_namespace, job.tag)
                if key in keys or await self._target_busy(session, job, now):
                    continue  # at most one job per (target, tag) runs at a time
                keys.add(key)
                per_peer[region] = per_peer.get(region, 0) + 1
                job.status = JobStatus.RUNNING
                job.lease_owner = self.owner
                job.lease_expires_at = now + self.lease
                job.attempts += 1
                job.started_at = job.started_at or now
                job.updated_at = now
                taken.append(job)
                if len(taken) == limit:
                    break
        return taken

    @staticmethod
    async def _target_busy(session: AsyncSession, job: SyncJob, now: datetime) -> bool:
        """At most one job per (target, tag) runs at a time."""
        other = await session.scalar(
            select(SyncJob.id).where(
                SyncJob.id != job.id,
                SyncJob.namespace == job.namespace,
                SyncJob.repo_name == job.repo_name,
                SyncJob.remote_region_id == job.remote_region_id,
                SyncJob.remote_namespace == job.remote_namespace,
                SyncJob.tag == job.tag,
                SyncJob.status == JobStatus.RUNNING,
                SyncJob.lease_expires_at >= now,
            )
        )
        return other is not None

    async def renew(self, job_id: int) -> bool:
        """False when the lease was lost (another worker took the job)."""
        async with self.db.write() as session:
            result = await session.execute(
                update(SyncJob)
                .where(
                    SyncJob.id == job_id,
                    SyncJob.lease_owner == self.owner,
                    SyncJob.status == JobStatus.RUNNING,
                )
                .values(lease_expires_at=utcnow() + self.lease)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def finish(self, job_id: int, outcome: Outcome, job: SyncJob | None = None) -> None:
        """The job's end, its step log and its webhook events, in one write. `job`, the row as
        this worker claimed it, spares reading its earlier steps again (the lease holder is the
        only writer of a running job's steps)."""
        now = utcnow()
        async with self.db.write() as session:
            if job is not None and job.id == job_id:
                steps, attempt = job.steps, job.attempts
            else:
                earlier = (
                    await session.execute(select(SyncJob.steps, SyncJob.attempts).where(SyncJob.id == job_id))
                ).first()
                steps, attempt = (earlier[0], earlier[1]) if earlier else (None, 0)
            await session.execute(
                update(SyncJob)
                .where(SyncJob.id == job_id, SyncJob.lease_owner == self.owner)
                .values(
                    status=outcome.status,
                    message=outcome.message[:2000],
                    digest=outcome.digest,
                    reason=outcome.reason,
                    steps=_with_steps(steps, attempt, outcome.steps),
                    visible_at=outcome.visible_at,
                    target_digest=outcome.target_digest,
                    bytes_sent=SyncJob.bytes_sent + outcome.bytes_sent,
                    blobs_skipped=outcome.blobs_skipped,
                    blobs_mounted=outcome.blobs_mounted,
                    lease_owner=None,
                    lease_expires_at=None,
                    finished_at=now,
                    updated_at=now,
                )
            )
            await session.execute(delete(SyncTransfer).where(SyncTransfer.job_id == job_id))
            # Webhook events (tag synced, sync failed, conflict, drift repaired) commit with the end.
            await job_finished(
                session,
                job_id,
                self.region,
                outcome.status,
                outcome.reason,
                outcome.message,
                outcome.digest,
                outcome.visible_at,
            )

    async def retry_later(
        self,
        job: SyncJob,
        message: str,
        retry_after: float | None,
        deadline_seconds: float,
        sent: int,
        *,
        reason: str | None = None,
        steps: list[str] | None = None,
    ) -> str:
        """Puts the job back to waiting with backoff; ends it `timeout` past the deadline.

        `reason` (sync/reasons.py) and `steps` are the failed attempt's: kept on the job, so
        status and explain say why it waits.
        """
        now = utcnow()
        if now - job.created_at > timedelta(seconds=deadline_seconds):
            await self.finish(
                job.id,
                Outcome(
                    JobStatus.TIMEOUT,
                    f"gave up after {job.attempts} attempts: {message}",
                    bytes_sent=sent,
                    reason="timeout",
                    steps=list(steps or []),
                ),
                job,
            )
            return JobStatus.TIMEOUT
        backoff = min(60.0, 0.5 * 2 ** min(job.attempts, 8)) * random.uniform(0.5, 1.0)
        delay = max(backoff, retry_after or 0.0)
        job.next_attempt_at = now + timedelta(seconds=delay)  # the caller logs when
        async with self.db.write() as session:
            earlier = job.steps  # as claimed: only the lease holder writes a running job's steps
            await session.execute(
                update(SyncJob)
                .where(SyncJob.id == job.id, SyncJob.lease_owner == self.owner)
                .values(
                    status=JobStatus.WAITING,
                    message=f"attempt {job.attempts} failed, retrying: {message}"[:2000],
                    reason=reason,
                    steps=_with_steps(earlier, job.attempts, [*(steps or []), f"failed: {message}"]),
                    bytes_sent=SyncJob.bytes_sent + sent,
                    next_attempt_at=job.next_attempt_at,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
        return JobStatus.WAITING

    async def resume_peer(self, region: str) -> int:
        """Makes due now every waiting job for `region` whose last attempt found it unreachable
        (sync/peer_health.py: the region answers again); returns how many."""
        now = utcnow()
        async with self.db.write() as session:
            result = await session.execute(
                update(SyncJob)
                .where(
                    SyncJob.status == JobStatus.WAITING,
                    SyncJob.remote_region_id == region,
                    SyncJob.reason == reasons.UNREACHABLE,
                    SyncJob.next_attempt_at > now,
                )
                .values(next_attempt_at=now)
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def tag_written(self, job_id: int, digest: str) -> None:
        """An attempt is about to write `digest` under the job's tag at the target (recorded
        before the write, so a retry after a crash knows the copy it finds there is its own)."""
        async with self.db.write() as session:
            await session.execute(update(SyncJob).where(SyncJob.id == job_id).values(written_digest=digest))

    async def ever_copied(self, job: SyncJob, digest: str) -> bool:
        """Whether this sync ever copied `digest` to this tag and target."""
        async with self.db.read() as session:
            return await ever_copied(
                session,
                job.namespace,
                job.repo_name,
                job.remote_region_id,
                job.remote_namespace,
                job.tag,
                digest,
            )

    async def transfer(self, job_id: int, digest: str) -> SyncTransfer | None:
        async with self.db.read() as session:
            return await session.get(SyncTransfer, (job_id, digest))

    async def save_transfer(self, job_id: int, digest: str, location: str, offset: int) -> None:
        async with self.db.write() as session:
            row = await session.get(SyncTransfer, (job_id, digest))
            if row is None:
                session.add(SyncTransfer(job_id=job_id, digest=digest, location=location, offset=offset))
            else:
                row.location, row.offset, row.updated_at = location, offset, utcnow()

    async def transfer_locations(self, job_id: int) -> list[str]:
        async with self.db.read() as session:
            rows = await session.scalars(select(SyncTransfer.location).where(SyncTransfer.job_id == job_id))
            return list(rows)

    async def drop_transfers(self, job_id: int) -> None:
        async with self.db.write() as session:
            await session.execute(delete(SyncTransfer).where(SyncTransfer.job_id == job_id))

    async def cancelled_by_hand(self, job_id: int) -> bool:
        """Whether someone cancelled the job (sync/cancel.py) while this worker ran it."""
        async with self.db.read() as session:
            row = (
                await session.execute(select(SyncJob.status, SyncJob.reason).where(SyncJob.id == job_id))
            ).first()
        return row is not None and row[0] == JobStatus.CANCEL and row[1] == reasons.CANCELLED

    async def drop_transfer(self, job_id: int, digest: str) -> None:
        async with self.db.write() as session:
            row = await session.get(SyncTransfer, (job_id, digest))
            if row is not None:
                await session.delete(row)


async def cancel_jobs(session: AsyncSession, *where: ColumnElement[bool], reason: str, message: str) -> int:
    """Ends the jobs `where` selects as `cancel`, with `reason` and `message`, taking any lease
    (a running attempt stops at its next renewal); returns how many. The caller's conditions say
    which statuses may be cancelled."""
    now = utcnow()
    result = await session.execute(
        update(SyncJob)
        .where(*where)
        .values(
            status=JobStatus.CANCEL,
            reason=reason,
            message=message,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def ever_copied(
    session: AsyncSession,
    namespace: str,
    repo_name: str,
    region: str,
    remote_namespace: str,
    tag: str,
    digest: str,
) -> bool:
    """Whether a job of this sync ever wrote (or found current and verified) `digest` under the
    tag at the target. Any such digest is ours, not only the last one: a target restored from an
    old backup holds an older copy of ours, which the sync may update (no conflict)."""
    found = await session.scalar(
        select(SyncJob.id)
        .where(
            SyncJob.namespace == namespace,
            SyncJob.repo_name == repo_name,
            SyncJob.remote_region_id == region,
            SyncJob.remote_namespace == remote_namespace,
            SyncJob.tag == tag,
            or_(
                SyncJob.written_digest == digest,
                and_(SyncJob.status == JobStatus.SUCCESS, SyncJob.digest == digest),
            ),
        )
        .limit(1)
    )
    return found is not None
