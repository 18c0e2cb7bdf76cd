"""One attempt at one job: who it copies for, from where to where, and what becomes of it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ferry.metadata.db import Database
from ferry.metadata.models import JobStatus, SyncJob
from ferry.storage import BlobStore
from ferry.sync.authorization import SyncRefused, job_actor
from ferry.sync.copier import TagCopy
from ferry.sync.errors import PeerError
from ferry.sync.peer_client import Actor
from ferry.sync.queue import JobQueue, Outcome
from ferry.sync.source import LocalSource
from ferry.sync.target import Target

log = logging.getLogger("ferry.sync")

# The target for a job, acting for its actor; None when the job's region is not a peer.
TargetFactory = Callable[[SyncJob, Actor], Target | None]


class QueueMemory:
    """A job's memory between attempts, kept in the queue's tables."""

    def __init__(self, queue: JobQueue, job: SyncJob) -> None:
        self.queue = queue
        self.job = job

    async def last_copied(self) -> str | None:
        return await self.queue.last_copied(self.job)

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
    ) -> None:
        self.db = db
        self.store = store
        self.queue = queue
        self.targets = targets
        self.chunk_bytes = chunk_bytes
        self.retry_seconds = retry_seconds

    async def attempt(self, job: SyncJob) -> None:
        """Runs the job once and records what happened: a final state, or waiting to retry."""
        try:
            outcome = await self.copy(job)
        except PeerError as error:
            if error.retryable:
                await self.queue.retry_later(job, str(error), error.retry_after, self.retry_seconds, 0)
            else:
                await self.queue.finish(job.id, Outcome(JobStatus.FAILED, str(error)))
            return
        except asyncio.CancelledError:
            # Shutting down, or the lease was lost: hand the job back now rather than after the
            # lease runs out (a no-op when another worker holds it).
            with contextlib.suppress(Exception):
                await asyncio.shield(self.queue.retry_later(job, "worker stopped", 0, self.retry_seconds, 0))
            raise
        except Exception as error:
            log.exception("sync job %s failed unexpectedly", job.id)
            message = f"internal error: {type(error).__name__}"
            await self.queue.retry_later(job, message, None, self.retry_seconds, 0)
            return
        await self.queue.finish(job.id, outcome)
        log.info(
            "sync job %s %s/%s:%s → %s/%s: %s",
            job.id,
            job.namespace,
            job.repo_name,
            job.tag,
            job.remote_region_id,
            job.remote_namespace,
            outcome.status,
        )

    async def copy(self, job: SyncJob) -> Outcome:
        """The job's outcome; raises PeerError when the target fails."""
        if job.repository_id is None:
            message = (
                f"{job.namespace}/{job.repo_name}:{job.tag} no longer exists at the source; nothing copied"
            )
            return Outcome(JobStatus.CANCEL, message)
        try:
            actor = await job_actor(self.db, job)
        except SyncRefused as refused:
            return Outcome(JobStatus.FAILED, f"refused: {refused}; nothing copied")
        target = self.targets(job, actor)
        if target is None:
            return Outcome(JobStatus.FAILED, f"region {job.remote_region_id} is not a peer")
        source = LocalSource(self.db, self.store, job.repository_id, f"{job.namespace}/{job.repo_name}")
        copy = TagCopy(source, target, QueueMemory(self.queue, job), self.chunk_bytes)
        return await copy.run(job.tag, job.override)
