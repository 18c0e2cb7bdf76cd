from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.images.errors import OrganizationMissing, RepositoryUnknown
from ferry.metadata.models import Organization, Repository, utcnow
from ferry.metadata.statements import insert_ignore
from ferry.names import ImageName


async def find_repository(session: AsyncSession, image: ImageName) -> Repository | None:
    return await session.scalar(
        select(Repository)
        .join(Organization, Organization.id == Repository.organization_id)
        .where(Organization.name == image.organization, Repository.name == image.repository)
    )


async def require_repository(session: AsyncSession, image: ImageName) -> Repository:
    repository = await find_repository(session, image)
    if repository is None:
        raise RepositoryUnknown(str(image))
    return repository


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
