"""Backup before overwrite: the override history of a tag, and rollback.

Each time a sync copy from another region replaces a tag's digest here (images.tags.move_tag
with kept_as="sync"), the digest it replaced is recorded, and garbage collection keeps that
image for FERRY_OVERRIDE_KEEP_SECONDS (images/gc.py). A rollback moves the tag back to it, as
a push would (automatic rules and webhooks see the move), and is itself recorded, so the
newest record always describes the tag as it is and a second rollback undoes the first.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import EDIT, READ
from ferry.identity.service import Principal
from ferry.images.errors import ImageError, TagUnknown
from ferry.images.events import TagEvents
from ferry.images.repositories import repository_for
from ferry.images.tags import move_tag
from ferry.metadata.models import Manifest, Tag, TagOverride

SHOWN = 100


class OverrideUnknown(ImageError):
    """Nothing to roll back to."""


class PreviousImageGone(ImageError):
    def __init__(self, tag: str, digest: str) -> None:
        super().__init__(
            f"the image tag {tag} pointed at before, {digest}, is no longer in this repository "
            "(garbage collection keeps it for FERRY_OVERRIDE_KEEP_SECONDS after the override)"
        )


async def overrides_of(
    session: AsyncSession, principal: Principal, namespace: str, name: str, tag: str
) -> list[TagOverride]:
    """The tag's override records, newest first (read permission)."""
    _, repository = await repository_for(session, principal, namespace, name, READ)
    query = (
        select(TagOverride)
        .where(TagOverride.repository_id == repository.id, TagOverride.tag == tag)
        .order_by(TagOverride.id.desc())
        .limit(SHOWN)
    )
    return list(await session.scalars(query))


async def rollback(
    session: AsyncSession,
    events: TagEvents,
    principal: Principal,
    namespace: str,
    name: str,
    tag: str,
    digest: str | None = None,
) -> TagOverride:
    """Points the tag back at what the newest override replaced (or at `digest`, one of the
    digests its history names); edit permission, as a push. Returns the rollback's record."""
    _, repository = await repository_for(session, principal, namespace, name, EDIT)
    current = await session.get(Tag, (repository.id, tag))
    if current is None:
        raise TagUnknown(tag)
    history = list(
        await session.scalars(
            select(TagOverride)
            .where(TagOverride.repository_id == repository.id, TagOverride.tag == tag)
            .order_by(TagOverride.id.desc())
        )
    )
    wanted = digest if digest is not None else _previous(history, current.digest)
    if wanted is None:
        raise OverrideUnknown(
            f"no override of {namespace}/{name}:{tag} to roll back: no sync copy replaced the "
            f"image it points at now ({current.digest}) in this region"
        )
    if digest is not None and digest not in {h.previous_digest for h in history} | {
        h.digest for h in history
    }:
        raise OverrideUnknown(f"{digest} is not in the override history of {namespace}/{name}:{tag}")
    if wanted == current.digest:
        raise OverrideUnknown(f"{namespace}/{name}:{tag} already points at {wanted}")
    stored = await session.scalar(
        select(Manifest.id).where(Manifest.repository_id == repository.id, Manifest.digest == wanted)
    )
    if stored is None:
        raise PreviousImageGone(tag, wanted)
    await move_tag(session, events, repository, tag, wanted, principal.operator, kept_as="rollback")
    await session.flush()
    record = await session.scalar(
        select(TagOverride)
        .where(TagOverride.repository_id == repository.id, TagOverride.tag == tag)
        .order_by(TagOverride.id.desc())
        .limit(1)
    )
    assert record is not None
    return record


def _previous(history: list[TagOverride], current: str) -> str | None:
    """What the newest record that left the tag at `current` replaced."""
    newest = history[0] if history else None
    return newest.previous_digest if newest is not None and newest.digest == current else None
