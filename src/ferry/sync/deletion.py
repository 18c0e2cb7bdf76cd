"""Deletion sync: one attempt of a deletion job (trigger `delete`, recorded by sync/triggers.py
when a tag is deleted here under an organization rule that opted in, due after its grace period).

The target's tag is deleted only if it still holds an image that a sync from this repository
wrote there (never a tag the target had from elsewhere, or one someone changed since); the
manifest stays for the target's garbage collection, and the target keeps no override record (the
tag is gone, not replaced).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import EDIT
from ferry.identity.service import Principal
from ferry.images.events import TagEvents
from ferry.images.repositories import repository_for
from ferry.images.tags import move_tag
from ferry.metadata.models import JobStatus, Manifest, SyncJob, Tag
from ferry.sync import reasons
from ferry.sync.errors import RuleError
from ferry.sync.queue import Outcome, cancel_jobs
from ferry.sync.target import Target
from ferry.sync.triggers import DELETE

# Whether a sync from here ever copied this digest to the job's tag and target.
EverCopied = Callable[[str], Awaitable[bool]]


async def delete_at_target(job: SyncJob, target: Target, ever_copied: EverCopied) -> Outcome:
    where = target.describe(job.tag)
    current = await target.manifest_digest(job.tag)
    if current is None:
        return Outcome(
            JobStatus.SUCCESS, f"{where} is already gone; nothing to delete", steps=[f"{where}: absent"]
        )
    if not await ever_copied(current):
        message = (
            f"left alone: {where} holds {current}, which no sync from here wrote there "
            "(deletion sync deletes only tags it wrote)"
        )
        return Outcome(JobStatus.EXISTED, message, digest=current, reason=reasons.CONFLICT, steps=[message])
    await target.delete_tag(job.tag)
    message = f"deleted {where} ({current}, written by a sync from here), as the tag was deleted here"
    return Outcome(JobStatus.SUCCESS, message, digest=current, steps=[message])


class NothingToUndo(RuleError):
    """No deletion of the tag is waiting to reach a target."""


@dataclass(frozen=True)
class Undone:
    restored: str | None  # the digest the tag points at again here; None: it could not be
    cancelled: int  # deletions that will not reach their targets


async def undelete(
    session: AsyncSession, events: TagEvents, principal: Principal, namespace: str, name: str, tag: str
) -> Undone:
    """Within the grace period: the deletions waiting to reach the targets are cancelled, and
    the tag points here again at the image it was deleted from, if that is still stored (edit
    rights, as for a push)."""
    _, repository = await repository_for(session, principal, namespace, name, EDIT)
    waiting = (
        SyncJob.repository_id == repository.id,
        SyncJob.tag == tag,
        SyncJob.trigger == DELETE,
        SyncJob.status == JobStatus.WAITING,
    )
    pending = list(await session.scalars(select(SyncJob).where(*waiting).order_by(SyncJob.id.desc())))
    if not pending:
        raise NothingToUndo(
            f"no deletion of {namespace}/{name}:{tag} is waiting to reach a target: none was made, "
            "or it reached its targets already (push the image again to copy it back)"
        )
    # Cancelled first, so the records say who undid them (the tag's return would void them too).
    await cancel_jobs(
        session,
        *waiting,
        reason=reasons.CANCELLED,
        message=f"cancelled: the deletion was undone by {principal.name} before it was due; nothing deleted",
    )
    restored = None
    digest = pending[0].digest
    tagged = await session.scalar(
        select(Tag.digest).where(Tag.repository_id == repository.id, Tag.name == tag)
    )
    if tagged is None and digest is not None:
        stored = await session.scalar(
            select(Manifest.id).where(Manifest.repository_id == repository.id, Manifest.digest == digest)
        )
        if stored is not None:
            await move_tag(session, events, repository, tag, digest, principal.operator)
            restored = digest
    return Undone(restored, len(pending))
