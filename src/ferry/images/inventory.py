"""Repositories and tags with the figures the management API reports (sizes, counts), as the
caller may see them.

Every list here costs a fixed number of statements, whatever its length: figures, tag names and
accounts come for a whole page at once (tests/test_statement_counts.py,
tests/test_management_statement_counts.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import READ
from ferry.identity.errors import OrganizationUnknown
from ferry.identity.organizations import account_of, visible_organizations
from ferry.identity.service import Principal
from ferry.images.errors import TagUnknown
from ferry.images.manifest_format import INDEX_TYPES
from ferry.images.repositories import repository_for
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


async def figures(session: AsyncSession, repository_id: int) -> RepositoryFigures:
    return (await figures_of(session, [repository_id]))[repository_id]


def _distinct_blobs(repositories: ColumnElement[bool]) -> Subquery:
    """`repository_id, digest, size` of each blob the manifests of those repositories reference,
    once per repository however many manifests share it."""
    return (
        select(Manifest.repository_id.label("repository_id"), Blob.digest, Blob.size)
        .join(ManifestReference, ManifestReference.manifest_id == Manifest.id)
        .join(Blob, Blob.digest == ManifestReference.digest)
        .where(repositories, ManifestReference.is_manifest.is_(False))
        .distinct()
        .subquery()
    )


async def figures_of(session: AsyncSession, repository_ids: list[int]) -> dict[int, RepositoryFigures]:
    """Per repository: size counts each distinct blob once, plus the manifests; images are tags.

    Three statements for any number of repositories (a page of 500 costs what a page of 1 does).
    """
    distinct_blobs = _distinct_blobs(Manifest.repository_id.in_(repository_ids))
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


@dataclass(frozen=True)
class OrganizationTotals:
    """The account overview's figures: `figures` summed over every repository of the organizations."""

    repositories: int
    figures: RepositoryFigures


async def totals_of(session: AsyncSession, organization_ids: list[int]) -> OrganizationTotals:
    """Four statements however many repositories the organizations hold (the overview used to
    ask for each repository's figures in turn)."""
    in_organizations = Repository.organization_id.in_(organization_ids)
    repository_ids = select(Repository.id).where(in_organizations)
    count = select(func.count()).select_from(Repository).where(in_organizations)
    distinct_blobs = _distinct_blobs(Manifest.repository_id.in_(repository_ids))
    blob_bytes = select(func.sum(distinct_blobs.c.size))
    manifest_bytes = select(func.sum(Manifest.size)).where(Manifest.repository_id.in_(repository_ids))
    images = select(func.count()).select_from(Tag).where(Tag.repository_id.in_(repository_ids))
    repositories, blobs, manifests, tags = [
        int(await session.scalar(query) or 0) for query in (count, blob_bytes, manifest_bytes, images)
    ]
    return OrganizationTotals(repositories, RepositoryFigures(blobs + manifests, tags))


async def _grouped(session: AsyncSession, query: Select[Any, Any]) -> dict[int, int]:
    """`repository_id, figure` rows as a dict."""
    return {key: int(value or 0) for key, value in (await session.execute(query)).all()}


async def tag_names_of(session: AsyncSession, repository_ids: list[int]) -> dict[int, list[str]]:
    names: dict[int, list[str]] = {rid: [] for rid in repository_ids}
    query = (
        select(Tag.repository_id, Tag.name).where(Tag.repository_id.in_(repository_ids)).order_by(Tag.name)
    )
    for repository_id, name in (await session.execute(query)).all():
        names[repository_id].append(name)
    return names


def tag_query(repository_id: int) -> Select[Tag, Manifest]:
    return (
        select(Tag, Manifest)
        .join(Manifest, (Manifest.repository_id == Tag.repository_id) & (Manifest.digest == Tag.digest))
        .where(Tag.repository_id == repository_id)
    )


async def tag_view(session: AsyncSession, repository_id: int, name: str) -> TagView | None:
    row = (await session.execute(tag_query(repository_id).where(Tag.name == name))).first()
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
    query = tag_query(repository_id)
    count = select(func.count()).select_from(Tag).where(Tag.repository_id == repository_id)
    if name_contains:
        query = query.where(Tag.name.contains(name_contains, autoescape=True))
        count = count.where(Tag.name.contains(name_contains, autoescape=True))
    column = Tag.name if order_column == "tag" else Tag.updated_at
    query = query.order_by(column.desc() if descending else column.asc(), Tag.name)
    rows = (await session.execute(query.offset(offset).limit(limit))).all()
    return [TagView(t, m) for t, m in rows], int(await session.scalar(count) or 0)


def repositories_where(
    organization_ids: list[int], organization: str | None, name_contains: str | None, category: str | None
) -> Select[Repository, Organization]:
    """The repositories (with their organizations) of a list's filters; None means any."""
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
    return query


async def visible_organization_ids(
    session: AsyncSession, principal: Principal, namespace: str | None
) -> list[int]:
    """The organizations the caller has a right on; OrganizationUnknown for a named one it has none on."""
    visible = [v.organization for v in await visible_organizations(session, principal)]
    if namespace and namespace not in {o.name for o in visible}:
        raise OrganizationUnknown(namespace)
    return [o.id for o in visible]


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
    query = repositories_where(organization_ids, organization, name_contains, category)
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
class RepositoryView:
    """A repository with everything its detail shows."""

    repository: Repository
    organization: Organization
    account: Account
    figures: RepositoryFigures


@dataclass(frozen=True)
class RepositoryListing(RepositoryView):
    """One row of a repository list: the detail's fields and the tag names."""

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
    return await listings_of(session, rows), total


async def listings_of(
    session: AsyncSession, rows: list[tuple[Repository, Organization]]
) -> list[RepositoryListing]:
    """The rows with their figures, tags and accounts, in a fixed number of statements."""
    ids = [repository.id for repository, _ in rows]
    figures, tags = await figures_of(session, ids), await tag_names_of(session, ids)
    account_ids = {org.account_id for _, org in rows}
    accounts = {a.id: a for a in await session.scalars(select(Account).where(Account.id.in_(account_ids)))}
    return [
        RepositoryListing(repo, org, accounts[org.account_id], figures[repo.id], tags[repo.id])
        for repo, org in rows
    ]


async def show_repository(
    session: AsyncSession, principal: Principal, namespace: str, name: str
) -> RepositoryView:
    visible, repository = await repository_for(session, principal, namespace, name, READ)
    org = visible.organization
    stats = await figures(session, repository.id)
    return RepositoryView(repository, org, await account_of(session, org.account_id), stats)


@dataclass(frozen=True)
class RepositoryQuery:
    """A repository list as the management API asks for it; None means any."""

    namespace: str | None
    name_contains: str | None
    category: str | None
    offset: int
    limit: int
    order_column: str  # one of REPOSITORY_ORDER_COLUMNS
    descending: bool


async def visible_repositories(
    session: AsyncSession, principal: Principal, query: RepositoryQuery
) -> tuple[list[RepositoryListing], int]:
    """A page of the repositories in organizations the caller has a right on, and their number."""
    return await list_repositories(
        session,
        await visible_organization_ids(session, principal, query.namespace),
        query.namespace,
        query.name_contains,
        query.category,
        query.offset,
        query.limit,
        query.order_column,
        query.descending,
    )


@dataclass(frozen=True)
class TagQuery:
    offset: int
    limit: int
    order_column: str  # "updated_at" or "tag"
    descending: bool
    name_contains: str | None


@dataclass(frozen=True)
class TagPage:
    views: list[TagView]
    total: int
    account: Account  # the repository's, whose domain every row names


async def list_tags(
    session: AsyncSession, principal: Principal, namespace: str, name: str, query: TagQuery
) -> TagPage:
    visible, repository = await repository_for(session, principal, namespace, name, READ)
    account = await account_of(session, visible.organization.account_id)
    views, total = await tag_page(
        session,
        repository.id,
        query.offset,
        query.limit,
        query.order_column,
        query.descending,
        query.name_contains,
    )
    return TagPage(views, total, account)


async def show_tag(
    session: AsyncSession, principal: Principal, namespace: str, name: str, tag: str
) -> tuple[TagView, Account]:
    visible, repository = await repository_for(session, principal, namespace, name, READ)
    account = await account_of(session, visible.organization.account_id)
    view = await tag_view(session, repository.id, tag)
    if view is None:
        raise TagUnknown(tag)
    return view, account


@dataclass(frozen=True)
class AccountOverview:
    account: Account
    organizations: int  # the ones the caller sees
    totals: OrganizationTotals


async def account_overview(session: AsyncSession, principal: Principal) -> AccountOverview:
    """The caller's account and the figures of every repository it can see, in a fixed number of
    statements however many repositories there are."""
    visible = [v.organization for v in await visible_organizations(session, principal)]
    account = await account_of(session, principal.account_id)
    return AccountOverview(account, len(visible), await totals_of(session, [o.id for o in visible]))
