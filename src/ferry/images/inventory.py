"""Repositories and tags with the figures the management API reports (sizes, counts)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import Operator
from ferry.images.events import TagEvents
from ferry.images.manifest_format import INDEX_TYPES
from ferry.images.tags import TagMove, move_tag
from ferry.metadata.models import (
    Account,
    Blob,
    Manifest,
    ManifestReference,
    Organization,
    Repository,
    Tag,
)

REPOSITORY_ORDER_COLUMNS = ("name", "updated_time", "tag_count")


@dataclass(frozen=True)
class RepositoryFigures:
    size: int
    num_images: int


@dataclass(frozen=True)
class TagView:
    tag: Tag
    manifest: Manifest

    @property
    def is_index(self) -> bool:
        return self.manifest.media_type in INDEX_TYPES

    @property
    def image_id(self) -> str:
        """The config digest of an image (what `docker images` shows), the digest of an index."""
        if self.is_index:
            return self.manifest.digest
        try:
            config = json.loads(self.manifest.payload).get("config", {})
            return str(config.get("digest", self.manifest.digest))
        except (ValueError, AttributeError):
            return self.manifest.digest


async def repository_in(session: AsyncSession, organization_id: int, name: str) -> Repository | None:
    return await session.scalar(
        select(Repository).where(Repository.organization_id == organization_id, Repository.name == name)
    )


async def figures(session: AsyncSession, repository_id: int) -> RepositoryFigures:
    return (await figures_of(session, [repository_id]))[repository_id]


async def figures_of(session: AsyncSession, repository_ids: list[int]) -> dict[int, RepositoryFigures]:
    """Per repository: size counts each distinct blob once, plus the manifests; images are tags.

    Three statements for any number of repositories (a page of 500 costs what a page of 1 does).
    """
    distinct_blobs = (
        select(Manifest.repository_id.label("repository_id"), Blob.digest, Blob.size)
        .join(ManifestReference, ManifestReference.manifest_id == Manifest.id)
        .join(Blob, Blob.digest == ManifestReference.digest)
        .where(Manifest.repository_id.in_(repository_ids), ManifestReference.is_manifest.is_(False))
        .distinct()
        .subquery()
    )
    blob_bytes = await _grouped(
        session,
        select(distinct_blobs.c.repository_id, func.sum(distinct_blobs.c.size)).group_by(
            distinct_blobs.c.repository_id
        ),
    )
    manifest_bytes = await _grouped(
        session,
        select(Manifest.repository_id, func.sum(Manifest.size))
        .where(Manifest.repository_id.in_(repository_ids))
        .group_by(Manifest.repository_id),
    )
    tags = await _grouped(
        session,
        select(Tag.repository_id, func.count())
        .where(Tag.repository_id.in_(repository_ids))
        .group_by(Tag.repository_id),
    )
    return {
        rid: RepositoryFigures(blob_bytes.get(rid, 0) + manifest_bytes.get(rid, 0), tags.get(rid, 0))
        for rid in repository_ids
    }


async def _grouped(session: AsyncSession, query: Select[Any, Any]) -> dict[int, int]:
    """`repository_id, figure` rows as a dict."""
    return {key: int(value or 0) for key, value in (await session.execute(query)).all()}


async def tag_names(session: AsyncSession, repository_id: int) -> list[str]:
    return (await tag_names_of(session, [repository_id]))[repository_id]


async def tag_names_of(session: AsyncSession, repository_ids: list[int]) -> dict[int, list[str]]:
    names: dict[int, list[str]] = {rid: [] for rid in repository_ids}
    query = (
        select(Tag.repository_id, Tag.name).where(Tag.repository_id.in_(repository_ids)).order_by(Tag.name)
    )
    for repository_id, name in (await session.execute(query)).all():
        names[repository_id].append(name)
    return names


def _tag_query(repository_id: int) -> Select[Tag, Manifest]:
    return (
        select(Tag, Manifest)
        .join(Manifest, (Manifest.repository_id == Tag.repository_id) & (Manifest.digest == Tag.digest))
        .where(Tag.repository_id == repository_id)
    )


async def tag_view(session: AsyncSession, repository_id: int, name: str) -> TagView | None:
    row = (await session.execute(_tag_query(repository_id).where(Tag.name == name))).first()
    return TagView(row[0], row[1]) if row else None


async def tag_page(
    session: AsyncSession,
    repository_id: int,
    offset: int,
    limit: int,
    order_column: str,
    descending: bool,
    name_contains: str | None,
) -> tuple[list[TagView], int]:
    query = _tag_query(repository_id)
    count = select(func.count()).select_from(Tag).where(Tag.repository_id == repository_id)
    if name_contains:
        query = query.where(Tag.name.contains(name_contains, autoescape=True))
        count = count.where(Tag.name.contains(name_contains, autoescape=True))
    column = Tag.name if order_column == "tag" else Tag.updated_at
    query = query.order_by(column.desc() if descending else column.asc(), Tag.name)
    rows = (await session.execute(query.offset(offset).limit(limit))).all()
    return [TagView(t, m) for t, m in rows], int(await session.scalar(count) or 0)


async def repository_page(
    session: AsyncSession,
    organization_ids: list[int],
    organization: str | None,
    name_contains: str | None,
    category: str | None,
    offset: int,
    limit: int,
    order_column: str,
    descending: bool,
) -> tuple[list[tuple[Repository, Organization]], int]:
    """One page of repositories; `order_column` is one of REPOSITORY_ORDER_COLUMNS."""
    query = (
        select(Repository, Organization)
        .join(Organization, Organization.id == Repository.organization_id)
        .where(Repository.organization_id.in_(organization_ids))
    )
    if organization:
        query = query.where(Organization.name == organization)
    if name_contains:
        query = query.where(Repository.name.contains(name_contains, autoescape=True))
    if category:
        query = query.where(Repository.category == category)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    tag_count = (
        select(func.count())
        .select_from(Tag)
        .where(Tag.repository_id == Repository.id)
        .correlate(Repository)
        .scalar_subquery()
    )
    column = {"updated_time": Repository.updated_at, "name": Repository.name, "tag_count": tag_count}[
        order_column
    ]
    query = query.order_by(column.desc() if descending else column.asc(), Repository.name, Repository.id)
    rows = (await session.execute(query.offset(offset).limit(limit))).all()
    return [(r, o) for r, o in rows], int(total or 0)


@dataclass(frozen=True)
class RepositoryListing:
    """One row of a repository list, with everything the list shows."""

    repository: Repository
    organization: Organization
    account: Account
    figures: RepositoryFigures
    tags: list[str]


async def list_repositories(
    session: AsyncSession,
    organization_ids: list[int],
    organization: str | None,
    name_contains: str | None,
    category: str | None,
    offset: int,
    limit: int,
    order_column: str,
    descending: bool,
) -> tuple[list[RepositoryListing], int]:
    """A page of repositories and their figures, in a fixed number of statements."""
    rows, total = await repository_page(
        session,
        organization_ids,
        organization,
        name_contains,
        category,
        offset,
        limit,
        order_column,
        descending,
    )
    ids = [repository.id for repository, _ in rows]
    figures, tags = await figures_of(session, ids), await tag_names_of(session, ids)
    account_ids = {org.account_id for _, org in rows}
    accounts = {a.id: a for a in await session.scalars(select(Account).where(Account.id.in_(account_ids)))}
    listings = [
        RepositoryListing(repo, org, accounts[org.account_id], figures[repo.id], tags[repo.id])
        for repo, org in rows
    ]
    return listings, total


async def retag(
    session: AsyncSession,
    events: TagEvents,
    repository: Repository,
    source: str,
    destination: str,
    operator: Operator,
) -> TagMove | None:
    """Points `destination` at the source tag's manifest; None when the source tag is missing."""
    digest = await session.scalar(
        select(Tag.digest).where(Tag.repository_id == repository.id, Tag.name == source)
    )
    if digest is None:
        return None
    return await move_tag(session, events, repository, destination, digest, operator)


async def delete_tag(session: AsyncSession, repository_id: int, name: str) -> bool:
    result = await session.execute(delete(Tag).where(Tag.repository_id == repository_id, Tag.name == name))
    return bool(result.rowcount)  # type: ignore[attr-defined]
