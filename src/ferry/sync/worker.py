"""Sync workers: claim a job, copy, record the outcome. They wake the moment a job commits."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid

from ferry.config import Settings
from ferry.metadata.commits import CommitWakeup
from ferry.metadata.db import Database
from ferry.metadata.models import SyncJob
from ferry.storage import BlobStore
from ferry.sync.bandwidth import Lane
from ferry.sync.jobs import JobRunner, TargetFactory
from ferry.sync.peer_client import Actor, PeerClient
from ferry.sync.peer_health import PeerHealth
from ferry.sync.queue import JobQueue
from ferry.sync.target import KnownBlobs, OciTarget, Target
from ferry.sync.wakeup import JOBS_RECORDED, NOTIFY_CHANNEL

log = logging.getLogger("ferry.sync")


def _asyncpg_dsn(db: Database) -> str:
    """The URL asyncpg itself accepts (LISTEN needs a connection of its own)."""
    return db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class LeaseLost(Exception):
    """Another worker took the job (our lease ran out): this attempt must stop."""


class SyncWorker:
    def __init__(
        self, settings: Settings, db: Database, store: BlobStore, clients: dict[str, PeerClient]
    ) -> None:
        self.settings = settings
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.queue = JobQueue(db, owner, settings.sync_lease_seconds, settings.region)
        self.peers = PeerHealth(clients, self.queue.resume_peer, self.wake)
        self.runner = JobRunner(
            db,
            store,
            self.queue,
            _target_factory(clients),
            settings.sync_chunk_bytes,
            settings.sync_retry_seconds,
            unreachable=self.peers.unreachable,
            succeeded=self._succeeded,
        )
        self.clients = clients
        self._per_peer: dict[str, int] = {}  # jobs running now, per target region
        self._wake = asyncio.Event()
        self._recorded = False  # a wake-up said a job was just recorded
        self._tasks: list[asyncio.Task[None]] = []
        self._jobs: set[asyncio.Task[None]] = set()  # the jobs running now, one per busy slot
        self._commits = CommitWakeup(JOBS_RECORDED, self.wake)

    def wake(self) -> None:
        """A job was recorded (a commit in this process, or NOTIFY): claim without looking first."""
        self._recorded = True
        self._wake.set()

    @property
    def running(self) -> bool:
        """The dispatcher (and LISTEN) loops are alive (a loop only ends when stopped)."""
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    def start(self) -> None:
        if self.settings.sync_workers <= 0:
            return  # this process copies nothing (`--sync-slots 0`)
        self._commits.start()
        self._tasks = [asyncio.create_task(self._dispatch())]
        if not self.queue.db.is_sqlite:
            self._tasks.append(asyncio.create_task(self._listen()))

    async def _dispatch(self) -> None:
        """One loop per process claims jobs for its free slots, several in one write, and
        starts each in a task of its own. It wakes when a job commits in this process (or, on
        PostgreSQL, in any: NOTIFY) and when a slot frees up; otherwise it polls every
        `sync_poll_seconds` (default 1 s), one read, for what no wake-up reports: jobs recorded
        by other processes on SQLite (`serve --workers N`, `ferry worker`), retries whose time
        came, leases that ran out."""
        slots = self.settings.sync_workers
        more = True  # the queue may hold claimable jobs: the first look is a claim
        while True:
            self._wake.clear()
            free = slots - len(self._jobs)
            if free > 0:
                look_first = not (more or self._recorded)
                self._recorded = False
                try:
                    jobs = await self.queue.claim_many(free, look_first=look_first, room=self._room)
                except Exception:
                    log.exception("claiming sync jobs failed")
                    jobs = []
                for job in jobs:
                    region = job.remote_region_id
                    self._per_peer[region] = self._per_peer.get(region, 0) + 1
                    task = asyncio.create_task(self._run_slot(job))
                    self._jobs.add(task)
                    task.add_done_callback(functools.partial(self._slot_done, region))
                # All free slots filled: there may be more behind them, claimed when one frees.
                more = len(jobs) == free
                if more:
                    continue
            if self._wake.is_set():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.sync_poll_seconds)

    def _slot_done(self, region: str, task: asyncio.Task[None]) -> None:
        self._jobs.discard(task)
        self._per_peer[region] -= 1
        self._wake.set()

    def _room(self, region: str) -> int:
        """How many more jobs to `region` this process may start now (its AIMD limit)."""
        client = self.clients.get(region)
        if client is None:
            return self.settings.sync_workers  # not a peer: the job fails at once, let it
        return client.concurrency.allowed() - self._per_peer.get(region, 0)

    def _succeeded(self, region: str) -> None:
        client = self.clients.get(region)
        if client is not None:
            client.concurrency.succeeded()

    async def _run_slot(self, job: SyncJob) -> None:
        try:
            await self._run(job)
        except Exception:
            # Recording the outcome failed too (a full or lost database): the lease runs out
            # and the job is taken again.
            log.exception("sync job %s: recording its outcome failed", job.id)

    async def _listen(self) -> None:
        """Wakes on PostgreSQL NOTIFY, so jobs committed by any process start at once."""
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("LISTEN connection lost; polling until it is back", exc_info=True)
            await asyncio.sleep(2)

    async def _listen_once(self) -> None:
        import asyncpg

        connection = await asyncpg.connect(_asyncpg_dsn(self.queue.db))
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(NOTIFY_CHANNEL, lambda *_args: self.wake())
            self.wake()  # anything committed while nobody listened
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), 30)
                if not lost.is_set():
                    await connection.execute("SELECT 1")  # notices a dead link
        finally:
            await connection.close()

    async def stop(self) -> None:
        self._commits.stop()
        await self.peers.stop()
        for task in self._tasks:
            task.cancel()
        jobs = list(self._jobs)
        for task in jobs:
            task.cancel()  # each hands its job back (JobRunner.attempt)
        for task in [*self._tasks, *jobs]:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, job: SyncJob) -> None:
        """The attempt and its lease renewal together: a lost lease stops the attempt."""
        try:
            async with asyncio.TaskGroup() as group:
                renewal = group.create_task(self._renew(job.id))
                await self.runner.attempt(job)
                renewal.cancel()
        except* LeaseLost:
            log.warning("lost the lease on sync job %s; stopped it", job.id)

    async def _renew(self, job_id: int) -> None:
        interval = self.settings.sync_lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                renewed = await self.queue.renew(job_id)
            except Exception:
                log.exception("renewing the lease on sync job %s failed", job_id)
                continue
            if not renewed:
                raise LeaseLost(job_id)


def lane_of(job: SyncJob) -> Lane:
    """A job's share of its peer's bandwidth: its organization rule's (and that rule's cap), or
    its source repository and target's."""
    if job.org_rule_id is not None:
        return Lane(f"rule:{job.org_rule_id}", job.bandwidth)
    return Lane(f"{job.namespace}/{job.repo_name}>{job.remote_namespace}")


def _target_factory(clients: dict[str, PeerClient]) -> TargetFactory:
    # Per peer, the blobs it confirmed recently (sync.target.KnownBlobs), shared by the jobs of
    # this process; a repair asks about every blob.
    known = {region: KnownBlobs() for region in clients}

    def target_for(job: SyncJob, actor: Actor) -> Target | None:
        client = clients.get(job.remote_region_id)
        if client is None:
            return None
        remembered = None if job.trigger == "repair" else known.get(job.remote_region_id)
        repository = f"{job.remote_namespace}/{job.repo_name}"
        return OciTarget(client, repository, actor, known=remembered, lane=lane_of(job))

    return target_for
