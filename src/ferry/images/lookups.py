"""The registry's hot reads as single indexed statements (metadata/point_reads.py says why):
a blob's size in a repository, a manifest by tag or digest, a page of tag names.

Each answers in one statement when the thing exists; only a miss asks a second time whether the
repository exists, so that the client hears NAME_UNKNOWN rather than BLOB_UNKNOWN for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.images.errors import BlobUnknown, ManifestUnknown, RepositoryUnknown
from ferry.metadata.db import Database
from ferry.names import ImageName

_REPOSITORY = """
    FROM organizations o JOIN repositories r ON r.organization_id = o.id
    WHERE o.name = :org AND r.name = :repo"""

_REPOSITORY_ID = "SELECT r.id" + _REPOSITORY

_BLOB_SIZE = """
    SELECT b.size FROM organizations o
    JOIN repositories r ON r.organization_id = o.id
    JOIN repository_blobs rb ON rb.repository_id = r.id AND rb.digest = :digest
    JOIN blobs b ON b.digest = rb.digest
    WHERE o.name = :org AND r.name = :repo"""

_MANIFEST_COLUMNS = "SELECT m.digest, m.media_type, m.payload, m.subject_digest FROM organizations o"

_MANIFEST_BY_DIGEST = (
    _MANIFEST_COLUMNS
    + """
    JOIN repositories r ON r.organization_id = o.id
    JOIN manifests m ON m.repository_id = r.id AND m.digest = :digest
    WHERE o.name = :org AND r.name = :repo"""
)

_MANIFEST_BY_TAG = (
    _MANIFEST_COLUMNS
    + """
    JOIN repositories r ON r.organization_id = o.id
    JOIN tags t ON t.repository_id = r.id AND t.name = :tag
    JOIN manifests m ON m.repository_id = r.id AND m.digest = t.digest
    WHERE o.name = :org AND r.name = :repo"""
)

_TAG_NAMES = """
    SELECT t.name FROM tags t WHERE t.repository_id = :repository_id AND t.name > :last
    ORDER BY t.name LIMIT :limit"""


@dataclass(frozen=True)
class StoredManifest:
    digest: str
    media_type: str
    payload: bytes
    subject: str | None


def _names(image: ImageName) -> dict[str, str]:
    return {"org": image.organization, "repo": image.repository}


async def repository_id(db: Database, image: ImageName) -> int:
    """The repository's id, else RepositoryUnknown."""
    row = await db.point.one(_REPOSITORY_ID, _names(image))
    if row is None:
        raise RepositoryUnknown(str(image))
    return int(row[0])


async def blob_size(db: Database, image: ImageName, digest: str) -> int:
    """The size of a blob the repository serves, else BlobUnknown (RepositoryUnknown when the
    repository itself does not exist)."""
    row = await db.point.one(_BLOB_SIZE, _names(image) | {"digest": digest})
    if row is not None:
        return int(row[0])
    await repository_id(db, image)
    raise BlobUnknown(digest)


async def manifest(db: Database, image: ImageName, reference: str, by_digest: bool) -> StoredManifest:
    """The manifest a tag or digest names in the repository, else ManifestUnknown."""
    if by_digest:
        row = await db.point.one(_MANIFEST_BY_DIGEST, _names(image) | {"digest": reference})
    else:
        row = await db.point.one(_MANIFEST_BY_TAG, _names(image) | {"tag": reference})
    if row is None:
        await repository_id(db, image)
        raise ManifestUnknown(reference)
    digest, media_type, payload, subject = row
    return StoredManifest(digest, media_type, bytes(payload), subject)


async def tag_names(
    db: Database, image: ImageName, limit: int | None, last: str | None
) -> tuple[list[str], bool]:
    """Tag names in lexical order after `last`; the flag says whether more follow."""
    found = await repository_id(db, image)
    # Without a page size, a bound no repository reaches: one statement text for both cases.
    wanted = limit + 1 if limit is not None else 2**62
    rows = await db.point.all(_TAG_NAMES, {"repository_id": found, "last": last or "", "limit": wanted})
    names = [str(row[0]) for row in rows]
    if limit is not None and len(names) > limit:
        return names[:limit], True
    return names, False
