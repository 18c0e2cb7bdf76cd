from __future__ import annotations

import errno
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Protocol


class UploadMissing(Exception):
    """The upload's bytes are gone (expired, aborted or never started)."""


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

    def read_upload(self, upload_id: str) -> AsyncIterator[bytes]: ...

    async def commit_upload(self, upload_id: str, digest: str) -> None: ...

    async def abort_upload(self, upload_id: str) -> None: ...

    async def stat(self, digest: str) -> int | None:
        """The blob's size, or None when it is not stored."""
        ...

    def read(self, digest: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes [start, end) of a blob, in bounded chunks."""
        ...

    def local_path(self, digest: str) -> Path | None:
        """A path the kernel can sendfile from, when the driver has one."""
        ...

    async def redirect_url(self, digest: str) -> str | None:
        """Where a client may fetch the blob directly (a pre-signed URL), when the driver offers it."""
        ...

    async def delete(self, digest: str) -> None: ...
