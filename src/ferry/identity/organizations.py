"""Organizations as the management API sees them: visibility, deletion, permissions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.service import Principal, organization_auth
from ferry.metadata.models import Account, Organization, Permission, Repository, User


@dataclass(frozen=True)
class VisibleOrganization:
    organization: Organization
    auth: int


class OrganizationNotEmpty(Exception):
    pass


async def find_organization(session: AsyncSession, name: str) -> Organization | None:
    return await session.scalar(select(Organization).where(Organization.name == name))


async def visible_organization(
    session: AsyncSession, principal: Principal, name: str
) -> VisibleOrganization | None:
    """The organization and the caller's right on it; None when the caller has none."""
    org = await find_organization(session, name)
    if org is None:
        return None
    auth = await organization_auth(session, principal, org)
    return VisibleOrganization(org, auth) if auth else None


async def visible_organizations(session: AsyncSession, principal: Principal) -> list[VisibleOrganization]:
    query = select(Organization).order_by(Organization.name)
    if principal.is_admin:
        query = query.where(Organization.account_id == principal.account_id)
    else:
        query = query.join(Permission, Permission.organization_id == Organization.id).where(
            Permission.user_id == principal.user_id
        )
    result = []
    for org in await session.scalars(query):
        result.append(VisibleOrganization(org, await organization_auth(session, principal, org)))
    return result


async def count_account_organizations(session: AsyncSession, account_id: int) -> int:
    query = select(func.count()).select_from(Organization).where(Organization.account_id == account_id)
    return int(await session.scalar(query) or 0)


async def delete_organization(session: AsyncSession, org: Organization) -> None:
    repositories = await session.scalar(
        select(func.count()).select_from(Repository).where(Repository.organization_id == org.id)
    )
    if repositories:
        raise OrganizationNotEmpty(org.name)
    await session.delete(org)


async def permissions(session: AsyncSession, org: Organization) -> list[tuple[User, int]]:
    rows = await session.execute(
        select(User, Permission.auth)
        .join(Permission, Permission.user_id == User.id)
        .where(Permission.organization_id == org.id)
        .order_by(User.name)
    )
    return [(user, auth) for user, auth in rows.all()]


async def set_permission(session: AsyncSession, org: Organization, user_id: int, auth: int) -> bool:
    """False when no such user exists in the organization's account."""
    user = await session.get(User, user_id)
    if user is None or user.account_id != org.account_id:
        return False
    existing = await session.get(Permission, (org.id, user_id))
    if existing:
        existing.auth = auth
    else:
        session.add(Permission(organization_id=org.id, user_id=user_id, auth=auth))
    return True


async def revoke_permission(session: AsyncSession, org: Organization, user_id: int) -> bool:
    existing = await session.get(Permission, (org.id, user_id))
    if existing is None:
        return False
    await session.delete(existing)
    return True


async def account_of(session: AsyncSession, account_id: int) -> Account:
    account = await session.get(Account, account_id)
    assert account is not None
    return account
