"""Manifests and tags: put (with reference checks), get, delete, tag lists, referrers."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from ferry.identity.caller import Operator
from ferry.images import lookups
from ferry.images.digests import require_digest, sha256_digest
from ferry.images.errors import DigestInvalid, ManifestBlobUnknown, ManifestInvalid, ManifestUnknown
from ferry.images.events import TagEvents
from ferry.images.lookups import StoredManifest
from ferry.images.manifest_format import OCI_INDEX, ParsedManifest, parse_manifest
from ferry.images.repositories import repository_for_push, require_repository
from ferry.images.tags import TagMove, move_tag, remove_tag, remove_tags_of
from ferry.metadata.db import Database
from ferry.metadata.models import (
    Blob,
    Manifest,
    ManifestReference,
    Organization,
    Repository,
    RepositoryBlob,
    Tag,
    utcnow,
)
from ferry.names import ImageName, invalid_tag, is_digest, is_tag


@dataclass(frozen=True)
class PutResult:
    digest: str
    subject: str | None
    # The tag's digest before this push (None: new tag, or a push by digest).
    previous_digest: str | None
    tag_moved: bool


def check_reference(reference: str, *, lookup: bool = False) -> None:
    """A digest (else DIGEST_INVALID) or a tag; looking up a name no tag can have is a 404."""
    if ":" in reference:
        require_digest(reference)
    elif not is_tag(reference):
        if lookup:
            raise ManifestUnknown(reference)
        raise ManifestInvalid(invalid_tag(reference))


async def put_manifest(
    db: Database,
    events: TagEvents,
    image: ImageName,
    reference: str,
    payload: bytes,
    content_type: str | None,
    operator: Operator,
    kept_as: str | None = None,
) -> PutResult:
    """Stores the manifest and moves the tag it names; `kept_as` as images.tags.move_tag's."""
    check_reference(reference)
    digest = sha256_digest(payload)
    if is_digest(reference) and reference != digest:
        raise DigestInvalid(reference, f"manifest digest is {digest}, not {reference}")
    parsed = parse_manifest(payload, content_type)
    async with db.write() as session:
        repository = await repository_for_push(session, image, operator.name)
        content_size = await _check_references(session, repository.id, parsed) + len(payload)
        is_new = await _store(session, repository.id, digest, payload, parsed, content_size)
        move = TagMove(None, False)
        if not is_digest(reference):
            move = await move_tag(session, events, repository, reference, digest, operator, kept_as)
        if is_new and parsed.subject:
            await events.referrer_added(session, repository, parsed.subject, operator)
        if not move.moved:  # a moved tag has set it already (one UPDATE, not two)
            repository.updated_at = utcnow()
    return PutResult(digest, parsed.subject, move.previous_digest, move.moved)


async def _check_references(session: AsyncSession, repository_id: int, parsed: ParsedManifest) -> int:
    """Every referenced blob and child must be in the repository; returns their total size."""
    total = 0
    wanted_blobs = {d.digest for d in parsed.blobs if not d.foreign}
    if wanted_blobs:
        rows = await session.execute(
            select(Blob.digest, Blob.size)
            .join(RepositoryBlob, RepositoryBlob.digest == Blob.digest)
            .where(RepositoryBlob.repository_id == repository_id, Blob.digest.in_(wanted_blobs))
            # FOR SHARE: a GC deleting one of these links waits for this push or makes it miss.
            .with_for_update(read=True, of=RepositoryBlob)
        )
        found = {digest: size for digest, size in rows.all()}
        _require_all(wanted_blobs, found)
        total += sum(found.values())
    wanted_children = {d.digest for d in parsed.children}
    if wanted_children:
        rows = await session.execute(
            select(Manifest.digest, Manifest.content_size)
            .where(Manifest.repository_id == repository_id, Manifest.digest.in_(wanted_children))
            .with_for_update(read=True)
        )
        found = {digest: size for digest, size in rows.all()}
        _require_all(wanted_children, found)
        total += sum(found.values())
    return total


def _require_all(wanted: set[str], found: dict[str, int]) -> None:
    missing = sorted(wanted - found.keys())
    if missing:
        raise ManifestBlobUnknown(missing)


async def _store(
    session: AsyncSession,
    repository_id: int,
    digest: str,
    payload: bytes,
    parsed: ParsedManifest,
    content_size: int,
) -> bool:
    """Stores the manifest unless the repository has it; True when it is new."""
    existing = await session.scalar(
        select(Manifest.id)
        .where(Manifest.repository_id == repository_id, Manifest.digest == digest)
        .with_for_update(read=True)  # a tag about to point here holds it against GC
    )
    if existing is not None:
        return False
    manifest = Manifest(
        repository_id=repository_id,
        digest=digest,
        media_type=parsed.media_type,
        artifact_type=parsed.artifact_type,
        subject_digest=parsed.subject,
        annotations=parsed.annotations,
        size=len(payload),
        content_size=content_size,
        payload=payload,
    )
    session.add(manifest)
    await session.flush()
    references = {d.digest: False for d in parsed.blobs} | {d.digest: True for d in parsed.children}
    session.add_all(
        ManifestReference(manifest_id=manifest.id, digest=d, is_manifest=is_child)
        for d, is_child in references.items()
    )
    return True


async def tag_digest(session: AsyncSession, repository_id: int, tag: str) -> str | None:
    return await session.scalar(select(Tag.digest).where(Tag.repository_id == repository_id, Tag.name == tag))


async def resolve(session: AsyncSession, repository_id: int, reference: str) -> Manifest:
    """The manifest a tag or digest names in the repository, else ManifestUnknown."""
    digest = reference if is_digest(reference) else await tag_digest(session, repository_id, reference)
    manifest = await session.scalar(
        select(Manifest).where(Manifest.repository_id == repository_id, Manifest.digest == digest)
    )
    if manifest is None:
        raise ManifestUnknown(reference)
    return manifest


async def referrer_manifests(
    session: AsyncSession, repository_id: int, subject: str, artifact_type: str | None = None
) -> list[Manifest]:
    """The manifests whose subject is `subject` (signatures, SBOMs), oldest first."""
    query = select(Manifest).where(
        Manifest.repository_id == repository_id, Manifest.subject_digest == subject
    )
    if artifact_type:
        query = query.where(Manifest.artifact_type == artifact_type)
    return list(await session.scalars(query.order_by(Manifest.id)))


async def get_manifest(db: Database, image: ImageName, reference: str) -> StoredManifest:
    check_reference(reference, lookup=True)
    return await lookups.manifest(db, image, reference, by_digest=is_digest(reference))


async def delete_manifest(
    db: Database, events: TagEvents, image: ImageName, reference: str, operator: Operator
) -> None:
    """By digest: the manifest and every tag on it. By tag: only the tag. `events` hears of each
    tag removed."""
    check_reference(reference, lookup=True)
    async with db.write() as session:
        repository = await require_repository(session, image)
        if not is_digest(reference):
            if not await remove_tag(session, events, repository, reference, operator):
                raise ManifestUnknown(reference)
            return
        manifest = await resolve(session, repository.id, reference)
        await remove_tags_of(session, events, repository, manifest.digest, operator)
        await session.execute(delete(ManifestReference).where(ManifestReference.manifest_id == manifest.id))
        await session.delete(manifest)


async def list_tags(
    db: Database, image: ImageName, limit: int | None, last: str | None
) -> tuple[list[str], bool]:
    """Tag names in lexical order after `last`; the flag says whether more follow."""
    return await lookups.tag_names(db, image, limit, last)


async def referrers(db: Database, image: ImageName, digest: str, artifact_type: str | None) -> bytes:
    """The referrers of a manifest as an OCI image index document."""
    require_digest(digest)
    async with db.read() as session:
        repository = await require_repository(session, image)
        rows = await referrer_manifests(session, repository.id, digest, artifact_type)
    descriptors = []
    for m in rows:
        descriptor: dict[str, object] = {
            "mediaType": m.media_type,
            "digest": m.digest,
            "size": m.size,
        }
        if m.artifact_type:
            descriptor["artifactType"] = m.artifact_type
        if m.annotations:
            descriptor["annotations"] = m.annotations
        descriptors.append(descriptor)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    return json.dumps(index).encode()


async def catalog(
    session: AsyncSession, readable_org_ids: list[int], limit: int | None, last: str | None
) -> tuple[list[str], bool]:
    full_name = Organization.name + "/" + Repository.name
    readable: ColumnElement[bool] = Repository.is_public.is_(True)
    if readable_org_ids:
        readable = readable | Repository.organization_id.in_(readable_org_ids)
    query = (
        select(full_name)
        .select_from(Repository)
        .join(Organization, Organization.id == Repository.organization_id)
        .where(readable)
        .order_by(full_name)
    )
    if last:
        query = query.where(full_name > last)
    if limit is not None:
        query = query.limit(limit + 1)
    names = list(await session.scalars(query))
    if limit is not None and len(names) > limit:
        return names[:limit], True
    return names, False
