"""Organizations as the management API sees them: visibility, creation within the account's
quota, deletion and permissions, each checked against what the caller may do.

Refusals are identity.errors; `identity.service.create_organization` is the unconditional
creation the CLI and bootstrap use."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity import service
from ferry.identity.caller import EDIT, MANAGE, READ
from ferry.identity.errors import (
    OrganizationExists,
    OrganizationNameInvalid,
    OrganizationNotEmpty,
    OrganizationQuotaReached,
    OrganizationUnknown,
    PermissionMissing,
    UserUnknown,
)
from ferry.identity.service import Principal, organization_auth
from ferry.metadata.models import Account, Organization, Permission, Repository, User
from ferry.names import is_new_organization_name
from ferry.parsing import whole_number


@dataclass(frozen=True)
class VisibleOrganization:
    organization: Organization
    auth: int


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
    """Every organization the principal has a right on, with that right, in one statement (the
    right comes with the row, not from a lookup per organization)."""
    if principal.is_admin:
        # An account's administrator manages all of its organizations (identity.service.organization_auth).
        own = select(Organization).where(Organization.account_id == principal.account_id)
        return [
            VisibleOrganization(org, MANAGE) for org in await session.scalars(own.order_by(Organization.name))
        ]
    granted = (
        select(Organization, Permission.auth)
        .join(Permission, Permission.organization_id == Organization.id)
        .where(Permission.user_id == principal.user_id)
        .order_by(Organization.name)
    )
    return [VisibleOrganization(org, auth) for org, auth in (await session.execute(granted)).all()]


async def require_organization(
    session: AsyncSession, principal: Principal, name: str, needs: int
) -> VisibleOrganization:
    """The organization, when the caller holds at least `needs` (READ, EDIT or MANAGE) on it.

    OrganizationUnknown when the caller has no right there at all, PermissionMissing when it
    has a lesser one.
    """
    visible = await visible_organization(session, principal, name)
    if visible is None:
        raise OrganizationUnknown(name)
    if visible.auth < needs:
        word = {READ: "read", EDIT: "edit", MANAGE: "manage"}[needs]
        raise PermissionMissing(
            f"Insufficient permissions: this needs {word} permission on organization '{name}'"
        )
    return visible


async def list_organizations(
    session: AsyncSession, principal: Principal, named: str | None = None
) -> list[VisibleOrganization]:
    """The caller's organizations (only the one called `named`, when given)."""
    visible = await visible_organizations(session, principal)
    return [v for v in visible if named is None or v.organization.name == named]


async def count_account_organizations(session: AsyncSession, account_id: int) -> int:
    query = select(func.count()).select_from(Organization).where(Organization.account_id == account_id)
    return int(await session.scalar(query) or 0)


async def create_organization(
    session: AsyncSession, creator: Principal, name: str, quota: int
) -> Organization:
    """A new organization of the creator's account, which may hold at most `quota` of them."""
    if not is_new_organization_name(name):
        raise OrganizationNameInvalid(name)
    if await count_account_organizations(session, creator.account_id) >= quota:
        raise OrganizationQuotaReached(quota)
    if await find_organization(session, name):
        raise OrganizationExists(name)
    return await service.create_organization(session, creator, name)


async def delete_organization(session: AsyncSession, principal: Principal, name: str) -> None:
    """Only an empty organization goes: its repositories must be deleted first."""
    org = (await require_organization(session, principal, name, MANAGE)).organization
    repositories = await session.scalar(
        select(func.count()).select_from(Repository).where(Repository.organization_id == org.id)
    )
    if repositories:
        raise OrganizationNotEmpty(org.name)
    await session.delete(org)


async def organization_permissions(
    session: AsyncSession, principal: Principal, name: str
) -> tuple[VisibleOrganization, list[tuple[User, int]]]:
    """The organization with the caller's own right, and every user's granted right on it."""
    visible = await require_organization(session, principal, name, READ)
    rows = await session.execute(
        select(User, Permission.auth)
        .join(Permission, Permission.user_id == User.id)
        .where(Permission.organization_id == visible.organization.id)
        .order_by(User.name)
    )
    return visible, [(user, auth) for user, auth in rows.all()]


async def grant_permissions(
    session: AsyncSession, principal: Principal, name: str, grants: list[tuple[str, int]]
) -> None:
    """Sets each (user id, right) pair; a user must belong to the organization's account."""
    org = (await require_organization(session, principal, name, MANAGE)).organization
    for user_id, auth in grants:
        number = whole_number(user_id)
        if number is None or not await _set_permission(session, org, number, auth):
            raise UserUnknown(user_id, f"user {user_id!r} not found in this account")


async def revoke_permissions(
    session: AsyncSession, principal: Principal, name: str, user_ids: list[str]
) -> None:
    org = (await require_organization(session, principal, name, MANAGE)).organization
    for user_id in user_ids:
        number = whole_number(user_id)
        existing = await session.get(Permission, (org.id, number)) if number is not None else None
        if existing is None:
            raise UserUnknown(user_id, f"user {user_id!r} has no permission here")
        await session.delete(existing)


async def _set_permission(session: AsyncSession, org: Organization, user_id: int, auth: int) -> bool:
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


async def account_of(session: AsyncSession, account_id: int) -> Account:
    account = await session.get(Account, account_id)
    assert account is not None
    return account
