"""Finding repositories, creating them on push, and the changes the management API makes to
repositories and their tags (each checked against the caller's right on the organization)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import EDIT
from ferry.identity.organizations import VisibleOrganization, require_organization
from ferry.identity.service import Principal
from ferry.images.errors import (
    OrganizationMissing,
    RepositoryExists,
    RepositoryUnknown,
    TagExists,
    TagUnknown,
)
from ferry.images.events import TagEvents
from ferry.images.tags import TagMove, move_tag, remove_tag
from ferry.metadata.models import Organization, Repository, Tag, utcnow
from ferry.metadata.statements import insert_ignore
from ferry.names import ImageName


async def find_repository(session: AsyncSession, image: ImageName) -> Repository | None:
    # The organization comes along in the same row, so that what a push tells its listeners
    # (sync's jobs, webhooks) finds it in the session instead of asking the database again.
    row = (
        await session.execute(
            select(Repository, Organization)
            .join(Organization, Organization.id == Repository.organization_id)
            .where(Organization.name == image.organization, Repository.name == image.repository)
        )
    ).first()
    return row[0] if row is not None else None


async def require_repository(session: AsyncSession, image: ImageName) -> Repository:
    repository = await find_repository(session, image)
    if repository is None:
        raise RepositoryUnknown(str(image))
    return repository


async def repository_in(session: AsyncSession, organization_id: int, name: str) -> Repository | None:
    return await session.scalar(
        select(Repository).where(Repository.organization_id == organization_id, Repository.name == name)
    )


async def repository_for(
    session: AsyncSession, principal: Principal, namespace: str, name: str, needs: int
) -> tuple[VisibleOrganization, Repository]:
    """The repository, when the caller holds at least `needs` on its organization."""
    visible = await require_organization(session, principal, namespace, needs)
    repository = await repository_in(session, visible.organization.id, name)
    if repository is None:
        raise RepositoryUnknown(f"{namespace}/{name}")
    return visible, repository


async def repository_for_push(session: AsyncSession, image: ImageName, creator: str) -> Repository:
    """The repository a push lands in, created on first push inside an existing organization."""
    repository = await find_repository(session, image)
    if repository is not None:
        return repository
    org = await session.scalar(select(Organization).where(Organization.name == image.organization))
    if org is None:
        raise OrganizationMissing(image.organization, str(image))
    await insert_ignore(
        session,
        Repository,
        organization_id=org.id,
        name=image.repository,
        creator_name=creator,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    repository = await find_repository(session, image)
    assert repository is not None
    return repository


@dataclass(frozen=True)
class RepositorySettings:
    """What the management API sets on a repository; None leaves a field as it is (on update)."""

    is_public: bool
    category: str | None = None
    description: str | None = None


async def create_repository(
    session: AsyncSession, creator: Principal, namespace: str, name: str, settings: RepositorySettings
) -> Repository:
    visible = await require_organization(session, creator, namespace, EDIT)
    if await repository_in(session, visible.organization.id, name):
        raise RepositoryExists(f"{namespace}/{name}")
    repository = Repository(
        organization_id=visible.organization.id,
        name=name,
        is_public=settings.is_public,
        category=settings.category or "other",
        description=settings.description or "",
        creator_name=creator.name,
    )
    session.add(repository)
    return repository


async def update_repository(
    session: AsyncSession, principal: Principal, namespace: str, name: str, settings: RepositorySettings
) -> Repository:
    _, repository = await repository_for(session, principal, namespace, name, EDIT)
    repository.is_public = settings.is_public
    if settings.category is not None:
        repository.category = settings.category
    if settings.description is not None:
        repository.description = settings.description
    repository.updated_at = utcnow()
    return repository


async def delete_repository(session: AsyncSession, principal: Principal, namespace: str, name: str) -> None:
    """The repository and, by cascade, its manifests, tags and blob links."""
    _, repository = await repository_for(session, principal, namespace, name, EDIT)
    await session.delete(repository)


async def delete_tag(
    session: AsyncSession, events: TagEvents, principal: Principal, namespace: str, name: str, tag: str
) -> None:
    _, repository = await repository_for(session, principal, namespace, name, EDIT)
    if not await remove_tag(session, events, repository, tag, principal.operator):
        raise TagUnknown(tag)


async def retag(
    session: AsyncSession,
    events: TagEvents,
    principal: Principal,
    namespace: str,
    name: str,
    source: str,
    destination: str,
    override: bool,
) -> TagMove:
    """Points `destination` at the manifest `source` names, through move_tag (which tells
    `events`, so a sync rule copies the new tag in the same transaction)."""
    _, repository = await repository_for(session, principal, namespace, name, EDIT)
    if not override and await session.get(Tag, (repository.id, destination)) is not None:
        raise TagExists(destination)
    digest = await session.scalar(
        select(Tag.digest).where(Tag.repository_id == repository.id, Tag.name == source)
    )
    if digest is None:
        raise TagUnknown(source)
    return await move_tag(session, events, repository, destination, digest, principal.operator)


async def repositories_in(
    session: AsyncSession, organization: str | None = None
) -> list[tuple[Organization, Repository]]:
    """Every repository (of one organization, when named), by organization and name: what the
    administrator's `ferry repo list` shows across accounts."""
    query = select(Organization, Repository).join(Repository, Repository.organization_id == Organization.id)
    if organization is not None:
        query = query.where(Organization.name == organization)
    rows = await session.execute(query.order_by(Organization.name, Repository.name))
    return [(org, repository) for org, repository in rows.all()]
