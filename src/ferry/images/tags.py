"""Moving a tag: the one place it happens, for a push and for a retag alike."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import Operator
from ferry.images.events import TagEvents
from ferry.metadata.models import Repository, Tag, utcnow


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
) -> TagMove:
    """Points tag `name` at `digest` and, when that changes anything, tells `events` in the
    same transaction."""
    tag = await session.get(Tag, (repository.id, name))
    if tag is None:
        session.add(Tag(repository_id=repository.id, name=name, digest=digest))
        move = TagMove(None, True)
    else:
        move = TagMove(tag.digest, tag.digest != digest)
        if move.moved:
            tag.digest, tag.updated_at = digest, utcnow()
    if move.moved:
        repository.updated_at = utcnow()
        await events.tag_moved(session, repository, name, operator)
    return move
