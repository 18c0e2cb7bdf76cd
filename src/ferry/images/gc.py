"""Garbage collection: manifests nothing keeps, unreferenced blobs, expired uploads, orphan files.

Phases, each over bounded batches so memory follows the largest repository, not the store:
1. manifests, per repository: kept are the tagged ones, the ones younger than the grace period,
   (with keep_untagged) every untagged one that is no referrer, the children of a kept index and
   the referrers of a kept subject; the rest goes.
2. repository links, per repository: a blob no remaining manifest of the repository references.
3. blob rows no repository links any more, then their bytes.
4. upload sessions older than the expiry, and upload bytes without a session.
5. orphan files: blob bytes with no row, older than the grace period.

Safety while pushes run (see README, "Garbage collection"): every row is deleted only after it
is locked (FOR UPDATE) and found unreferenced again by a later statement, which sees whatever a
racing push committed; a push locks what it relies on (FOR SHARE, in put_manifest and mount), so
it either commits first and keeps the row or sees the row gone and is told to upload again. Bytes
go only under the digest's lock (blobs.lock_digests), which an upload holds from placing its
bytes until its row commits, and only when no row exists.

A dry run runs the same statements in one transaction that is rolled back, so it reports
exactly what a real run at that moment deletes; it deletes no bytes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.images.blobs import lock_digests
from ferry.images.gclease import gc_lease
from ferry.images.gcreport import GcBusy, GcPolicy, GcReport, OnItem, OnProgress, record
from ferry.metadata.db import Database
from ferry.metadata.models import (
    Blob,
    Manifest,
    ManifestReference,
    Organization,
    Repository,
    RepositoryBlob,
    Tag,
    TagOverride,
    utcnow,
)
from ferry.storage import BlobStore, StoredObject

log = logging.getLogger("ferry.gc")

BATCH = 1000


class GarbageCollector:
    def __init__(self, db: Database, store: BlobStore, policy: GcPolicy) -> None:
        self.db = db
        self.store = store
        self.policy = policy

    async def run(
        self, dry_run: bool = False, on_item: OnItem | None = None, on_progress: OnProgress | None = None
    ) -> GcReport:
        """One collection; raises GcBusy when another process holds the region's GC lease."""
        async with gc_lease(self.db) as acquired:
            if not acquired:
                raise GcBusy("another garbage collection is running in this region")
            run = _Run(self, dry_run, on_item, on_progress)
            started = time.perf_counter()
            try:
                await run.collect()
            except Exception:
                record(None)
                raise
            run.report.seconds = time.perf_counter() - started
        if not dry_run:
            record(run.report)
        # A run that found nothing is a DEBUG line, so a short interval does not flood the log.
        log.log(logging.INFO if run.report.total_count else logging.DEBUG, run.report.summary())
        return run.report


class _Run:
    """One collection's state: its cutoffs, its report and, in a dry run, its one transaction."""

    def __init__(
        self, gc: GarbageCollector, dry_run: bool, on_item: OnItem | None, on_progress: OnProgress | None
    ) -> None:
        self.db, self.store, self.policy = gc.db, gc.store, gc.policy
        self.report = GcReport(dry_run)
        self.on_item, self.on_progress = on_item, on_progress
        now = utcnow()
        self.cutoff = now - timedelta(seconds=self.policy.grace_seconds)
        self.upload_cutoff = now - timedelta(seconds=self.policy.upload_expiry_seconds)
        self.override_cutoff = now - timedelta(seconds=self.policy.override_keep_seconds)
        self._dry_session: AsyncSession | None = None
        # Dry run only: what earlier phases "deleted" though the bytes stay, so that later
        # phases do not count them twice. Bounded by the garbage found, not the store.
        self._dry_blobs: set[str] = set()

    async def collect(self) -> None:
        if not self.report.dry_run:
            await self._phases()
            return
        async with self.db.write() as session:
            self._dry_session = session
            try:
                await self._phases()
            finally:
                self._dry_session = None
                await session.rollback()

    async def _phases(self) -> None:
        async for repository_id, name in self._repositories():
            await self._manifests(repository_id, name)
        async for repository_id, _ in self._repositories():
            await self._links(repository_id)
        await self._blobs()
        await self._expired_uploads()
        await self._orphan_blobs()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction of its own in a real run; the run's one transaction in a dry run."""
        if self._dry_session is not None:
            yield self._dry_session
            return
        async with self.db.write() as session:
            yield session

    def _collected(self, kind: str, name: str, size: int) -> None:
        self.report.counts[kind] += 1
        self.report.bytes[kind] += size
        if self.on_item:
            self.on_item(kind, name, size)

    def _progress(self, phase: str, done: int) -> None:
        if self.on_progress:
            self.on_progress(phase, done)

    async def _repositories(self) -> AsyncIterator[tuple[int, str]]:
        after = 0
        while True:
            async with self._reading() as session:
                rows = (
                    await session.execute(
                        select(Repository.id, Organization.name, Repository.name)
                        .join(Organization, Organization.id == Repository.organization_id)
                        .where(Repository.id > after)
                        .order_by(Repository.id)
                        .limit(BATCH)
                    )
                ).all()
            for repository_id, org, name in rows:
                yield repository_id, f"{org}/{name}"
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncSession]:
        if self._dry_session is not None:
            yield self._dry_session
            return
        async with self.db.read() as session:
            yield session

    # Phase 1: manifests

    async def _manifests(self, repository_id: int, name: str) -> None:
        async with self._transaction() as session:
            doomed = await self._unkept_manifests(session, repository_id)
            if not doomed:
                return
            # Lock, then decide again: a later statement sees what a racing push committed.
            await session.execute(select(Manifest.id).where(Manifest.id.in_(doomed)).with_for_update())
            doomed = {
                i: d for i, d in (await self._unkept_manifests(session, repository_id)).items() if i in doomed
            }
            for batch in _chunks(sorted(doomed), BATCH):
                await session.execute(
                    delete(ManifestReference).where(ManifestReference.manifest_id.in_(batch))
                )
                rows = await session.execute(
                    delete(Manifest).where(Manifest.id.in_(batch)).returning(Manifest.digest, Manifest.size)
                )
                for digest, size in rows.all():
                    self._collected("manifest", f"{name}@{digest}", size)
        self._progress("manifests", len(doomed))

    async def _unkept_manifests(self, session: AsyncSession, repository_id: int) -> dict[int, str]:
        """id → digest of the repository's manifests that nothing keeps."""
        rows: list[tuple[int, str, str | None, datetime]] = [
            tuple(row)  # type: ignore[misc]
            for row in await session.execute(
                select(Manifest.id, Manifest.digest, Manifest.subject_digest, Manifest.created_at).where(
                    Manifest.repository_id == repository_id
                )
            )
        ]
        tagged = set(await session.scalars(select(Tag.digest).where(Tag.repository_id == repository_id)))
        # What sync copies replaced lately is kept as if tagged, for a rollback.
        tagged |= set(
            await session.scalars(
                select(TagOverride.previous_digest).where(
                    TagOverride.repository_id == repository_id,
                    TagOverride.replaced_at >= self.override_cutoff,
                )
            )
        )
        children: dict[str, list[str]] = {}
        edges = await session.execute(
            select(Manifest.digest, ManifestReference.digest)
            .join(ManifestReference, ManifestReference.manifest_id == Manifest.id)
            .where(Manifest.repository_id == repository_id, ManifestReference.is_manifest.is_(True))
        )
        for parent, child in edges.all():
            children.setdefault(parent, []).append(child)
        referrers: dict[str, list[str]] = {}
        for _, digest, subject, _ in rows:
            if subject:
                referrers.setdefault(subject, []).append(digest)
        kept = self._mark(rows, tagged, children, referrers)
        return {i: digest for i, digest, _, _ in rows if digest not in kept}

    def _mark(
        self,
        rows: list[tuple[int, str, str | None, datetime]],
        tagged: set[str],
        children: dict[str, list[str]],
        referrers: dict[str, list[str]],
    ) -> set[str]:
        roots = [
            digest
            for _, digest, subject, created_at in rows
            if digest in tagged or created_at >= self.cutoff or (self.policy.keep_untagged and not subject)
        ]
        kept: set[str] = set()
        while roots:
            digest = roots.pop()
            if digest in kept:
                continue
            kept.add(digest)
            roots.extend(children.get(digest, ()))
            roots.extend(referrers.get(digest, ()))
        return kept

    # Phase 2: repository links

    async def _links(self, repository_id: int) -> None:
        referenced = (
            select(ManifestReference.digest)
            .join(Manifest, Manifest.id == ManifestReference.manifest_id)
            .where(Manifest.repository_id == repository_id)
        )
        old = select(Blob.digest).where(Blob.digest == RepositoryBlob.digest, Blob.created_at < self.cutoff)
        unreferenced = (
            (RepositoryBlob.repository_id == repository_id)
            & RepositoryBlob.digest.not_in(referenced)
            & old.exists()
        )
        after = ""
        while True:
            async with self._transaction() as session:
                found = list(
                    await session.scalars(
                        select(RepositoryBlob.digest)
                        .where(unreferenced, RepositoryBlob.digest > after)
                        .order_by(RepositoryBlob.digest)
                        .limit(BATCH)
                        .with_for_update()
                    )
                )
                if found:
                    # The rows are locked now; this statement sees any reference committed since.
                    await session.execute(
                        delete(RepositoryBlob).where(unreferenced, RepositoryBlob.digest.in_(found))
                    )
            if len(found) < BATCH:
                return
            after = found[-1]

    # Phase 3: blob rows, then bytes

    async def _blobs(self) -> None:
        unlinked = (Blob.created_at < self.cutoff) & ~select(RepositoryBlob.digest).where(
            RepositoryBlob.digest == Blob.digest
        ).exists()
        after, examined = "", 0
        while True:
            async with self._transaction() as session:
                found = list(
                    await session.scalars(
                        select(Blob.digest)
                        .where(unlinked, Blob.digest > after)
                        .order_by(Blob.digest)
                        .limit(BATCH)
                        .with_for_update()
                    )
                )
                deleted: list[tuple[str, int]] = []
                if found:
                    rows = await session.execute(
                        delete(Blob).where(unlinked, Blob.digest.in_(found)).returning(Blob.digest, Blob.size)
                    )
                    deleted = [(digest, size) for digest, size in rows.all()]
            # The rows are gone (committed) before any byte goes. A blob uploaded again
            # meanwhile has a row again: its bytes stay, and it is not counted as freed.
            gone = set(await self._delete_bytes([digest for digest, _ in deleted]))
            for digest, size in deleted:
                if digest in gone:
                    self._collected("blob", digest, size)
            examined += len(found)
            self._progress("blobs", examined)
            if len(found) < BATCH:
                return
            after = found[-1]

    async def _delete_bytes(self, digests: list[str]) -> list[str]:
        """Removes the bytes of those digests that still have no row, under their locks."""
        if not digests:
            return []
        if self.report.dry_run:
            self._dry_blobs.update(digests)
            return digests
        async with self.db.write() as session:
            await lock_digests(session, digests)
            revived = set(await session.scalars(select(Blob.digest).where(Blob.digest.in_(digests))))
            gone = [d for d in digests if d not in revived]
            for digest in gone:
                await self.store.delete(digest)
        return gone

    # Phase 4: uploads

    async def _expired_uploads(self) -> None:
        """Upload sessions nobody wrote to for the upload expiry, by the store's listing: a
        session is its bytes (images/upload_ids.py), so there is no row to consult. A slow
        chunked upload stays as long as its chunks keep coming."""
        async for batch in self.store.list_uploads():
            for item in batch:
                if item.modified < self.upload_cutoff:
                    await self._drop_upload_bytes(item.name, item.size)

    async def _drop_upload_bytes(self, upload_id: str, size: int) -> None:
        if not self.report.dry_run:
            await self.store.abort_upload(upload_id)
        self._collected("upload", upload_id, size)

    # Phase 5: orphan blob files

    async def _orphan_blobs(self) -> None:
        examined = 0
        async for batch in self.store.list_blobs():
            await self._orphans_in(batch)
            examined += len(batch)
            self._progress("files", examined)

    async def _orphans_in(self, batch: list[StoredObject]) -> None:
        old = {
            item.name: item
            for item in batch
            if item.modified < self.cutoff and item.name not in self._dry_blobs
        }
        if not old:
            return
        async with self._reading() as session:
            known = set(await session.scalars(select(Blob.digest).where(Blob.digest.in_(old))))
        candidates = [d for d in old if d not in known]
        for digest in await self._delete_bytes(candidates):
            self._collected("orphan", digest, old[digest].size)


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
