"""Latency and errors of every blob store operation, around any driver.

One wrapper instead of timing code in each driver. A missing blob or upload is an answer, not
an error; anything else that escapes a driver is counted by its type. Streams are timed to their
first chunk: how long the store takes to start answering, not how fast the client reads.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from ferry.observability import metrics
from ferry.storage.base import BlobMissing, BlobStore, StoredObject, UploadMissing

T = TypeVar("T")
ANSWERS = (BlobMissing, UploadMissing)


class InstrumentedStore:
    """A BlobStore that records `ferry_storage_*` metrics and delegates to `inner`."""

    def __init__(self, inner: BlobStore, driver: str) -> None:
        self.inner = inner
        self.driver = driver

    def __getattr__(self, name: str) -> Any:
        # Whatever a driver offers beyond the interface (its root, its bucket) stays reachable.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def _timed(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        try:
            return await call()
        except ANSWERS:
            raise
        except Exception as error:
            metrics.STORAGE_ERRORS.labels(self.driver, operation, type(error).__name__).inc()
            raise
        finally:
            metrics.STORAGE_LATENCY.labels(self.driver, operation).observe(time.perf_counter() - started)

    async def _stream(self, operation: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        started = time.perf_counter()
        first = True
        try:
            async for chunk in chunks:
                if first:
                    metrics.STORAGE_LATENCY.labels(self.driver, operation).observe(
                        time.perf_counter() - started
                    )
                    first = False
                yield chunk
        except ANSWERS:
            raise
        except Exception as error:
            metrics.STORAGE_ERRORS.labels(self.driver, operation, type(error).__name__).inc()
            raise

    async def check(self) -> None:
        await self._timed("check", self.inner.check)

    async def start_upload(self, upload_id: str) -> None:
        await self._timed("start_upload", lambda: self.inner.start_upload(upload_id))

    async def upload_size(self, upload_id: str) -> int:
        return await self._timed("upload_size", lambda: self.inner.upload_size(upload_id))

    async def append_upload(self, upload_id: str, chunks: AsyncIterable[bytes]) -> int:
        return await self._timed("append_upload", lambda: self.inner.append_upload(upload_id, chunks))

    def read_upload(self, upload_id: str) -> AsyncIterator[bytes]:
        return self._stream("read_upload", self.inner.read_upload(upload_id))

    async def make_durable(self, upload_id: str) -> None:
        await self._timed("make_durable", lambda: self.inner.make_durable(upload_id))

    async def commit_upload(self, upload_id: str, digest: str) -> None:
        await self._timed("commit_upload", lambda: self.inner.commit_upload(upload_id, digest))

    async def abort_upload(self, upload_id: str) -> None:
        await self._timed("abort_upload", lambda: self.inner.abort_upload(upload_id))

    async def stat(self, digest: str) -> int | None:
        return await self._timed("stat", lambda: self.inner.stat(digest))

    def read(self, digest: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return self._stream("read", self.inner.read(digest, start, end))

    def local_path(self, digest: str) -> Path | None:
        return self.inner.local_path(digest)

    async def redirect_url(self, digest: str) -> str | None:
        return await self._timed("redirect_url", lambda: self.inner.redirect_url(digest))

    async def delete(self, digest: str) -> None:
        await self._timed("delete", lambda: self.inner.delete(digest))

    def list_blobs(self) -> AsyncIterator[list[StoredObject]]:
        return self.inner.list_blobs()

    def list_uploads(self) -> AsyncIterator[list[StoredObject]]:
        return self.inner.list_uploads()
