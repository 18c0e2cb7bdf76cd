"""The copy algorithm: one tag from a source to a target, bottom-up, so the target never shows a
manifest with missing content.

Order: child manifests (every platform of an index), then for each blob HEAD → mount → stream (the
blobs of one manifest a few at a time), then the child manifests by digest and the top manifest
under its tag, then a check that the target's tag resolves to the copied digest, then the
referrers (signatures, SBOMs) of every copied manifest. Harbor's split: this is the transfer;
`source.LocalSource` and `target.Target` are the two adapters.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from ferry.metadata.models import JobStatus, utcnow
from ferry.observability import metrics
from ferry.sync import reasons
from ferry.sync.authorization import SyncRefused
from ferry.sync.errors import PeerError, UploadPositionLost
from ferry.sync.queue import Outcome
from ferry.sync.source import LocalSource
from ferry.sync.target import Target

# Blobs of one manifest copied at once: round trips to the peer overlap instead of adding up.
BLOB_CONCURRENCY = 4
# Blobs up to this size go whole in one request when no mount is known to find them (JobRunner).
SMALL_BLOB_BYTES = 256 * 1024
# 416s in a row on one blob before the upload starts over from zero.
POSITION_RETRIES = 2
# Lines of step log one attempt keeps (a big index has hundreds of blobs).
STEPS_PER_ATTEMPT = 40
T = TypeVar("T")
U = TypeVar("U")


class JobMemory(Protocol):
    """What a job keeps between attempts (the queue's rows, or a dict in tests)."""

    async def ever_copied(self, digest: str) -> bool:
        """Whether this sync ever copied `digest` to this tag at the target (then it is ours)."""
        ...

    async def saved_upload(self, digest: str) -> str | None:
        """The upload session an earlier attempt left for `digest`."""
        ...

    async def save_upload(self, digest: str, location: str, offset: int) -> None: ...

    async def drop_upload(self, digest: str) -> None: ...

    async def tag_written(self, digest: str) -> None:
        """This attempt is about to write `digest` under the tag at the target (recorded before
        the write: what is recorded may not have been written, never the reverse)."""
        ...

    async def earlier_write(self) -> str | None:
        """The digest an earlier attempt of this job wrote under the tag, if any."""
        ...


@asynccontextmanager
async def together() -> AsyncIterator[asyncio.TaskGroup]:
    """A TaskGroup whose first failure is raised as itself: when one task fails the others are
    cancelled, and callers handle a PeerError, not an ExceptionGroup."""
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None


async def both(first: Coroutine[Any, Any, T], second: Coroutine[Any, Any, U]) -> tuple[T, U]:
    """Two calls at once; if one fails, the other is cancelled and the failure raised."""
    async with together() as group:
        a, b = group.create_task(first), group.create_task(second)
    return a.result(), b.result()


@dataclass
class Tally:
    sent: int = 0
    skipped: int = 0
    mounted: int = 0
    referrers_copied: int = 0
    manifests_done: set[str] = field(default_factory=set)
    blobs_done: set[str] = field(default_factory=set)
    # What this attempt did, a line per step, for the job record (explain shows it).
    steps: list[str] = field(default_factory=list)

    def note(self, line: str) -> None:
        """One step of the log, up to STEPS_PER_ATTEMPT lines (then one line saying so)."""
        if len(self.steps) < STEPS_PER_ATTEMPT:
            self.steps.append(line)
        elif len(self.steps) == STEPS_PER_ATTEMPT:
            self.steps.append("… more steps not logged")


class TagCopy:
    """One attempt at copying one tag; `run` returns the job's outcome or raises PeerError."""

    def __init__(
        self,
        source: LocalSource,
        target: Target,
        memory: JobMemory,
        chunk_bytes: int,
        target_region: str = "-",
        repair: bool = False,
        target_name: str = "-",
        attempt: int = 1,
        small_blob_bytes: int = 0,
    ) -> None:
        self.source = source
        # Blobs up to this size the target is not known to hold elsewhere go in one request
        # (Target.push_blob), not mount-then-upload; 0: always try a mount first.
        self.small_blob_bytes = small_blob_bytes
        self.target = target
        self.memory = memory
        self.chunk_bytes = chunk_bytes
        self.tally = Tally()
        # digest → location of each upload session this attempt holds open at the target (what
        # a cancelled job deletes there).
        self.open_uploads: dict[str, str] = {}
        self.region = target_region  # the metrics' label
        self.visible_at: datetime | None = None  # when the target's tag was seen at the digest
        # Repair (a job with trigger "repair"): no "present" shortcut. Every child manifest, blob
        # and referrer is asked about and what is missing is copied; what it restored is counted
        # by drift kind (ferry_sync_drift_repaired_total, labelled with target_name REGION/ORG).
        self.repair = repair
        self.target_name = target_name
        self.restored: Counter[str] = Counter()
        self.attempt = attempt  # which attempt of its job this is (for the step log's words)
        self.current: str | None = None  # what the target's tag held when this attempt looked
        self._tag_reported: str | None = None  # the digest the tag PUT's answer named
        # Copies in flight, so that a blob or child manifest wanted twice (children of one index
        # copied at once share layers) is copied once and everyone waits for that copy.
        self._blob_copies: dict[str, asyncio.Task[None]] = {}
        self._manifest_copies: dict[str, asyncio.Task[None]] = {}
        self._blob_slots = asyncio.Semaphore(BLOB_CONCURRENCY)

    async def run(self, tag: str, override: bool) -> Outcome:
        digest = await self.source.tag_digest(tag)
        if digest is None:
            message = f"{self.source.name}:{tag} no longer exists at the source; nothing copied"
            return Outcome(JobStatus.CANCEL, message, reason=reasons.SOURCE_GONE)
        # Rights can change after the rule was made: the target is asked on every run. The
        # question goes while the tag and the digest are asked about (reads, with an earlier
        # job's token when there is one); nothing is written before the answer.
        checked = asyncio.ensure_future(self.target.authorize())
        try:
            current, present = await both(
                self.target.manifest_digest(tag), self.target.manifest_digest(digest)
            )
        except PeerError:
            # A refused token fails the reads too: the refusal is the better answer.
            try:
                await checked
            except SyncRefused as refused:
                return self._refused(refused, digest)
            except PeerError:
                pass
            raise
        except BaseException:
            checked.cancel()
            raise
        try:
            await checked
        except SyncRefused as refused:
            return self._refused(refused, digest)
        return await self._copy(tag, override, digest, current, present)

    def _refused(self, refused: SyncRefused, digest: str) -> Outcome:
        self.tally.note("the target refused the copy")
        outcome = self._outcome(JobStatus.FAILED, f"refused: {refused}; nothing copied", digest)
        outcome.reason = reasons.TARGET_ORG_MISSING
        return outcome

    async def _copy(
        self, tag: str, override: bool, digest: str, current: str | None, present: str | None
    ) -> Outcome:
        """The rest of the run, once the target said what it holds and that the copy may go."""
        self.current = current
        where = self.target.describe(tag)
        if current == digest:
            self.visible_at = utcnow()
            self.tally.note(f"target already current: {tag} → {digest}")
            if self.repair:
                await self._copy_manifest(digest, present=True)
            await self._copy_referrers(await self.source.tree(digest))
            if self.restored:
                restored = ", ".join(f"{n} {kind}" for kind, n in sorted(self.restored.items()))
                return self._outcome(JobStatus.SUCCESS, f"{where} was current; repaired {restored}", digest)
            if self.tally.referrers_copied:
                message = f"{where} was current; copied {self.tally.referrers_copied} referrer(s)"
                return self._outcome(JobStatus.SUCCESS, message, digest)
            return self._outcome(JobStatus.EXISTED, await self._already(where, digest), digest)
        if current is not None and not override and not await self.memory.ever_copied(current):
            # Only an image this sync did not put there is protected; its own copies keep updating.
            message = f"{where} holds a different image ({current}) and override is off; left unchanged"
            self.tally.note(f"conflict: the target holds {current}, override is off")
            outcome = self._outcome(JobStatus.EXISTED, message, digest)
            outcome.reason = reasons.CONFLICT
            return outcome
        await self._copy_manifest(digest, tag=tag, present=present == digest)
        # The tag PUT's answer names the digest the target stored under the tag: when it is
        # ours, that is the check; a target that does not say is asked.
        if self._tag_reported != digest and await self.target.manifest_digest(tag) != digest:
            raise PeerError(
                f"{where} does not resolve to {digest} after the copy", retryable=True, cause="not_visible"
            )
        self.visible_at = utcnow()
        self.current = digest
        self.tally.note(f"verified: {tag} resolves to {digest}")
        self._restored("missing_tag" if current is None else "digest_mismatch")
        await self._copy_referrers(sorted(self.tally.manifests_done))
        return self._outcome(JobStatus.SUCCESS, f"copied {digest} to {where}", digest)

    def _outcome(self, status: str, message: str, digest: str) -> Outcome:
        t = self.tally
        return Outcome(
            status,
            message,
            digest,
            t.sent,
            t.skipped,
            t.mounted,
            visible_at=self.visible_at,
            steps=t.steps,
            target_digest=self.current,
        )

    async def _already(self, where: str, digest: str) -> str:
        """The target is current: said so, and whether an earlier attempt of this job did it."""
        if self.attempt > 1 and await self.memory.earlier_write() == digest:
            earlier = self.attempt - 1
            self.tally.note(f"the copy was made by attempt {earlier}, interrupted before it was recorded")
            return (
                f"{where} already holds {digest}: copied by this job's attempt {earlier} "
                "before it was interrupted"
            )
        return f"{where} already holds {digest}"

    async def _put_tag(self, tag: str, digest: str, payload: bytes, media_type: str) -> None:
        """The top manifest under its tag (the job recorded that it writes it beforehand)."""
        self._tag_reported = await self.target.put_manifest(tag, payload, media_type)
        self.tally.note(f"tag {tag} → {digest} written")

    async def _copy_manifest(
        self, digest: str, tag: str | None = None, present: bool | None = None, kind: str = "missing_manifest"
    ) -> None:
        """Children, then blobs, then the manifest itself: by digest, or straight under `tag`.

        Pushing the top manifest under its tag stores it by digest too, so it takes one request
        instead of two; everything it references is already at the target by then. `present`
        is what the caller already learnt from the target about `digest` (None: ask). A repair
        walks the children and blobs of a present manifest too; `kind` is the drift a missing
        manifest counts as.
        """
        if tag is None:
            running = self._manifest_copies.get(digest)
            if running is None:
                running = asyncio.ensure_future(self._copy_manifest_once(digest, None, present, kind))
                self._manifest_copies[digest] = running
            await running
            return
        await self._copy_manifest_once(digest, tag, present, kind)

    async def _copy_manifest_once(
        self, digest: str, tag: str | None, present: bool | None, kind: str
    ) -> None:
        self.tally.manifests_done.add(digest)
        manifest = await self.source.manifest(digest)
        if present is None:
            present = await self.target.manifest_digest(digest) == digest
        if present and not self.repair:
            self.tally.note(f"manifest {digest} present")
            if tag is not None:
                await self.memory.tag_written(digest)
                await self._put_tag(tag, digest, manifest.payload, manifest.media_type)
            return
        parsed = manifest.parsed
        content = self._copy_content(
            parsed.children, [blob.digest for blob in parsed.blobs if not blob.foreign]
        )
        if tag is not None:
            # The job records the digest it is about to write under the tag while the content
            # copies (off the critical path), and before the tag is written, so a retry after a
            # crash knows a copy it finds there is its own.
            await both(self.memory.tag_written(digest), content)
            await self._put_tag(tag, digest, manifest.payload, manifest.media_type)
            return
        await content
        if not present:
            await self.target.put_manifest(digest, manifest.payload, manifest.media_type)
            self.tally.note(f"manifest {digest} copied")
            self._restored(kind)

    def _restored(self, kind: str) -> None:
        """Counts what a repair job restored at the target (a first copy restores nothing)."""
        if self.repair:
            self.restored[kind] += 1
            metrics.SYNC_DRIFT_REPAIRED.labels(kind, self.target_name).inc()

    async def _copy_content(self, children: list[Any], blobs: list[str]) -> None:
        """What a manifest references, all at once: its child manifests (each its own blobs
        first) and its blobs, BLOB_CONCURRENCY blobs of the whole copy at a time; the first
        failure stops the others."""

        async def one(digest: str) -> None:
            async with self._blob_slots:
                await self._copy_blob(digest)

        async with together() as group:
            for child in children:
                group.create_task(self._copy_manifest(child.digest))
            for digest in blobs:
                group.create_task(one(digest))

    async def _copy_referrers(self, digests: list[str]) -> None:
        """Referrers of the copied manifests, and theirs in turn (a signature of an SBOM)."""
        seen: set[str] = set()
        pending = list(digests)
        while pending:
            subject = pending.pop()
            if subject in seen:
                continue
            seen.add(subject)
            for referrer in await self.source.referrers(subject):
                if await self.target.manifest_digest(referrer) != referrer:
                    await self._copy_manifest(referrer, present=False, kind="missing_referrer")
                    self.tally.referrers_copied += 1
                    self.tally.note(f"referrer {referrer} of {subject} copied")
                elif self.repair:
                    await self._copy_manifest(referrer, present=True)
                pending.append(referrer)

    async def _copy_blob(self, digest: str) -> None:
        running = self._blob_copies.get(digest)
        if running is None:
            running = asyncio.ensure_future(self._copy_blob_once(digest))
            self._blob_copies[digest] = running
        await running

    async def _copy_blob_once(self, digest: str) -> None:
        self.tally.blobs_done.add(digest)
        if await self.target.has_blob(digest):
            self.tally.skipped += 1
            metrics.SYNC_BLOBS.labels("skipped", self.region).inc()
            self.tally.note(f"blob {digest} skipped: the target has it")
            return
        location, offset = await self._resumable(digest)
        if location is None and self.small_blob_bytes and not self.target.may_mount(digest):
            size = await self.source.blob_size(digest)
            if size <= self.small_blob_bytes:
                # One request (and one write at the target) instead of a mount attempt, a
                # session and a PUT: for a small blob the bytes cost less than the round trips.
                location = await self.target.push_blob(digest, self.source.read_blob(digest), size)
                if location is None:
                    self._sent(size)
                    self.tally.note(f"blob {digest} uploaded ({size} bytes, whole)")
                    metrics.SYNC_BLOBS.labels("uploaded", self.region).inc()
                    self._restored("missing_blob")
                    return
        if location is None:
            started = await self.target.start_upload(mount=digest)
            if started.location is None:
                self.tally.mounted += 1
                metrics.SYNC_BLOBS.labels("mounted", self.region).inc()
                self.tally.note(f"blob {digest} mounted from another repository")
                self._restored("missing_blob")
                return
            location = started.location
        await self._upload(digest, location, offset)
        metrics.SYNC_BLOBS.labels("uploaded", self.region).inc()
        self._restored("missing_blob")

    async def _resumable(self, digest: str) -> tuple[str | None, int]:
        """The session an earlier attempt left, and how much of it the target acknowledges."""
        saved = await self.memory.saved_upload(digest)
        if saved is None:
            return None, 0
        offset = await self.target.upload_offset(saved)
        if offset is None:
            await self.memory.drop_upload(digest)
            return None, 0
        return saved, offset

    async def _upload(self, digest: str, location: str, offset: int) -> None:
        self.open_uploads[digest] = location
        await self._upload_through(digest, location, offset)
        del self.open_uploads[digest]  # finished: the target holds the blob, no session

    async def _upload_through(self, digest: str, location: str, offset: int) -> None:
        size = await self.source.blob_size(digest)
        if offset == 0 and size <= self.chunk_bytes:
            await self.target.finish_upload(location, digest, self.source.read_blob(digest), size)
            self._sent(size)
            self.tally.note(f"blob {digest} uploaded ({size} bytes)")
            return
        if offset:
            self.tally.note(f"blob {digest} resumed at offset {offset} of {size}")
        lost = 0
        while offset < size:
            end = min(offset + self.chunk_bytes, size)
            try:
                location = await self.target.upload_chunk(
                    location, self.source.read_blob(digest, offset, end), offset, end
                )
                self.open_uploads[digest] = location
            except UploadPositionLost:
                lost += 1
                offset = await self._position_after_loss(digest, location, lost)
                continue
            self._sent(end - offset)
            offset = end
            await self.memory.save_upload(digest, location, offset)
        await self.target.finish_upload(location, digest, None, 0)
        await self.memory.drop_upload(digest)
        self.tally.note(f"blob {digest} uploaded ({size} bytes, in chunks)")

    def _sent(self, size: int) -> None:
        self.tally.sent += size
        metrics.SYNC_BYTES_SENT.labels(self.region).inc(size)

    async def _position_after_loss(self, digest: str, location: str, times: int) -> int:
        """Where the target says the upload ends, after it refused a chunk (416)."""
        offset = await self.target.upload_offset(location) if times <= POSITION_RETRIES else None
        if offset is None:
            await self.memory.drop_upload(digest)
            message = f"upload of {digest} lost its position; starting over"
            raise PeerError(message, retryable=True, cause="upload_position")
        return offset
