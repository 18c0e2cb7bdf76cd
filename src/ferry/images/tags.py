"""Moving a tag: the one place it happens, for a push and for a retag alike; and removing one
(a management delete and a retention policy alike)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import Operator
from ferry.images.events import TagEvents
from ferry.metadata.models import Repository, Tag, TagOverride, utcnow


@dataclass(frozen=True)
class TagMove:
    previous_digest: str | None  # None: a new tag
    moved: bool  # False: the tag already pointed at the digest


async def move_tag(
    session: AsyncSession,
    events: TagEvents,
    repository: Repository,
    name: str,
    digest: str,
    operator: Operator,
    kept_as: str | None = None,
) -> TagMove:
    """Points tag `name` at `digest` and, when that changes anything, tells `events` in the
    same transaction. With `kept_as` ("sync", "rollback"), a digest it replaces is recorded as
    an override, which a rollback can restore (images/overrides.py)."""
    tag = await session.get(Tag, (repository.id, name))
    if tag is None:
        session.add(Tag(repository_id=repository.id, name=name, digest=digest))
        move = TagMove(None, True)
    else:
        move = TagMove(tag.digest, tag.digest != digest)
        if move.moved:
            if kept_as is not None:
                session.add(
                    TagOverride(
                        repository_id=repository.id,
                        tag=name,
                        previous_digest=tag.digest,
                        digest=digest,
                        kind=kept_as,
                        operator_name=operator.name,
                    )
                )
            tag.digest, tag.updated_at = digest, utcnow()
    if move.moved:
        repository.updated_at = utcnow()
        await events.tag_moved(session, repository, name, digest, operator)
    return move


async def remove_tag(
    session: AsyncSession,
    events: TagEvents,
    repository: Repository,
    name: str,
    operator: Operator,
    digest: str | None = None,
    by_retention: bool = False,
) -> bool:
    """Deletes the tag (only while it points at `digest`, when given: a tag moved meanwhile
    stays) and tells `events`; False when there was no such tag. The manifest stays for GC to
    judge."""
    statement = delete(Tag).where(Tag.repository_id == repository.id, Tag.name == name)
    if digest is not None:
        statement = statement.where(Tag.digest == digest)
    removed = (await session.execute(statement.returning(Tag.digest))).scalar()
    if removed is None:
        return False
    await events.tag_removed(session, repository, name, removed, operator, by_retention)
    return True


async def remove_tags_of(
    session: AsyncSession, events: TagEvents, repository: Repository, digest: str, operator: Operator
) -> None:
    """Deletes every tag on the manifest `digest` (a delete by digest) and tells `events` of each."""
    statement = delete(Tag).where(Tag.repository_id == repository.id, Tag.digest == digest)
    for name in (await session.execute(statement.returning(Tag.name))).scalars().all():
        await events.tag_removed(session, repository, name, digest, operator, False)
