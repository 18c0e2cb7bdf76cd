"""SWR's v3 listings, paged by marker (keyset) instead of offset: a page starts after the last
row of the one before, so none repeats or is skipped when rows are added meanwhile."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import READ
from ferry.identity.organizations import account_of
from ferry.identity.service import Principal
from ferry.images.inventory import (
    RepositoryListing,
    TagView,
    listings_of,
    repositories_where,
    tag_query,
    visible_organization_ids,
)
from ferry.images.repositories import repository_for
from ferry.metadata.models import Account, Repository, Tag


@dataclass(frozen=True)
class RepositoryMarkerQuery:
    """SWR's v3 repository list: filters, and the id after which a page starts (0: the first)."""

    namespace: str | None
    name_contains: str | None
    category: str | None
    is_public: bool | None
    after_id: int
    limit: int


async def repositories_after(
    session: AsyncSession, principal: Principal, query: RepositoryMarkerQuery
) -> tuple[list[RepositoryListing], bool]:
    """A page of visible repositories in id order after `query.after_id`, and whether more follow."""
    organization_ids = await visible_organization_ids(session, principal, query.namespace)
    statement = repositories_where(organization_ids, query.namespace, query.name_contains, query.category)
    statement = statement.where(Repository.id > query.after_id)
    if query.is_public is not None:
        statement = statement.where(Repository.is_public.is_(query.is_public))
    rows = (await session.execute(statement.order_by(Repository.id).limit(query.limit + 1))).all()
    more = len(rows) > query.limit
    return await listings_of(session, [(r, o) for r, o in rows[: query.limit]]), more


async def tags_after(
    session: AsyncSession,
    principal: Principal,
    namespace: str,
    name: str,
    after: str | None,
    limit: int,
    by_update: bool,
    descending: bool,
    name_contains: str | None,
) -> tuple[list[TagView], bool, Account]:
    """SWR's v3 tag list: a page after the tag `after` in the order asked (by name, or by update
    time then name), whether more follow, and the repository's account."""
    visible, repository = await repository_for(session, principal, namespace, name, READ)
    account = await account_of(session, visible.organization.account_id)
    query = tag_query(repository.id)
    if name_contains:
        query = query.where(Tag.name.contains(name_contains, autoescape=True))
    keys = (Tag.updated_at, Tag.name) if by_update else (Tag.name,)
    if after is not None:
        last = await session.get(Tag, (repository.id, after))
        if last is not None:
            marker = (last.updated_at, last.name) if by_update else (last.name,)
            query = query.where(
                tuple_(*keys) < tuple_(*marker) if descending else tuple_(*keys) > tuple_(*marker)
            )
        else:  # the marker tag was deleted meanwhile: continue from where its name sorts
            query = query.where(Tag.name < after if descending else Tag.name > after)
    query = query.order_by(*(k.desc() if descending else k.asc() for k in keys))
    rows = (await session.execute(query.limit(limit + 1))).all()
    return [TagView(t, m) for t, m in rows[:limit]], len(rows) > limit, account
