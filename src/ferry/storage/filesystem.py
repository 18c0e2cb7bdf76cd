"""Filesystem driver: blobs at blobs/sha256/ab/<hex>, uploads at uploads/<id>.

Writes go to the upload file; a commit fsyncs it and renames it into place, so a crash at any
moment leaves either no blob or the complete one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ferry.storage.base import (
    LIST_BATCH,
    BlobMissing,
    StorageFull,
    StorageUnavailable,
    StoredObject,
    UploadMissing,
    is_no_space,
    write_check_name,
)

READ_CHUNK = 1024 * 1024


@contextmanager
def _space_checked(what: str) -> Iterator[None]:
    """ENOSPC and EDQUOT become StorageFull; other errors pass unchanged."""
    try:
        yield
    except OSError as error:
        if is_no_space(error):
            raise StorageFull(f"no space left for {what}") from None
        raise


class FilesystemBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.uploads = root / "uploads"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)

    async def check(self) -> None:
        probe = self.uploads / write_check_name()
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise StorageUnavailable(f"cannot write under {self.root}: {error}") from None

    def _blob_path(self, digest: str) -> Path:
        hexpart = digest.split(":", 1)[1]
        return self.blobs / hexpart[:2] / hexpart

    def _upload_path(self, upload_id: str) -> Path:
        return self.uploads / upload_id

    async def start_upload(self, upload_id: str) -> None:
        with _space_checked("a new upload"):
            self._upload_path(upload_id).touch()

    async def upload_size(self, upload_id: str) -> int:
        try:
            return self._upload_path(upload_id).stat().st_size
        except FileNotFoundError:
            raise UploadMissing(upload_id) from None

    async def append_upload(self, upload_id: str, chunks: AsyncIterable[bytes]) -> int:
        path = self._upload_path(upload_id)
        if not path.exists():
            raise UploadMissing(upload_id)
        # Inline writes land in the page cache and measured faster than a thread hop per chunk;
        # durability comes from the fsync at commit.
        with _space_checked("the upload's bytes"), path.open("ab") as f:
            async for chunk in chunks:
                f.write(chunk)
            f.flush()  # a full disk shows here, not later when the file is closed
            return f.tell()

    async def read_upload(self, upload_id: str) -> AsyncIterator[bytes]:
        path = self._upload_path(upload_id)
        try:
            f = path.open("rb")
        except FileNotFoundError:
            raise UploadMissing(upload_id) from None
        with f:
            while chunk := await asyncio.to_thread(f.read, READ_CHUNK):
                yield chunk

    async def make_durable(self, upload_id: str) -> None:
        await asyncio.to_thread(self._fsync, self._upload_path(upload_id))

    async def commit_upload(self, upload_id: str, digest: str) -> None:
        # On this thread, not the executor's: the caller holds the database's write lock, and
        # after make_durable what is left (an fsync of a clean file, a rename, an fsync of the
        # directory) takes well under a millisecond, less than a hop to a busy executor.
        with _space_checked("the blob"):
            self._commit(self._upload_path(upload_id), self._blob_path(digest))

    @staticmethod
    def _fsync(path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise UploadMissing(path.name) from None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @classmethod
    def _commit(cls, src: Path, dst: Path) -> None:
        cls._fsync(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        dirfd = os.open(dst.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)

    async def abort_upload(self, upload_id: str) -> None:
        self._upload_path(upload_id).unlink(missing_ok=True)

    async def stat(self, digest: str) -> int | None:
        try:
            return self._blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    async def read(self, digest: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        try:
            f = self._blob_path(digest).open("rb")
        except FileNotFoundError:
            raise BlobMissing(digest) from None
        with f:
            f.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                size = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await asyncio.to_thread(f.read, size)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def local_path(self, digest: str) -> Path | None:
        return self._blob_path(digest)

    async def redirect_url(self, digest: str) -> str | None:
        return None

    async def delete(self, digest: str) -> None:
        self._blob_path(digest).unlink(missing_ok=True)

    async def list_blobs(self) -> AsyncIterator[list[StoredObject]]:
        for shard in sorted(await asyncio.to_thread(_entries, self.blobs), key=lambda e: e.name):
            if shard.is_dir():
                for batch in _batches(await asyncio.to_thread(_files, Path(shard.path)), "sha256:"):
                    yield batch

    async def list_uploads(self) -> AsyncIterator[list[StoredObject]]:
        files = [e for e in await asyncio.to_thread(_files, self.uploads) if not e[0].startswith(".")]
        for batch in _batches(files, ""):
            yield batch


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as entries:
        return list(entries)


def _files(directory: Path) -> list[tuple[str, int, float]]:
    """(name, size, mtime) of the regular files in one directory; a file gone meanwhile is skipped."""
    found = []
    for entry in _entries(directory):
        try:
            if entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
                found.append((entry.name, stat.st_size, stat.st_mtime))
        except FileNotFoundError:
            continue
    return sorted(found)


def _batches(files: list[tuple[str, int, float]], prefix: str) -> Iterator[list[StoredObject]]:
    for start in range(0, len(files), LIST_BATCH):
        yield [
            StoredObject(prefix + name, size, datetime.fromtimestamp(mtime, UTC))
            for name, size, mtime in files[start : start + LIST_BATCH]
        ]
