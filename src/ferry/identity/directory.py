"""What the administrator lists and removes from the command line: users, organizations and
grants of every account (the management API sees only the caller's; see organizations.py).

Refusals are IdentityError, whose message the CLI prints."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.service import IdentityError, Principal
from ferry.metadata.models import AccessKey, Account, Organization, Permission, Repository, User


@dataclass(frozen=True)
class UserEntry:
    user: User
    account: Account


@dataclass(frozen=True)
class OrganizationEntry:
    organization: Organization
    account: Account
    repositories: int


@dataclass(frozen=True)
class GrantEntry:
    organization: str
    user: User
    auth: int


async def list_users(session: AsyncSession) -> list[UserEntry]:
    rows = await session.execute(
        select(User, Account).join(Account, Account.id == User.account_id).order_by(Account.name, User.name)
    )
    return [UserEntry(user, account) for user, account in rows.all()]


async def require_user(session: AsyncSession, name: str) -> User:
    user = await session.scalar(select(User).where(User.name == name))
    if user is None:
        raise IdentityError(f"no user {name!r}")
    return user


async def delete_user(session: AsyncSession, name: str) -> None:
    """The user goes with its access keys and grants (the database cascades both)."""
    await session.delete(await require_user(session, name))


async def list_organizations(session: AsyncSession) -> list[OrganizationEntry]:
    count = (
        select(Repository.organization_id, func.count().label("n"))
        .group_by(Repository.organization_id)
        .subquery()
    )
    rows = await session.execute(
        select(Organization, Account, func.coalesce(count.c.n, 0))
        .join(Account, Account.id == Organization.account_id)
        .outerjoin(count, count.c.organization_id == Organization.id)
        .order_by(Organization.name)
    )
    return [OrganizationEntry(org, account, int(n)) for org, account, n in rows.all()]


async def require_organization(session: AsyncSession, name: str) -> Organization:
    org = await session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        raise IdentityError(f"no organization {name!r}")
    return org


def account_administrator(org: Organization) -> Principal:
    """Whoever holds the data directory acts as an administrator of the organization's account
    (the services check rights; from the command line every right is the operator's)."""
    return Principal(user_id=0, name="ferry-cli", account_id=org.account_id, is_admin=True)


async def list_grants(session: AsyncSession, organization: str | None) -> list[GrantEntry]:
    query = (
        select(Organization.name, User, Permission.auth)
        .join(Permission, Permission.organization_id == Organization.id)
        .join(User, User.id == Permission.user_id)
        .order_by(Organization.name, User.name)
    )
    if organization is not None:
        await require_organization(session, organization)
        query = query.where(Organization.name == organization)
    return [GrantEntry(org, user, auth) for org, user, auth in (await session.execute(query)).all()]


async def revoke(session: AsyncSession, username: str, organization: str) -> None:
    user = await require_user(session, username)
    org = await require_organization(session, organization)
    permission = await session.get(Permission, (org.id, user.id))
    if permission is None:
        raise IdentityError(f"user {username!r} holds no grant on organization {organization!r}")
    await session.delete(permission)


async def list_access_keys(session: AsyncSession, username: str | None) -> list[tuple[AccessKey, User]]:
    """Access keys (never their secrets) with their users: one user's, or everybody's."""
    query = select(AccessKey, User).join(User, User.id == AccessKey.user_id)
    if username is not None:
        await require_user(session, username)
        query = query.where(User.name == username)
    rows = await session.execute(query.order_by(User.name, AccessKey.created_at))
    return [(key, user) for key, user in rows.all()]
