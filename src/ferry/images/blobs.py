"""Blob visibility per repository, mounts and blob deletion."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from ferry.identity.caller import Caller
from ferry.identity.service import readable_organization_ids
from ferry.images import lookups
from ferry.images.errors import BlobUnknown
from ferry.images.repositories import find_repository, repository_for_push, require_repository
from ferry.metadata.db import Database
from ferry.metadata.models import Blob, Repository, RepositoryBlob, utcnow
from ferry.metadata.statements import insert_ignore, insert_or_update
from ferry.names import ImageName, parse_image_name


async def linked_size(session: AsyncSession, repository_id: int, digest: str) -> int | None:
    """The blob's size when the repository may serve it, else None."""
    return await session.scalar(
        select(Blob.size)
        .join(RepositoryBlob, RepositoryBlob.digest == Blob.digest)
        .where(RepositoryBlob.repository_id == repository_id, RepositoryBlob.digest == digest)
    )


async def blob_size(db: Database, image: ImageName, digest: str) -> int:
    """The size of a blob the repository serves, else BlobUnknown."""
    return await lookups.blob_size(db, image, digest)


async def delete_blob(db: Database, image: ImageName, digest: str) -> None:
    """Unlinks the blob from the repository (its bytes stay for others until GC)."""
    async with db.write() as session:
        repository = await require_repository(session, image)
        if not await unlink(session, repository.id, digest):
            raise BlobUnknown(digest)


def digest_lock_key(digest: str) -> int:
    """A 60-bit advisory lock key for one digest (collisions only serialize two blobs)."""
    return int(digest.split(":", 1)[-1][:15], 16)


async def lock_digests(session: AsyncSession, digests: Iterable[str]) -> None:
    """Holds, until the transaction ends, the lock under which a blob's bytes are placed or
    removed (upload commit, GC): PostgreSQL advisory locks, in key order so two holders never
    deadlock. SQLite needs none: a write transaction there is the only writer."""
    if session.bind is None or session.bind.dialect.name != "postgresql":
        return
    for key in sorted({digest_lock_key(d) for d in digests}):
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def link(session: AsyncSession, repository_id: int, digest: str, size: int) -> None:
    """Makes the blob visible in the repository. `created_at` is refreshed on every link (an
    upload or mount of a blob that already exists too): GC's grace period counts from the last
    time someone linked the blob, so a push's manifest always finds the blobs it just sent."""
    await insert_or_update(
        session, Blob, ["digest"], ["created_at"], digest=digest, size=size, created_at=utcnow()
    )
    await insert_ignore(session, RepositoryBlob, repository_id=repository_id, digest=digest)


_LINK = (
    "INSERT INTO blobs (digest, size, created_at) VALUES (:digest, :size, :created_at)"
    " ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at",
    "INSERT INTO repository_blobs (repository_id, digest) VALUES (:repository_id, :digest)"
    " ON CONFLICT DO NOTHING",
)
_LOCK_DIGEST = "SELECT pg_advisory_xact_lock(:key)"


async def place_and_link(
    db: Database, place: Callable[[], Awaitable[None]], repository_id: int, digest: str, size: int
) -> None:
    """`link`'s rows and `place()` (which puts the bytes under the digest) in one quick write
    transaction (metadata/quick_writes.py), under the digest's lock as `lock_digests` takes it:
    GC, which removes bytes under the same lock only when no row names them, can never remove
    bytes placed here. IntegrityError when the repository is gone."""
    async with db.quick_write() as write:
        if not db.is_sqlite:
            await write.execute(_LOCK_DIGEST, {"key": digest_lock_key(digest)})
        await place()
        row = {"digest": digest, "size": size, "created_at": utcnow(), "repository_id": repository_id}
        for statement in _LINK:
            await write.execute(statement, row)


async def link_existing(session: AsyncSession, repository_id: int, digest: str) -> bool:
    """Links a blob only while its row exists (a mount): never re-creates a row GC removed.

    FOR SHARE waits for a GC transaction deleting the row; once it commits the row is gone and
    the mount misses, so the client uploads."""
    size = await session.scalar(select(Blob.size).where(Blob.digest == digest).with_for_update(read=True))
    if size is None:
        return False
    await link(session, repository_id, digest, size)
    return True


async def unlink(session: AsyncSession, repository_id: int, digest: str) -> bool:
    result = await session.execute(
        delete(RepositoryBlob).where(
            RepositoryBlob.repository_id == repository_id, RepositoryBlob.digest == digest
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def readable_source_with_blob(session: AsyncSession, caller: Caller, digest: str) -> int | None:
    """Size of the blob when some repository the caller may read holds it (mount without from)."""
    org_ids = await readable_organization_ids(session, caller)
    readable: ColumnElement[bool] = Repository.is_public.is_(True)
    if org_ids:
        readable = readable | Repository.organization_id.in_(org_ids)
    return await session.scalar(
        select(Blob.size)
        .join(RepositoryBlob, RepositoryBlob.digest == Blob.digest)
        .join(Repository, Repository.id == RepositoryBlob.repository_id)
        .where(RepositoryBlob.digest == digest, readable)
        .limit(1)
    )


async def mount(db: Database, caller: Caller, image: ImageName, digest: str, source_name: str | None) -> bool:
    """Links a blob the caller may read in `source_name` (or, without it, anywhere) into `image`.

    The search is a read; only a hit takes the writer, so a miss costs a push nothing extra.
    """
    async with db.read() as session:
        size = await _mountable_size(session, caller, digest, source_name)
    if size is None:
        return False
    async with db.write() as session:
        repository = await repository_for_push(session, image, caller.name)
        return await link_existing(session, repository.id, digest)


async def _mountable_size(
    session: AsyncSession, caller: Caller, digest: str, source_name: str | None
) -> int | None:
    if not source_name:
        return await readable_source_with_blob(session, caller, digest)
    source = parse_image_name(source_name)
    if source is None or not caller.may(source_name, "pull"):
        return None
    # An unknown source repository is not an error: the client uploads instead.
    source_repo = await find_repository(session, source)
    return await linked_size(session, source_repo.id, digest) if source_repo else None
