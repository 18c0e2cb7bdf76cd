"""Upload sessions: monolithic, chunked and resumable, verified before the blob becomes visible.

The sha256 state of a chunked upload lives in this process between requests as a cache only:
when it is missing (another process took the last chunk, or a restart) the bytes are re-read
from the store, so nothing depends on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import AsyncIterable
from typing import Any

from sqlalchemy import delete, select

from ferry.images import blobs
from ferry.images.digests import hashed, require_digest
from ferry.images.errors import DigestInvalid, UploadOutOfOrder, UploadUnknown
from ferry.images.repositories import repository_for_push, require_repository
from ferry.metadata.db import Database, DatabaseFull
from ferry.metadata.models import Upload
from ferry.names import ImageName
from ferry.storage import BlobStore, StorageFull, UploadMissing

log = logging.getLogger("ferry.uploads")


class Uploads:
    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store
        self._hashers: dict[str, tuple[int, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self, image: ImageName, creator: str) -> str:
        upload_id = uuid.uuid4().hex
        async with self.db.write() as session:
            repository = await repository_for_push(session, image, creator)
            session.add(Upload(id=upload_id, repository_id=repository.id))
        await self.store.start_upload(upload_id)
        return upload_id

    async def size(self, image: ImageName, upload_id: str) -> int:
        await self._require(image, upload_id)
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
        await self._require(image, upload_id)
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
        repository_id = await self._require(image, upload_id)
        async with self._lock(upload_id):
            if chunks is not None:
                await self._append(upload_id, chunks, start)
            size, actual = await self._digest_of(upload_id)
            if actual != digest:
                await self._discard(upload_id)
                raise DigestInvalid(digest, f"content digest is {actual}, not {digest}")
            try:
                # The bytes are placed under the digest's lock and the row written before it is
                # released, so GC (which removes bytes under the same lock, only when no row
                # exists) can never remove bytes a committed upload just placed.
                async with self.db.write() as session:
                    await blobs.lock_digests(session, [digest])
                    await self.store.commit_upload(upload_id, digest)
                    await blobs.link(session, repository_id, digest, size)
                    await session.execute(delete(Upload).where(Upload.id == upload_id))
            except StorageFull:
                await self._discard_after_full(upload_id)
                raise
            self._forget(upload_id)
            return size

    async def monolithic(
        self, image: ImageName, creator: str, digest: str, chunks: AsyncIterable[bytes]
    ) -> int:
        digest = require_digest(digest)
        upload_id = await self.start(image, creator)
        return await self.finish(image, upload_id, digest, chunks)

    async def cancel(self, image: ImageName, upload_id: str) -> None:
        await self._require(image, upload_id)
        await self._discard(upload_id)

    async def _require(self, image: ImageName, upload_id: str) -> int:
        async with self.db.read() as session:
            repository = await require_repository(session, image)
            found = await session.scalar(select(Upload.repository_id).where(Upload.id == upload_id))
        if found != repository.id:
            raise UploadUnknown(upload_id)
        return repository.id

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
            await self._discard_after_full(upload_id)
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
        async with self.db.write() as session:
            await session.execute(delete(Upload).where(Upload.id == upload_id))
        self._forget(upload_id)

    async def _discard_after_full(self, upload_id: str) -> None:
        """Bytes first (that frees the space), then the row, which may itself find no space."""
        await self.store.abort_upload(upload_id)
        self._forget(upload_id)
        try:
            async with self.db.write() as session:
                await session.execute(delete(Upload).where(Upload.id == upload_id))
        except DatabaseFull:
            log.warning("upload %s: bytes freed, its row stays until space returns", upload_id)

    def _lock(self, upload_id: str) -> asyncio.Lock:
        return self._locks.setdefault(upload_id, asyncio.Lock())

    def _forget(self, upload_id: str) -> None:
        self._hashers.pop(upload_id, None)
        self._locks.pop(upload_id, None)
