"""The copy algorithm of SYNC.md, in process: a real source region (database, store, images
pushed through the services) and an in-memory target that fails on demand. No server runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from ferry.metadata.models import JobStatus, SyncJob, utcnow
from ferry.sync.copier import TagCopy
from ferry.sync.errors import PeerError, UploadPositionLost
from ferry.sync.jobs import JobRunner
from ferry.sync.peer_client import Actor
from ferry.sync.queue import JobQueue, Outcome
from ferry.sync.source import LocalSource
from ferry.sync.target import Target
from tests.support.fake_target import FakeTarget, dropped, rejected, server_error
from tests.support.inprocess import Built, World, image, index

CHUNK = 1000  # bytes per PATCH: a blob of 2500 bytes goes in three chunks


class Memory:
    """A job's memory between attempts, in a dict (the queue's tables in production)."""

    def __init__(self, last_copied: str | None = None) -> None:
        self.copied = {last_copied} if last_copied else set()
        self.saved: dict[str, tuple[str, int]] = {}
        self.written: str | None = None  # what an attempt wrote under the tag

    async def ever_copied(self, digest: str) -> bool:
        return digest in self.copied

    async def saved_upload(self, digest: str) -> str | None:
        return self.saved[digest][0] if digest in self.saved else None

    async def save_upload(self, digest: str, location: str, offset: int) -> None:
        self.saved[digest] = (location, offset)

    async def drop_upload(self, digest: str) -> None:
        self.saved.pop(digest, None)

    async def tag_written(self, digest: str) -> None:
        self.written = digest

    async def earlier_write(self) -> str | None:
        return self.written


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    region = await World(f"sqlite+aiosqlite:///{tmp_path / 'ferry.db'}", tmp_path).open()
    yield region
    await region.close()


async def copy(
    world: World, target: Target, tag: str = "v1", override: bool = False, memory: Memory | None = None
) -> tuple[Outcome, TagCopy]:
    repository = await world.repository()
    source = LocalSource(world.db, world.store, repository.id, "org/app")
    attempt = TagCopy(source, target, memory or Memory(), CHUNK)
    return await attempt.run(tag, override), attempt


def assert_holds(target: FakeTarget, built: Built, tag: str = "v1") -> None:
    """The target's tag shows the image, and everything it references is there."""
    assert target.tags[tag] == built.digest
    assert target.manifests[built.digest] == built.payload
    for digest, data in built.blobs.items():
        assert target.blobs[digest] == data


# --- order: nothing visible before its content ------------------------------------------------


async def test_an_image_arrives_blobs_first_then_its_tag(world: World) -> None:
    built = image("one", layer_sizes=(300, 2500))
    await world.push(built, "v1")
    target = FakeTarget()
    outcome, _ = await copy(world, target)
    assert outcome.status == JobStatus.SUCCESS, outcome
    assert outcome.digest == built.digest
    assert outcome.bytes_sent == sum(len(b) for b in built.blobs.values())
    assert_holds(target, built)
    finished = [i for i, (op, _) in enumerate(target.calls) if op == "finish_upload"]
    pushed = [i for i, (op, _) in enumerate(target.calls) if op == "put_manifest"]
    assert len(finished) == len(built.blobs) and max(finished) < min(pushed)
    # The top manifest goes straight under its tag, in one PUT, and is checked afterwards.
    assert target.of("put_manifest") == ["v1"]
    assert target.calls[-1] == ("manifest_digest", "v1")


async def test_index_children_go_before_the_index(world: World) -> None:
    amd, arm = image("amd64"), image("arm64", layer_sizes=(10, 20))
    top = index(amd, arm)
    await world.push(top, "v1", amd, arm)
    target = FakeTarget()
    outcome, _ = await copy(world, target)
    assert outcome.status == JobStatus.SUCCESS, outcome
    assert target.of("put_manifest") == [amd.digest, arm.digest, "v1"]
    for child in (amd, arm):
        put_at = target.calls.index(("put_manifest", child.digest))
        for blob in child.blobs:
            assert target.calls.index(("finish_upload", blob)) < put_at
    assert target.tags["v1"] == top.digest and set(target.manifests) == {amd.digest, arm.digest, top.digest}


async def test_blobs_the_target_has_are_skipped_and_mountable_ones_mounted(world: World) -> None:
    built = image("shared", layer_sizes=(100, 200))
    await world.push(built, "v1")
    config, first, second = list(built.blobs)
    target = FakeTarget(blobs={config: built.blobs[config]}, mountable={first: built.blobs[first]})
    outcome, _ = await copy(world, target)
    assert (outcome.blobs_skipped, outcome.blobs_mounted) == (1, 1)
    assert target.of("finish_upload") == [second]
    assert outcome.bytes_sent == len(built.blobs[second])
    assert_holds(target, built)


async def test_a_target_already_current_is_existed_and_nothing_is_written(world: World) -> None:
    built = image("same")
    await world.push(built, "v1")
    target = FakeTarget()
    await copy(world, target)
    target.calls.clear()
    outcome, _ = await copy(world, target)
    assert outcome.status == JobStatus.EXISTED and "already holds" in outcome.message
    assert target.of("put_manifest") == [] and target.of("start_upload") == []


async def test_a_tag_gone_from_the_source_cancels_the_job(world: World) -> None:
    await world.push(image("x"), "v1")
    outcome, _ = await copy(world, FakeTarget(), tag="gone")
    assert outcome.status == JobStatus.CANCEL and "no longer exists" in outcome.message


async def test_a_refused_target_fails_the_job_and_nothing_is_written(world: World) -> None:
    await world.push(image("x"), "v1")
    target = FakeTarget(refuse="organization 'org' not found in region cn-east-3")
    outcome, _ = await copy(world, target)
    assert outcome.status == JobStatus.FAILED and outcome.message.startswith("refused:")
    # The tag and the digest are asked about while the target is asked for rights; nothing else.
    assert {op for op, _ in target.calls} == {"authorize", "manifest_digest"}


# --- override ---------------------------------------------------------------------------------


async def test_override_off_protects_an_image_the_sync_did_not_write(world: World) -> None:
    ours, theirs = image("ours"), image("theirs")
    await world.push(ours, "v1")
    target = FakeTarget(manifests={theirs.digest: theirs.payload}, tags={"v1": theirs.digest})
    outcome, _ = await copy(world, target, override=False)
    assert outcome.status == JobStatus.EXISTED and "override is off" in outcome.message
    assert target.tags["v1"] == theirs.digest and target.of("put_manifest") == []
    outcome, _ = await copy(world, target, override=True)
    assert outcome.status == JobStatus.SUCCESS
    assert_holds(target, ours)


async def test_override_off_still_updates_the_sync_s_own_earlier_copy(world: World) -> None:
    old, new = image("old"), image("new")
    await world.push(old, "v1")
    target = FakeTarget()
    first, _ = await copy(world, target)
    await world.push(new, "v1")  # the tag moves at the source
    outcome, _ = await copy(world, target, override=False, memory=Memory(last_copied=first.digest))
    assert outcome.status == JobStatus.SUCCESS
    assert_holds(target, new)


async def test_a_target_tag_moved_under_the_copy_is_noticed_and_then_protected(world: World) -> None:
    ours, theirs = image("ours"), image("theirs")
    await world.push(ours, "v1")

    def someone_pushes(reference: str) -> None:
        target.manifests[theirs.digest] = theirs.payload
        target.tags[reference] = theirs.digest

    target = FakeTarget(after_put=someone_pushes)
    with pytest.raises(PeerError) as moved:
        await copy(world, target)
    assert moved.value.retryable and "does not resolve" in str(moved.value)
    target.after_put = None
    retried, _ = await copy(world, target, override=False)
    assert retried.status == JobStatus.EXISTED and theirs.digest in retried.message
    assert target.tags["v1"] == theirs.digest


# --- uploads: 416, resume, failures -------------------------------------------------------------


def _session(target: FakeTarget) -> bytearray:
    """The layer's upload session: the config's (far smaller) may be open beside it, as the
    blobs of one manifest are copied at once."""
    return max(target.uploads.values(), key=len)


async def test_a_416_is_recovered_from_where_the_target_says_the_upload_ends(world: World) -> None:
    built = image("big", layer_sizes=(2500,))
    await world.push(built, "v1")
    target = FakeTarget()
    # The second chunk finds the target holding only half of the first (it lost the rest).
    target.fail("upload_chunk", _position_lost(), when=2, before=lambda: _truncate(target, 500))
    outcome, _ = await copy(world, target)
    assert outcome.status == JobStatus.SUCCESS, outcome
    assert target.of("upload_chunk") == ["0-1000", "1000-2000", "500-1500", "1500-2500"]
    assert_holds(target, built)


async def test_repeated_416s_start_the_blob_over_on_the_next_attempt(world: World) -> None:
    built = image("big", layer_sizes=(2500,))
    await world.push(built, "v1")
    target, memory = FakeTarget(), Memory()
    for when in (2, 3, 4):
        target.fail("upload_chunk", _position_lost(), when=when)
    with pytest.raises(PeerError) as lost:
        await copy(world, target, memory=memory)
    assert lost.value.retryable and "lost its position" in str(lost.value)
    assert memory.saved == {}  # the next attempt opens a fresh session
    outcome, _ = await copy(world, target, memory=memory)
    assert outcome.status == JobStatus.SUCCESS
    assert_holds(target, built)


async def test_an_attempt_resumes_from_the_saved_upload_at_the_acknowledged_offset(world: World) -> None:
    built = image("big", layer_sizes=(2500,))
    layer = max(built.blobs, key=lambda d: len(built.blobs[d]))
    await world.push(built, "v1")
    target, memory = FakeTarget(), Memory()
    target.fail("upload_chunk", dropped(), when=3)
    with pytest.raises(PeerError) as broken:
        await copy(world, target, memory=memory)
    assert broken.value.retryable
    assert memory.saved[layer][1] == 2000
    target.calls.clear()
    outcome, attempt = await copy(world, target, memory=memory)
    assert outcome.status == JobStatus.SUCCESS
    # The layer's session goes on (the config's, copied beside it, may or may not have finished).
    assert target.of("upload_chunk") == ["2000-2500"] and layer not in target.of("start_upload")
    config_again = sum(len(built.blobs[d]) for d in target.of("start_upload"))
    assert attempt.tally.sent == 500 + config_again
    assert f"blob {layer} resumed at offset 2000 of 2500" in outcome.steps, outcome.steps
    assert_holds(target, built)


async def test_resume_trusts_the_target_over_the_saved_offset(world: World) -> None:
    """The last chunk landed but its answer was lost: the target holds more than we saved."""
    built = image("big", layer_sizes=(2500,))
    await world.push(built, "v1")
    target, memory = FakeTarget(), Memory()
    layer_bytes = max(built.blobs.values(), key=len)
    target.fail(
        "upload_chunk", dropped(), when=2, before=lambda: _session(target).extend(layer_bytes[1000:2000])
    )
    with pytest.raises(PeerError):
        await copy(world, target, memory=memory)
    target.calls.clear()
    outcome, _ = await copy(world, target, memory=memory)
    assert outcome.status == JobStatus.SUCCESS
    assert target.of("upload_chunk") == ["2000-2500"]
    assert_holds(target, built)


async def test_a_session_the_target_forgot_starts_a_fresh_upload(world: World) -> None:
    built = image("big", layer_sizes=(2500,))
    await world.push(built, "v1")
    target, memory = FakeTarget(), Memory()
    target.fail("upload_chunk", dropped(), when=2)
    with pytest.raises(PeerError):
        await copy(world, target, memory=memory)
    target.uploads.clear()  # the target restarted and dropped its sessions
    target.calls.clear()
    outcome, _ = await copy(world, target, memory=memory)
    assert outcome.status == JobStatus.SUCCESS
    layer = max(built.blobs, key=lambda d: len(built.blobs[d]))
    # The layer opens one fresh session (the config may open one too: whether it had arrived
    # before the layer's chunk broke the first attempt depends on how the two copies interleaved).
    assert target.of("start_upload").count(layer) == 1
    assert target.of("upload_chunk")[0] == "0-1000"
    assert_holds(target, built)


async def test_one_failing_blob_stops_the_copy_with_its_own_error(world: World) -> None:
    built = image("many", layer_sizes=(10, 20, 30, 40, 50))
    await world.push(built, "v1")
    target = FakeTarget()
    target.fail("finish_upload", server_error(502), when=2)
    with pytest.raises(PeerError) as failed:  # the error itself, not an ExceptionGroup
        await copy(world, target)
    assert failed.value.retryable and failed.value.status == 502
    assert "v1" not in target.tags


async def test_a_refused_manifest_is_final_and_a_5xx_is_retryable(world: World) -> None:
    await world.push(image("x"), "v1")
    target = FakeTarget()
    target.fail("put_manifest", rejected(400))
    with pytest.raises(PeerError) as final:
        await copy(world, target)
    assert not final.value.retryable
    target.fail("put_manifest", server_error(503, retry_after=7))
    with pytest.raises(PeerError) as later:
        await copy(world, target)
    assert later.value.retryable and later.value.retry_after == 7


# --- referrers ----------------------------------------------------------------------------------


async def test_referrers_follow_recursively_after_the_image(world: World) -> None:
    built = image("signed")
    signature = image("signature", subject=built)
    countersign = image("countersign", subject=signature)  # a signature of the signature
    await world.push(built, "v1")
    await world.push(signature, signature.digest)
    await world.push(countersign, countersign.digest)
    target = FakeTarget()
    outcome, attempt = await copy(world, target)
    assert outcome.status == JobStatus.SUCCESS
    assert attempt.tally.referrers_copied == 2
    assert target.of("put_manifest") == ["v1", signature.digest, countersign.digest]
    for referrer in (signature, countersign):
        assert target.manifests[referrer.digest] == referrer.payload


async def test_a_referrer_pushed_after_the_copy_is_copied_to_a_current_target(world: World) -> None:
    built = image("signed")
    await world.push(built, "v1")
    target = FakeTarget()
    await copy(world, target)
    signature = image("late signature", subject=built)
    await world.push(signature, signature.digest)
    outcome, _ = await copy(world, target)
    assert outcome.status == JobStatus.SUCCESS and "copied 1 referrer" in outcome.message
    assert target.manifests[signature.digest] == signature.payload


# --- coalescing: the newest state wins ------------------------------------------------------------


async def test_moves_of_a_tag_while_its_job_waits_end_in_one_job_with_the_last_image(world: World) -> None:
    first = image("first")
    await world.push(first, "latest")
    await world.add_rule()
    pushes = [image(f"push {n}") for n in range(5)]
    for built in pushes:
        await world.push(built, "latest")
    (job,) = await world.waiting()
    target = FakeTarget()
    outcome, _ = await copy(world, target, tag=job.tag)
    assert outcome.digest == pushes[-1].digest
    assert_holds(target, pushes[-1], "latest")


# --- a whole attempt recorded: retryable waits, final fails ---------------------------------------


async def _attempt(world: World, target: FakeTarget, retry_seconds: float = 3600) -> SyncJob:
    job_id = await world.manual_job("v1")
    queue = JobQueue(world.db, "worker-1", lease_seconds=30)
    claimed = await queue.claim()
    assert claimed is not None and claimed.id == job_id

    def target_for(job: SyncJob, actor: Actor) -> Target:
        assert (actor.account, actor.user) == ("acme", "root")
        return target

    await JobRunner(world.db, world.store, queue, target_for, CHUNK, retry_seconds).attempt(claimed)
    return await world.job(job_id)


async def test_a_429_with_retry_after_puts_the_job_back_to_wait_at_least_that_long(world: World) -> None:
    await world.push(image("x"), "v1")
    target = FakeTarget()
    target.fail("put_manifest", server_error(429, retry_after=120))
    job = await _attempt(world, target)
    assert job.status == JobStatus.WAITING and job.lease_owner is None
    assert "429" in job.message and job.attempts == 1
    assert job.next_attempt_at >= utcnow() + timedelta(seconds=110)


async def test_a_final_failure_ends_the_job_failed_with_the_reason(world: World) -> None:
    await world.push(image("x"), "v1")
    target = FakeTarget()
    target.fail("put_manifest", rejected(400))
    job = await _attempt(world, target)
    assert job.status == JobStatus.FAILED and "manifest invalid" in job.message
    assert job.finished_at is not None


async def test_a_retryable_failure_past_the_deadline_times_out(world: World) -> None:
    await world.push(image("x"), "v1")
    target = FakeTarget()
    target.fail("has_blob", dropped())
    job = await _attempt(world, target, retry_seconds=0)
    assert job.status == JobStatus.TIMEOUT and "unreachable" in job.message


async def test_a_successful_attempt_records_digest_and_counts(world: World) -> None:
    built = image("x", layer_sizes=(100,))
    await world.push(built, "v1")
    job = await _attempt(world, FakeTarget())
    assert (job.status, job.digest) == (JobStatus.SUCCESS, built.digest)
    assert job.bytes_sent == sum(len(b) for b in built.blobs.values())


def _position_lost() -> Exception:
    return UploadPositionLost("/v2/org/app/blobs/uploads/1")


def _truncate(target: FakeTarget, size: int) -> None:
    del _session(target)[size:]


# --- repair (a job with trigger "repair") ------------------------------------------------------


async def test_a_repair_restores_what_a_current_tag_lacks_where_a_normal_copy_trusts_it(world: World) -> None:
    amd, arm = image("amd64"), image("arm64", layer_sizes=(10, 20))
    top = index(amd, arm)
    await world.push(top, "v1", amd, arm)
    target = FakeTarget()
    assert (await copy(world, target))[0].status == JobStatus.SUCCESS
    lost = next(iter(amd.blobs))
    del target.blobs[lost], target.manifests[arm.digest]
    outcome, _ = await copy(world, target)
    assert outcome.status == JobStatus.EXISTED and lost not in target.blobs
    repository = await world.repository()
    source = LocalSource(world.db, world.store, repository.id, "org/app")
    repair = TagCopy(source, target, Memory(), CHUNK, repair=True, target_name="cn-east-3/org")
    outcome = await repair.run("v1", override=False)
    assert outcome.status == JobStatus.SUCCESS and "repaired" in outcome.message, outcome
    assert dict(repair.restored) == {"missing_blob": 1, "missing_manifest": 1}
    assert target.blobs[lost] == amd.blobs[lost] and target.manifests[arm.digest] == arm.payload
    # The present index is not pushed again.
    assert target.of("put_manifest").count("v1") == 1


async def test_override_off_updates_any_earlier_copy_of_the_sync_not_only_the_last(world: World) -> None:
    first, second, third = image("first"), image("second"), image("third")
    await world.push(third, "v1")
    # The target was restored from a backup: it holds the first of the sync's copies.
    target = FakeTarget(tags={"v1": first.digest}, manifests={first.digest: first.payload})
    memory = Memory(last_copied=second.digest)
    memory.copied.add(first.digest)
    outcome, _ = await copy(world, target, memory=memory)
    assert outcome.status == JobStatus.SUCCESS and target.tags["v1"] == third.digest


# --- the step log and a crash-retry's own earlier copy -----------------------------------------


async def test_the_step_log_says_what_was_uploaded_and_a_retry_knows_its_own_copy(world: World) -> None:
    built = image("steps", layer_sizes=(300, 2500))
    await world.push(built, "v1")
    target, memory = FakeTarget(), Memory()
    outcome, _ = await copy(world, target, memory=memory)
    assert outcome.status == JobStatus.SUCCESS, outcome
    assert outcome.target_digest == built.digest
    assert any("uploaded (2500 bytes, in chunks)" in line for line in outcome.steps), outcome.steps
    assert any(line == f"tag v1 → {built.digest} written" for line in outcome.steps), outcome.steps
    assert memory.written == built.digest
    # The first attempt wrote the tag, then its process died before recording the outcome.
    repository = await world.repository()
    source = LocalSource(world.db, world.store, repository.id, "org/app")
    again = await TagCopy(source, target, memory, CHUNK, attempt=2).run("v1", False)
    assert again.status == JobStatus.EXISTED, again
    assert again.message.endswith(
        f"already holds {built.digest}: copied by this job's attempt 1 before it was interrupted"
    ), again.message
    assert again.steps[0] == f"target already current: v1 → {built.digest}"


async def test_a_conflict_is_existed_with_reason_conflict(world: World) -> None:
    built = image("theirs", layer_sizes=(100,))
    await world.push(built, "v1")
    target = FakeTarget()
    target.tags["v1"] = "sha256:" + "0" * 64
    outcome, _ = await copy(world, target)
    assert (outcome.status, outcome.reason) == (JobStatus.EXISTED, "conflict"), outcome
    assert outcome.target_digest == "sha256:" + "0" * 64
