"""The job queue of SYNC.md on both databases: claim, lease expiry, retry, coalescing.

In process: jobs are born as a push makes them (tests/support/inprocess.py); no server runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from ferry.metadata.models import JobStatus, SyncJob, utcnow
from ferry.sync.queue import JobQueue, Outcome
from tests.support.inprocess import World, database_url, image


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    region = await World(database_url(request.param, tmp_path, request), tmp_path).open()
    yield region
    await region.close()


async def _with_rule(world: World) -> None:
    """org/app exists with an automatic rule; pushes to it from now on record jobs."""
    await world.push(image("before the rule"), "base")
    await world.add_rule()


async def _due_now(world: World, job_id: int) -> None:
    """Brings a retry's next attempt to now, instead of waiting out its backoff."""
    async with world.db.write() as session:
        await session.execute(update(SyncJob).where(SyncJob.id == job_id).values(next_attempt_at=utcnow()))


async def test_a_push_records_one_waiting_job_per_rule_and_a_claim_takes_it(world: World) -> None:
    await _with_rule(world)
    assert await world.jobs() == []  # tags that existed before the rule are not copied
    await world.push(image("v1"), "v1")
    (job,) = await world.waiting()
    queue = JobQueue(world.db, "worker-a", lease_seconds=30)
    claimed = await queue.claim()
    assert claimed is not None and claimed.id == job.id
    stored = await world.job(job.id)
    assert stored.status == JobStatus.RUNNING and stored.lease_owner == "worker-a"
    assert stored.attempts == 1 and stored.lease_expires_at is not None
    assert await queue.claim() is None  # nothing else to take


async def test_claims_take_the_oldest_job_first(world: World) -> None:
    await _with_rule(world)
    for tag in ("a", "b", "c"):
        await world.push(image(tag), tag)
    queue = JobQueue(world.db, "worker-a", lease_seconds=30)
    tags = []
    while (job := await queue.claim()) is not None:
        tags.append(job.tag)
    assert tags == ["a", "b", "c"]


async def test_two_workers_never_claim_the_same_job(world: World) -> None:
    await _with_rule(world)
    for n in range(6):
        await world.push(image(f"image {n}"), f"t{n}")
    workers = [JobQueue(world.db, f"worker-{n}", lease_seconds=30) for n in range(3)]

    async def drain(queue: JobQueue) -> list[int]:
        taken = []
        while (job := await queue.claim()) is not None:
            taken.append(job.id)
        return taken

    taken = await asyncio.gather(*(drain(queue) for queue in workers))
    ids = [job_id for batch in taken for job_id in batch]
    assert sorted(ids) == sorted(job.id for job in await world.jobs())
    assert len(ids) == len(set(ids))


async def test_an_expired_lease_lets_another_worker_take_the_job(world: World) -> None:
    await _with_rule(world)
    await world.push(image("v1"), "v1")
    dead = JobQueue(world.db, "dead-worker", lease_seconds=0.2)
    job = await dead.claim()
    assert job is not None
    alive = JobQueue(world.db, "alive-worker", lease_seconds=30)
    assert await alive.claim() is None  # the lease still holds
    await asyncio.sleep(0.3)
    taken = await alive.claim()
    assert taken is not None and taken.id == job.id and taken.attempts == 2
    # The worker that lost the lease can neither renew nor record an outcome any more.
    assert not await dead.renew(job.id)
    await dead.finish(job.id, Outcome(JobStatus.SUCCESS, "too late"))
    stored = await world.job(job.id)
    assert stored.status == JobStatus.RUNNING and stored.lease_owner == "alive-worker"
    assert await alive.renew(job.id)


async def test_a_retry_waits_its_backoff_then_runs_again(world: World) -> None:
    await _with_rule(world)
    await world.push(image("v1"), "v1")
    queue = JobQueue(world.db, "worker-a", lease_seconds=30)
    job = await queue.claim()
    assert job is not None
    status = await queue.retry_later(job, "region cn-east-3 answered 503", 30, 3600, 0)
    stored = await world.job(job.id)
    assert status == stored.status == JobStatus.WAITING and stored.lease_owner is None
    assert "attempt 1 failed, retrying: region cn-east-3 answered 503" == stored.message
    assert stored.next_attempt_at >= utcnow() + timedelta(seconds=25)  # Retry-After honoured
    assert await queue.claim() is None
    await _due_now(world, job.id)
    again = await queue.claim()
    assert again is not None and again.id == job.id and again.attempts == 2


async def test_a_retry_past_the_deadline_ends_the_job_timeout(world: World) -> None:
    await _with_rule(world)
    await world.push(image("v1"), "v1")
    queue = JobQueue(world.db, "worker-a", lease_seconds=30)
    job = await queue.claim()
    assert job is not None
    assert await queue.retry_later(job, "unreachable", None, 0, 0) == JobStatus.TIMEOUT
    stored = await world.job(job.id)
    assert stored.status == JobStatus.TIMEOUT and "gave up after 1 attempts: unreachable" in stored.message
    assert stored.finished_at is not None


async def test_finishing_records_the_outcome_and_forgets_saved_uploads(world: World) -> None:
    await _with_rule(world)
    await world.push(image("v1"), "v1")
    queue = JobQueue(world.db, "worker-a", lease_seconds=30)
    job = await queue.claim()
    assert job is not None
    await queue.save_transfer(job.id, "sha256:" + "a" * 64, "/v2/org/app/blobs/uploads/1", 1000)
    copied = "sha256:" + "b" * 64
    await queue.finish(job.id, Outcome(JobStatus.SUCCESS, "copied", copied, 1000, 1, 2))
    stored = await world.job(job.id)
    assert (stored.status, stored.digest, stored.bytes_sent) == (JobStatus.SUCCESS, copied, 1000)
    assert (stored.blobs_skipped, stored.blobs_mounted, stored.lease_owner) == (1, 2, None)
    assert await queue.transfer(job.id, "sha256:" + "a" * 64) is None
    assert await queue.ever_copied(stored, copied)
    assert not await queue.ever_copied(stored, "sha256:" + "c" * 64)


async def test_moves_while_a_job_waits_add_no_job(world: World) -> None:
    await _with_rule(world)
    for n in range(4):
        await world.push(image(f"push {n}"), "latest")
    assert len(await world.waiting()) == 1
    # A push that leaves the tag where it is records nothing either.
    last = image("push 3")
    await world.push(last, "latest")
    assert len(await world.jobs()) == 1


async def test_a_move_while_a_job_runs_queues_one_more_that_waits_for_it(world: World) -> None:
    await _with_rule(world)
    await world.push(image("first"), "latest")
    queue = JobQueue(world.db, "worker-a", lease_seconds=30)
    running = await queue.claim()
    assert running is not None
    for n in range(3):
        await world.push(image(f"during {n}"), "latest")
    (waiting,) = await world.waiting()
    assert waiting.id != running.id
    # At most one job per (target, tag) runs: the second waits until the first ends.
    other = JobQueue(world.db, "worker-b", lease_seconds=30)
    assert await other.claim() is None
    await queue.finish(running.id, Outcome(JobStatus.SUCCESS, "copied"))
    taken = await other.claim()
    assert taken is not None and taken.id == waiting.id


async def test_other_tags_run_while_one_tag_is_busy(world: World) -> None:
    await _with_rule(world)
    await world.push(image("a1"), "a")
    queue = JobQueue(world.db, "worker-a", lease_seconds=30)
    assert await queue.claim() is not None
    await world.push(image("a2"), "a")
    await world.push(image("b1"), "b")
    taken = await queue.claim()
    assert taken is not None and taken.tag == "b"
