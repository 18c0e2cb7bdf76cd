"""Upload sessions: monolithic, chunked and resumable, verified before the blob becomes visible.

A session is its bytes in the store, named by a signed id (upload_ids.py): opening, appending to
and cancelling one writes no database row, and the blob's one write transaction is at the end.
Sessions nobody wrote to for the upload expiry are removed by garbage collection.

The sha256 state of a chunked upload lives in this process between requests as a cache only:
when it is missing (another process took the last chunk, or a restart) the bytes are re-read
from the store, so nothing depends on it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable
from typing import Any

from sqlalchemy.exc import IntegrityError

from ferry.images import blobs, lookups
from ferry.images.digests import hashed, require_digest
from ferry.images.errors import DigestInvalid, RepositoryUnknown, UploadOutOfOrder, UploadUnknown
from ferry.images.repositories import repository_for_push
from ferry.images.upload_ids import UploadIds, UploadTicket
from ferry.metadata.db import Database
from ferry.names import ImageName
from ferry.storage import BlobStore, StorageFull, UploadMissing


class Uploads:
    def __init__(self, db: Database, store: BlobStore, ids: UploadIds) -> None:
        self.db = db
        self.store = store
        self.ids = ids
        self._hashers: dict[str, tuple[int, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self, image: ImageName, creator: str) -> str:
        return (await self._start(image, creator)).upload_id

    async def _start(self, image: ImageName, creator: str) -> UploadTicket:
        ticket = self.ids.issue(image, await self._repository_for_push(image, creator))
        await self.store.start_upload(ticket.upload_id)
        return ticket

    async def _repository_for_push(self, image: ImageName, creator: str) -> int:
        """One indexed read when the repository exists; a write only on its first push."""
        try:
            return await lookups.repository_id(self.db, image)
        except RepositoryUnknown:
            async with self.db.write() as session:
                return (await repository_for_push(session, image, creator)).id

    async def size(self, image: ImageName, upload_id: str) -> int:
        self._require(image, upload_id)
        try:
            return await self.store.upload_size(upload_id)
        except UploadMissing:
            raise UploadUnknown(upload_id) from None

    async def append(
        self,
        image: ImageName,
        upload_id: str,
        chunks: AsyncIterable[bytes],
        start: int | None = None,
    ) -> int:
        """Appends one chunk; `start` (from Content-Range) must equal the current size."""
        self._require(image, upload_id)
        async with self._lock(upload_id):
            return await self._append(upload_id, chunks, start)

    async def finish(
        self,
        image: ImageName,
        upload_id: str,
        digest: str,
        chunks: AsyncIterable[bytes] | None,
        start: int | None = None,
    ) -> int:
        """Takes the last chunk (at `start`, from Content-Range, when given), verifies the digest
        and makes the blob visible; returns its size."""
        digest = require_digest(digest)
        ticket = self._require(image, upload_id)
        if await self._current_repository_id(image) != ticket.repository_id:
            raise UploadUnknown(upload_id)  # the repository was deleted since
        return await self._finish(ticket, digest, chunks, start)

    async def _finish(
        self, ticket: UploadTicket, digest: str, chunks: AsyncIterable[bytes] | None, start: int | None
    ) -> int:
        try:
            return await self._finish_locked(ticket, digest, chunks, start)
        except UploadMissing:  # finished, cancelled or expired meanwhile: its bytes are gone
            self._forget(ticket.upload_id)
            raise UploadUnknown(ticket.upload_id) from None

    async def _finish_locked(
        self, ticket: UploadTicket, digest: str, chunks: AsyncIterable[bytes] | None, start: int | None
    ) -> int:
        upload_id = ticket.upload_id
        async with self._lock(upload_id):
            if chunks is not None:
                await self._append(upload_id, chunks, start)
            size, actual = await self._digest_of(upload_id)
            if actual != digest:
                await self._discard(upload_id)
                raise DigestInvalid(digest, f"content digest is {actual}, not {digest}")
            try:
                # Durable first, outside the write transaction: on SQLite it holds the region's
                # one write lock, which an fsync of a big blob would hold for seconds.
                await self.store.make_durable(upload_id)
                await blobs.place_and_link(
                    self.db,
                    lambda: self.store.commit_upload(upload_id, digest),
                    ticket.repository_id,
                    digest,
                    size,
                )
            except StorageFull:
                await self._discard(upload_id)
                raise
            except IntegrityError:
                # The repository went in the moment between the check and this transaction; the
                # bytes now under the digest belong to no row and GC's orphan phase removes them.
                self._forget(upload_id)
                raise UploadUnknown(upload_id) from None
            self._forget(upload_id)
            return size

    async def monolithic(
        self, image: ImageName, creator: str, digest: str, chunks: AsyncIterable[bytes]
    ) -> int:
        digest = require_digest(digest)
        return await self._finish(await self._start(image, creator), digest, chunks, None)

    async def cancel(self, image: ImageName, upload_id: str) -> None:
        self._require(image, upload_id)
        try:
            await self.store.upload_size(upload_id)
        except UploadMissing:
            raise UploadUnknown(upload_id) from None
        await self._discard(upload_id)

    def _require(self, image: ImageName, upload_id: str) -> UploadTicket:
        """The session's ticket; UploadUnknown for an id not issued here for this repository."""
        ticket = self.ids.check(image, upload_id)
        if ticket is None:
            raise UploadUnknown(upload_id)
        return ticket

    async def _current_repository_id(self, image: ImageName) -> int | None:
        try:
            return await lookups.repository_id(self.db, image)
        except RepositoryUnknown:
            return None

    async def _append(self, upload_id: str, chunks: AsyncIterable[bytes], start: int | None) -> int:
        try:
            size = await self.store.upload_size(upload_id)
        except UploadMissing:
            raise UploadUnknown(upload_id) from None
        if start is not None and start != size:
            raise UploadOutOfOrder(size)
        hasher = self._hasher_at(upload_id, size)
        stream = hashed(chunks, hasher) if hasher is not None else chunks
        try:
            new_size = await self.store.append_upload(upload_id, stream)
        except StorageFull:
            # Free what the session holds now: kept, it would block every other push until it
            # expired. The client starts the upload again once there is space.
            await self._discard(upload_id)
            raise
        if hasher is not None:
            self._hashers[upload_id] = (new_size, hasher)
        return new_size

    def _hasher_at(self, upload_id: str, size: int) -> Any:
        cached = self._hashers.get(upload_id)
        if cached and cached[0] == size:
            return cached[1]
        return hashlib.sha256() if size == 0 else None

    async def _digest_of(self, upload_id: str) -> tuple[int, str]:
        size = await self.store.upload_size(upload_id)
        hasher = self._hasher_at(upload_id, size)
        if hasher is None:
            hasher = hashlib.sha256()
            async for chunk in self.store.read_upload(upload_id):
                hasher.update(chunk)
        return size, "sha256:" + hasher.hexdigest()

    async def _discard(self, upload_id: str) -> None:
        await self.store.abort_upload(upload_id)
        self._forget(upload_id)

    def _lock(self, upload_id: str) -> asyncio.Lock:
        return self._locks.setdefault(upload_id, asyncio.Lock())

    def _forget(self, upload_id: str) -> None:
        self._hashers.pop(upload_id, None)
        self._locks.pop(upload_id, None)
