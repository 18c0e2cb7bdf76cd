from __future__ import annotations

import errno
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


def write_check_name() -> str:
    """A probe file name for a store's write check, its own per call: the processes of
    `ferry serve --workers N` check one store at once, and with one shared name one removed the
    probe another was about to remove, failing its start. A dot name: the upload listings skip it."""
    return f".write-check-{uuid.uuid4().hex}"


class UploadMissing(Exception):
    """The upload's bytes are gone (expired, aborted or never started)."""


class BlobMissing(FileNotFoundError):
    """No blob is stored under the digest: every driver raises this from `read`.

    A FileNotFoundError (ENOENT) because that is what both drivers raised before it existed, so
    code that handles a missing file, such as aiohttp's request-body writer, treats it as before.
    """

    def __init__(self, digest: str) -> None:
        super().__init__(errno.ENOENT, "no blob is stored", digest)
        self.digest = digest


class StorageFull(Exception):
    """No space left where blobs or metadata are written (ENOSPC, a quota, a full database).

    Nothing half-written stays visible: the caller frees what the failed write used and answers
    that storage is full; writes work again as soon as space returns.
    """


NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_no_space(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS


class StorageUnavailable(Exception):
    """The configured store cannot be reached or written (bad bucket, credentials, path)."""


@dataclass(frozen=True)
class StoredObject:
    """What a listing of the store finds: a blob (by digest) or an upload (by id)."""

    name: str
    size: int
    modified: datetime


LIST_BATCH = 1000


class BlobStore(Protocol):
    """Blobs by digest, plus the in-progress uploads they are born from.

    An upload is an append-only byte sequence. `commit_upload` makes it the blob for a digest the
    caller has already verified, atomically: readers see the whole blob or nothing.
    """

    async def check(self) -> None:
        """Raises StorageUnavailable with a readable reason when the store cannot be used."""
        ...

    async def start_upload(self, upload_id: str) -> None: ...

    async def upload_size(self, upload_id: str) -> int:
        """Raises UploadMissing when the upload has no bytes store-side."""
        ...

    async def append_upload(self, upload_id: str, chunks: AsyncIterable[bytes]) -> int:
        """Appends every chunk; returns the upload's new size."""
        ...

    def read_upload(self, upload_id: str) -> AsyncIterator[bytes]:
        """The upload's bytes so far; raises UploadMissing when it has none store-side."""
        ...

    async def make_durable(self, upload_id: str) -> None:
        """Makes the upload's bytes so far survive a power loss (UploadMissing when it is gone).
        The slow part of a commit, done before the caller takes the locks commit_upload needs."""
        ...

    async def commit_upload(self, upload_id: str, digest: str) -> None:
        """Raises UploadMissing when the upload is gone; afterwards the upload no longer exists.
        Durable by itself; quick when make_durable came first."""
        ...

    async def abort_upload(self, upload_id: str) -> None:
        """Forgets the upload; a missing one is not an error."""
        ...

    async def stat(self, digest: str) -> int | None:
        """The blob's size, or None when it is not stored."""
        ...

    def read(self, digest: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes [start, end) of a blob, in bounded chunks; raises BlobMissing when it is not stored.

        Like a slice, a range that starts at or past the end reads nothing.
        """
        ...

    def local_path(self, digest: str) -> Path | None:
        """A path the kernel can sendfile from, when the driver has one."""
        ...

    async def redirect_url(self, digest: str) -> str | None:
        """Where a client may fetch the blob directly (a pre-signed URL), when the driver offers it."""
        ...

    async def delete(self, digest: str) -> None:
        """Removes the blob; a missing one is not an error."""
        ...

    def list_blobs(self) -> AsyncIterator[list[StoredObject]]:
        """Every stored blob (name: its digest), in batches of at most LIST_BATCH, for GC."""
        ...

    def list_uploads(self) -> AsyncIterator[list[StoredObject]]:
        """Every upload with bytes store-side (name: its id; modified: its last write), in batches."""
        ...
