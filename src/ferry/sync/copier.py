"""Copies one tag to a peer, bottom-up, so the target never shows a manifest with missing content.

Order: child manifests (every platform of an index), then for each blob HEAD → mount → stream (the
blobs of one manifest a few at a time), then the child manifests by digest and the top manifest
under its tag, then a check that the target's tag resolves to the copied digest, then the
referrers (signatures, SBOMs) of every copied manifest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import select

from ferry.images.manifest_format import parse_manifest
from ferry.metadata.db import Database
from ferry.metadata.models import Blob, JobStatus, Manifest, SyncJob, Tag
from ferry.storage import BlobStore
from ferry.sync.authorization import SyncRefused, check_target, job_actor
from ferry.sync.peer_client import Actor, PeerClient, PeerError, PeerResponse, error_text
from ferry.sync.queue import JobQueue, Outcome

# Blobs of one manifest copied at once: round trips to the peer overlap instead of adding up.
BLOB_CONCURRENCY = 4
T = TypeVar("T")
U = TypeVar("U")


@dataclass
class Context:
    job: SyncJob
    client: PeerClient
    repository_id: int
    target: str
    actor: Actor
    sent: int = 0
    skipped: int = 0
    mounted: int = 0
    manifests_done: set[str] = field(default_factory=set)
    blobs_done: set[str] = field(default_factory=set)
    referrers_copied: int = 0

    async def call(
        self,
        method: str,
        url: str,
        *,
        data: bytes | AsyncIterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> PeerResponse:
        """One registry call to the target repository, with the rights of the job's actor."""
        return await self.client.registry(
            method, url, self.target, data=data, headers=headers, actor=self.actor
        )


async def _both(first: Awaitable[T], second: Awaitable[U]) -> tuple[T, U]:
    """Runs two calls at once; if one fails, the other is cancelled and the failure raised."""
    tasks = (asyncio.ensure_future(first), asyncio.ensure_future(second))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return tasks[0].result(), tasks[1].result()


def refused(what: str, response: PeerResponse) -> PeerError:
    return PeerError(
        f"{what}: {response.status} {error_text(response.body)}", retryable=False, status=response.status
    )


class Copier:
    def __init__(self, db: Database, store: BlobStore, queue: JobQueue, chunk_bytes: int) -> None:
        self.db = db
        self.store = store
        self.queue = queue
        self.chunk_bytes = chunk_bytes

    async def run(self, job: SyncJob, client: PeerClient) -> tuple[Outcome, Context | None]:
        digest = await self._source_digest(job)
        if digest is None or job.repository_id is None:
            source = f"{job.namespace}/{job.repo_name}:{job.tag}"
            return Outcome(JobStatus.CANCEL, f"{source} no longer exists at the source; nothing copied"), None
        # Rights can change after the rule was made: checked here, and by the target, every run.
        try:
            actor = await job_actor(self.db, job)
            await check_target(client, actor, job.remote_namespace, job.repo_name)
        except SyncRefused as refused:
            return Outcome(JobStatus.FAILED, f"refused: {refused}; nothing copied"), None
        ctx = Context(job, client, job.repository_id, f"{job.remote_namespace}/{job.repo_name}", actor)
        # The tag and the manifest by digest are asked about together: one round trip, not two.
        current, present = await _both(self._target_digest(ctx, job.tag), self._target_digest(ctx, digest))
        where = f"{ctx.target}:{job.tag} in {job.remote_region_id}"
        if current == digest:
            await self._copy_referrers(ctx, await self._tree(ctx.repository_id, digest))
            if ctx.referrers_copied:
                return self._outcome(
                    ctx,
                    JobStatus.SUCCESS,
                    f"{where} was current; copied {ctx.referrers_copied} referrer(s)",
                    digest,
                ), ctx
            return self._outcome(ctx, JobStatus.EXISTED, f"{where} already holds {digest}", digest), ctx
        if current is not None and not job.override and current != await self.queue.last_copied(job):
            # Only an image this sync did not put there is protected; its own copies keep updating.
            message = f"{where} holds a different image ({current}) and override is off; left unchanged"
            return self._outcome(ctx, JobStatus.EXISTED, message, digest), ctx
        await self._copy_manifest(ctx, digest, tag=job.tag, present=present == digest)
        if await self._target_digest(ctx, job.tag) != digest:
            raise PeerError(f"{where} does not resolve to {digest} after the copy", retryable=True)
        await self._copy_referrers(ctx, sorted(ctx.manifests_done))
        return self._outcome(ctx, JobStatus.SUCCESS, f"copied {digest} to {where}", digest), ctx

    @staticmethod
    def _outcome(ctx: Context, status: str, message: str, digest: str) -> Outcome:
        return Outcome(status, message, digest, ctx.sent, ctx.skipped, ctx.mounted)

    async def _source_digest(self, job: SyncJob) -> str | None:
        async with self.db.read() as session:
            return await session.scalar(
                select(Tag.digest).where(Tag.repository_id == job.repository_id, Tag.name == job.tag)
            )

    async def _manifest(self, repository_id: int, digest: str) -> tuple[bytes, str]:
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(Manifest.payload, Manifest.media_type).where(
                        Manifest.repository_id == repository_id, Manifest.digest == digest
                    )
                )
            ).first()
        if row is None:
            raise PeerError(f"manifest {digest} vanished from the source", retryable=False)
        return row[0], row[1]

    async def _tree(self, repository_id: int, digest: str) -> list[str]:
        """The digest and, for an index, every child manifest's digest."""
        payload, media_type = await self._manifest(repository_id, digest)
        children = parse_manifest(payload, media_type).children
        result = [digest]
        for child in children:
            result += await self._tree(repository_id, child.digest)
        return result

    async def _target_digest(self, ctx: Context, reference: str) -> str | None:
        accept = ", ".join(
            [
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.docker.distribution.manifest.v2+json",
            ]
        )
        response = await ctx.call(
            "HEAD", f"/v2/{ctx.target}/manifests/{reference}", headers={"Accept": accept}
        )
        if response.status == 404:
            return None
        if response.status != 200:
            raise refused(f"checking {ctx.target}:{reference}", response)
        return response.headers.get("Docker-Content-Digest")

    async def _copy_manifest(
        self, ctx: Context, digest: str, tag: str | None = None, present: bool | None = None
    ) -> None:
        """Children, then blobs, then the manifest itself: by digest, or straight under `tag`.

        Pushing the top manifest under its tag stores it by digest too, so it takes one request
        instead of two; everything it references is already at the target by then. `present`
        is what the caller already learnt from the target about `digest` (None: ask).
        """
        if digest in ctx.manifests_done and tag is None:
            return
        ctx.manifests_done.add(digest)
        payload, media_type = await self._manifest(ctx.repository_id, digest)
        if present is None:
            present = await self._target_digest(ctx, digest) == digest
        if present:
            if tag is not None:
                await self._put_manifest(ctx, tag, payload, media_type)
            return
        parsed = parse_manifest(payload, media_type)
        for child in parsed.children:
            await self._copy_manifest(ctx, child.digest)
        await self._copy_blobs(ctx, [blob.digest for blob in parsed.blobs if not blob.foreign])
        await self._put_manifest(ctx, tag or digest, payload, media_type)

    async def _copy_blobs(self, ctx: Context, digests: list[str]) -> None:
        """Every blob of one manifest, a few at a time; the first failure stops the others."""
        if len(digests) <= 1:
            for digest in digests:
                await self._copy_blob(ctx, digest)
            return
        slots = asyncio.Semaphore(BLOB_CONCURRENCY)

        async def one(digest: str) -> None:
            async with slots:
                await self._copy_blob(ctx, digest)

        tasks = [asyncio.create_task(one(digest)) for digest in digests]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _put_manifest(self, ctx: Context, reference: str, payload: bytes, media_type: str) -> None:
        response = await ctx.call(
            "PUT",
            f"/v2/{ctx.target}/manifests/{reference}",
            data=payload,
            headers={"Content-Type": media_type},
        )
        if response.status != 201:
            raise refused(f"pushing manifest {ctx.target}:{reference}", response)

    async def _copy_referrers(self, ctx: Context, digests: list[str]) -> None:
        seen: set[str] = set()
        pending = list(digests)
        while pending:
            subject = pending.pop()
            if subject in seen:
                continue
            seen.add(subject)
            async with self.db.read() as session:
                referrers = list(
                    await session.scalars(
                        select(Manifest.digest).where(
                            Manifest.repository_id == ctx.repository_id, Manifest.subject_digest == subject
                        )
                    )
                )
            for referrer in referrers:
                if await self._target_digest(ctx, referrer) != referrer:
                    await self._copy_manifest(ctx, referrer)
                    ctx.referrers_copied += 1
                pending.append(referrer)

    async def _copy_blob(self, ctx: Context, digest: str) -> None:
        if digest in ctx.blobs_done:
            return
        ctx.blobs_done.add(digest)
        target = ctx.target
        head = await ctx.call("HEAD", f"/v2/{target}/blobs/{digest}")
        if head.status == 200:
            ctx.skipped += 1
            return
        location = await self._resumable_location(ctx, digest)
        fresh = location is None
        if location is None:
            started = await ctx.call("POST", f"/v2/{target}/blobs/uploads/?mount={digest}")
            if started.status == 201:
                ctx.mounted += 1
                return
            if started.status != 202 or "Location" not in started.headers:
                raise refused(f"starting the upload of {digest}", started)
            location = started.headers["Location"]
        await self._upload(ctx, digest, location, fresh)

    async def _resumable_location(self, ctx: Context, digest: str) -> str | None:
        """The upload session a previous attempt left, positioned at what the peer acknowledged."""
        saved = await self.queue.transfer(ctx.job.id, digest)
        if saved is None:
            return None
        status = await ctx.call("GET", saved.location)
        if status.status != 204:
            await self.queue.drop_transfer(ctx.job.id, digest)
            return None
        return status.headers.get("Location", saved.location)

    async def _blob_size(self, digest: str) -> int:
        async with self.db.read() as session:
            size = await session.scalar(select(Blob.size).where(Blob.digest == digest))
        if size is None:
            raise PeerError(f"blob {digest} vanished from the source", retryable=False)
        return int(size)

    async def _upload(self, ctx: Context, digest: str, location: str, fresh: bool) -> None:
        size = await self._blob_size(digest)
        # A session the peer just opened holds nothing yet; only a resumed one needs asking.
        offset = 0 if fresh else await self._acknowledged(ctx, location)
        if offset == 0 and size <= self.chunk_bytes:
            await self._finish_upload(ctx, digest, location, self.store.read(digest), size)
            ctx.sent += size
            return
        mismatches = 0
        while offset < size:
            end = min(offset + self.chunk_bytes, size)
            response = await ctx.call(
                "PATCH",
                location,
                data=self.store.read(digest, offset, end),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{end - 1}",
                    "Content-Length": str(end - offset),
                },
            )
            if response.status == 416:
                mismatches += 1
                if mismatches > 2:
                    await self.queue.drop_transfer(ctx.job.id, digest)
                    raise PeerError(f"upload of {digest} lost its position; starting over", retryable=True)
                offset = await self._acknowledged(ctx, location)
                continue
            if response.status != 202:
                raise refused(f"uploading {digest}", response)
            location = response.headers.get("Location", location)
            ctx.sent += end - offset
            offset = end
            await self.queue.save_transfer(ctx.job.id, digest, location, offset)
        await self._finish_upload(ctx, digest, location, None, 0)
        await self.queue.drop_transfer(ctx.job.id, digest)

    async def _acknowledged(self, ctx: Context, location: str) -> int:
        response = await ctx.call("GET", location)
        if response.status != 204:
            return 0
        _, _, end = response.headers.get("Range", "0-0").partition("-")
        return int(end) + 1 if end.isdigit() and int(end) > 0 else 0

    async def _finish_upload(
        self, ctx: Context, digest: str, location: str, body: AsyncIterable[bytes] | None, size: int
    ) -> None:
        separator = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        response = await ctx.call("PUT", f"{location}{separator}digest={digest}", data=body, headers=headers)
        if response.status != 201:
            raise refused(f"finishing the upload of {digest}", response)
