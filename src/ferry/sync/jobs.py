"""One attempt at one job: who it copies for, from where to where, and what becomes of it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from ferry.metadata.db import Database
from ferry.metadata.models import JobStatus, SyncJob
from ferry.observability.logs import job_context
from ferry.storage import BlobStore
from ferry.sync import joblog, jobmetrics, pacing, reasons
from ferry.sync.authorization import SyncRefused, job_actor
from ferry.sync.copier import SMALL_BLOB_BYTES, TagCopy
from ferry.sync.deletion import delete_at_target
from ferry.sync.errors import PeerError
from ferry.sync.peer_client import Actor
from ferry.sync.platforms import PlatformSubsetSource
from ferry.sync.queue import JobQueue, Outcome
from ferry.sync.source import LocalSource
from ferry.sync.target import Target
from ferry.sync.triggers import DELETE

log = logging.getLogger("ferry.sync")

# How long deleting one upload session of a cancelled job may take.
ABORT_SECONDS = 10.0

# The target for a job, acting for its actor; None when the job's region is not a peer.
TargetFactory = Callable[[SyncJob, Actor], Target | None]


class QueueMemory:
    """A job's memory between attempts, kept in the queue's tables."""

    def __init__(self, queue: JobQueue, job: SyncJob) -> None:
        self.queue = queue
        self.job = job
        # What earlier attempts wrote under the tag, as the job stood when this attempt began.
        self.earlier = job.written_digest

    async def tag_written(self, digest: str) -> None:
        await self.queue.tag_written(self.job.id, digest)

    async def earlier_write(self) -> str | None:
        return self.earlier

    async def ever_copied(self, digest: str) -> bool:
        return await self.queue.ever_copied(self.job, digest)

    async def saved_upload(self, digest: str) -> str | None:
        saved = await self.queue.transfer(self.job.id, digest)
        return saved.location if saved else None

    async def save_upload(self, digest: str, location: str, offset: int) -> None:
        await self.queue.save_transfer(self.job.id, digest, location, offset)

    async def drop_upload(self, digest: str) -> None:
        await self.queue.drop_transfer(self.job.id, digest)


class JobRunner:
    def __init__(
        self,
        db: Database,
        store: BlobStore,
        queue: JobQueue,
        targets: TargetFactory,
        chunk_bytes: int,
        retry_seconds: float,
        unreachable: Callable[[str], None] | None = None,
        succeeded: Callable[[str], None] | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.queue = queue
        self.targets = targets
        self.chunk_bytes = chunk_bytes
        self.retry_seconds = retry_seconds
        # Told the region of every attempt that found its peer unreachable (sync/peer_health.py).
        self.unreachable = unreachable
        # Told the region of every attempt that ended well (sync/concurrency.py grows its limit).
        self.succeeded = succeeded
        self._copies: dict[int, TagCopy] = {}  # job id → its running attempt's copy

    async def attempt(self, job: SyncJob) -> None:
        """Runs the job once and records (and logs) what happened: a final state, or waiting."""
        with job_context(job.id):
            joblog.started(job)
            jobmetrics.started(job)
            began = time.monotonic()
            # Audits step aside while live jobs copy (sync.pacing); repairs are audit work.
            live = pacing.LIVE.copying() if job.trigger != "repair" else contextlib.nullcontext()
            with live:
                outcome = await self._attempt(job)
            if outcome is not None:
                joblog.finished(job, outcome, time.monotonic() - began)
                jobmetrics.finished(job, outcome)
                if self.succeeded is not None and outcome.status in (JobStatus.SUCCESS, JobStatus.EXISTED):
                    self.succeeded(job.remote_region_id)

    async def _retry_later(
        self, job: SyncJob, cause: str, retry_after: float | None, reason: str, steps: list[str]
    ) -> Outcome | None:
        """Waiting again (logged as a retry), or, past the deadline, the timeout it became."""
        status = await self.queue.retry_later(
            job, cause, retry_after, self.retry_seconds, 0, reason=reason, steps=steps
        )
        if status == JobStatus.TIMEOUT:
            return Outcome(JobStatus.TIMEOUT, cause)  # for the log; the queue recorded its own words
        joblog.retrying(job, cause, job.next_attempt_at)
        return None

    async def _attempt(self, job: SyncJob) -> Outcome | None:
        """The final outcome it recorded, or None when the job waits for another attempt."""
        steps: list[str] = []  # the copier's step log, kept when the attempt fails midway
        try:
            outcome = await self.copy(job, steps)
        except PeerError as error:
            jobmetrics.failed(job, error)
            reason = reasons.of_error(error)
            if reason == reasons.UNREACHABLE and self.unreachable is not None:
                self.unreachable(job.remote_region_id)
            if error.retryable:
                return await self._retry_later(job, str(error), error.retry_after, reason, steps)
            failed = Outcome(JobStatus.FAILED, str(error), reason=reason, steps=[*steps, f"failed: {error}"])
            await self.queue.finish(job.id, failed, job)
            return failed
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._stopped(job, steps))
            raise
        except Exception as error:
            log.exception("sync job %s failed unexpectedly", job.id)
            jobmetrics.failed(job, error)
            cause = f"internal error: {type(error).__name__}"
            return await self._retry_later(job, cause, None, reasons.INTERNAL, steps)
        finally:
            self._copies.pop(job.id, None)
        await self.queue.finish(job.id, outcome, job)
        return outcome

    async def _stopped(self, job: SyncJob, steps: list[str]) -> None:
        """The attempt was stopped. Cancelled by hand (sync/cancel.py): delete the upload
        sessions it held at the target. Shutting down, or the lease lost: hand the job back now
        rather than after the lease runs out (a no-op when another worker holds it)."""
        if await self.queue.cancelled_by_hand(job.id):
            await self._abort_uploads(job)
            joblog.cancelled(job)
            return
        await self.queue.retry_later(
            job, "worker stopped", 0, self.retry_seconds, 0, reason=reasons.WORKER_STOPPED, steps=steps
        )

    async def _abort_uploads(self, job: SyncJob) -> None:
        copy = self._copies.get(job.id)
        locations = set(await self.queue.transfer_locations(job.id))
        if copy is not None:
            locations |= set(copy.open_uploads.values())
            for location in sorted(locations):
                try:
                    async with asyncio.timeout(ABORT_SECONDS):
                        await copy.target.abort_upload(location)
                except (PeerError, TimeoutError) as error:
                    # The target's upload expiry removes what could not be deleted now.
                    log.warning("sync job %s: could not delete upload %s: %s", job.id, location, error)
        await self.queue.drop_transfers(job.id)

    async def copy(self, job: SyncJob, steps: list[str] | None = None) -> Outcome:
        """The job's outcome; raises PeerError when the target fails. The copier writes its
        step log into `steps` as it goes."""
        if job.repository_id is None:
            message = (
                f"{job.namespace}/{job.repo_name}:{job.tag} no longer exists at the source; nothing copied"
            )
            return Outcome(JobStatus.CANCEL, message, reason=reasons.SOURCE_GONE)
        try:
            actor = await job_actor(self.db, job)
        except SyncRefused as refused:
            return Outcome(JobStatus.FAILED, f"refused: {refused}; nothing copied", reason=reasons.REFUSED)
        target = self.targets(job, actor)
        if target is None:
            message = f"region {job.remote_region_id} is not a peer"
            return Outcome(JobStatus.FAILED, message, reason=reasons.NOT_PEER)
        memory = QueueMemory(self.queue, job)
        if job.trigger == DELETE:
            return await delete_at_target(job, target, memory.ever_copied)
        source = LocalSource(self.db, self.store, job.repository_id, f"{job.namespace}/{job.repo_name}")
        if job.platforms:
            source = PlatformSubsetSource(source, job.platforms)
        copy = TagCopy(
            source,
            target,
            memory,
            self.chunk_bytes,
            job.remote_region_id,
            repair=job.trigger == "repair",
            target_name=f"{job.remote_region_id}/{job.remote_namespace}",
            attempt=job.attempts,
            small_blob_bytes=SMALL_BLOB_BYTES,
        )
        if steps is not None:
            copy.tally.steps = steps
        self._copies[job.id] = copy
        outcome = await copy.run(job.tag, job.override)
        if isinstance(source, PlatformSubsetSource) and source.source_digest and outcome.digest:
            # The record names the source's digest (what the tag's state compares with); the
            # subset index the target holds is its target digest and its written digest.
            outcome.target_digest = outcome.target_digest or outcome.digest
            outcome.digest = source.source_digest
        return outcome
