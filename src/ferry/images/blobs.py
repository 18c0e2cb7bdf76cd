"""Blob visibility per repository, mounts and blob deletion."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from ferry.identity.caller import Caller
from ferry.identity.service import readable_organization_ids
from ferry.images.repositories import insert_ignore
from ferry.metadata.models import Blob, Repository, RepositoryBlob, utcnow


async def linked_size(session: AsyncSession, repository_id: int, digest: str) -> int | None:
    """The blob's size when the repository may serve it, else None."""
    return await session.scalar(
        select(Blob.size)
        .join(RepositoryBlob, RepositoryBlob.digest == Blob.digest)
        .where(RepositoryBlob.repository_id == repository_id, RepositoryBlob.digest == digest)
    )


async def link(session: AsyncSession, repository_id: int, digest: str, size: int) -> None:
    await insert_ignore(session, Blob, digest=digest, size=size, created_at=utcnow())
    await insert_ignore(session, RepositoryBlob, repository_id=repository_id, digest=digest)


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
