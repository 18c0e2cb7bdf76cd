"""Accounts, users, organizations and permissions, and what a user may do to an image name."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import ACTIONS_BY_AUTH, MANAGE, Caller, Operator
from ferry.identity.passwords import hash_password, verify_password
from ferry.metadata.models import Account, Organization, Permission, Repository, User, utcnow
from ferry.names import ImageName, invalid_organization, is_new_organization_name


class IdentityError(Exception):
    """A refused administrative change, with a message for a person."""


@dataclass(frozen=True)
class Principal:
    """A user as the database knows it (management API, IAM, sync): see identity.caller."""

    user_id: int
    name: str
    account_id: int
    is_admin: bool

    @property
    def operator(self) -> Operator:
        return Operator(str(self.user_id), self.name)


def _principal(user: User) -> Principal:
    return Principal(user.id, user.name, user.account_id, user.is_admin)


async def authenticate_password(session: AsyncSession, username: str, password: str) -> Principal | None:
    user = await session.scalar(select(User).where(User.name == username))
    if user is None or not await verify_password(user.password_hash, password):
        return None
    return _principal(user)


async def principal_by_id(session: AsyncSession, user_id: int) -> Principal | None:
    user = await session.get(User, user_id)
    return _principal(user) if user else None


async def ensure_account(session: AsyncSession, name: str) -> Account:
    account = await session.scalar(select(Account).where(Account.name == name))
    if account is None:
        account = Account(name=name)
        session.add(account)
        await session.flush()
    return account


async def create_user(
    session: AsyncSession, account_name: str, name: str, password: str, is_admin: bool = False
) -> User:
    if not name or len(name) > 64 or "@" in name or ":" in name:
        raise IdentityError(f"invalid user name {name!r}: 1-64 characters, no '@' or ':'")
    if len(password) < 8:
        raise IdentityError("password too short: at least 8 characters")
    if await session.scalar(select(User).where(User.name == name)):
        raise IdentityError(f"user {name!r} already exists")
    account = await ensure_account(session, account_name)
    user = User(account_id=account.id, name=name, password_hash=hash_password(password), is_admin=is_admin)
    session.add(user)
    await session.flush()
    return user


async def create_organization(session: AsyncSession, creator: Principal, name: str) -> Organization:
    if not is_new_organization_name(name):
        raise IdentityError(invalid_organization(name))
    if await session.scalar(select(Organization).where(Organization.name == name)):
        raise IdentityError(f"organization {name!r} already exists")
    organization = Organization(account_id=creator.account_id, name=name, creator_name=creator.name)
    session.add(organization)
    await session.flush()
    if not creator.is_admin:
        session.add(Permission(organization_id=organization.id, user_id=creator.user_id, auth=MANAGE))
    return organization


async def grant(session: AsyncSession, username: str, organization: str, auth: int) -> None:
    if auth not in ACTIONS_BY_AUTH:
        raise IdentityError("auth must be 1 (read), 3 (edit) or 7 (manage)")
    user = await session.scalar(select(User).where(User.name == username))
    if user is None:
        raise IdentityError(f"no user {username!r}")
    org = await session.scalar(select(Organization).where(Organization.name == organization))
    if org is None:
        raise IdentityError(f"no organization {organization!r}")
    existing = await session.get(Permission, (org.id, user.id))
    if existing:
        existing.auth = auth
    else:
        session.add(Permission(organization_id=org.id, user_id=user.id, auth=auth))


async def organization_auth(
    session: AsyncSession, principal: Principal | None, organization: Organization
) -> int:
    """0 when the principal has no right on the organization."""
    if principal is None:
        return 0
    if principal.is_admin and principal.account_id == organization.account_id:
        return MANAGE
    permission = await session.get(Permission, (organization.id, principal.user_id))
    return permission.auth if permission else 0


def actions_on(
    principal: Principal | None, organization_account_id: int, permission: int | None, is_public: bool
) -> frozenset[str]:
    """The one rule for what a principal may do to an image in an existing organization: its
    account's administrator manages it, a user has what its permission grants, and anybody may
    pull from a public repository."""
    auth = 0
    if principal is not None:
        is_owner = principal.is_admin and principal.account_id == organization_account_id
        auth = MANAGE if is_owner else permission or 0
    actions = set(ACTIONS_BY_AUTH.get(auth, ()))
    if is_public:
        actions.add("pull")
    return frozenset(actions)


async def allowed_actions(
    session: AsyncSession, principal: Principal | None, image: ImageName
) -> frozenset[str]:
    """What the principal may do to the image name: a subset of pull, push, delete."""
    org = await session.scalar(select(Organization).where(Organization.name == image.organization))
    if org is None:
        # Nothing, for anybody: a push does not create an organization, and a right granted now
        # would carry over into an organization another account creates under this name later.
        return frozenset()
    permission = await session.get(Permission, (org.id, principal.user_id)) if principal else None
    is_public = await session.scalar(
        select(Repository.is_public).where(
            Repository.organization_id == org.id, Repository.name == image.repository
        )
    )
    return actions_on(principal, org.account_id, permission.auth if permission else None, bool(is_public))


async def acting_principal(session: AsyncSession, account_name: str, user_name: str) -> Principal | None:
    """The user a peer region's sync acts for, matched by account and user name.

    Identities are matched across regions by name, as Huawei Cloud's IAM identities are global:
    a rule's owner is this region's user of the same name in the account of the same name.
    """
    user = await session.scalar(
        select(User)
        .join(Account, Account.id == User.account_id)
        .where(User.name == user_name, Account.name == account_name)
    )
    return _principal(user) if user else None


async def allowed_actions_acting(
    session: AsyncSession, principal: Principal | None, actor: Principal | None, image: ImageName
) -> frozenset[str]:
    """What a credential acting for `actor` may do: only what both may (nothing without actor)."""
    own = await allowed_actions(session, principal, image)
    return own & await allowed_actions(session, actor, image) if own else own


async def readable_organization_ids(session: AsyncSession, caller: Caller) -> list[int] | None:
    """Organizations whose every repository the caller may read; None means all of an account."""
    ids = await _readable_organization_ids(session, caller)
    if caller.acting is None or not ids:
        return ids
    theirs = set(await _readable_organization_ids(session, caller.acting) or [])
    return [i for i in ids if i in theirs]


async def _readable_organization_ids(session: AsyncSession, caller: Caller) -> list[int] | None:
    if caller.user_id is None:
        return []
    rows = await session.scalars(
        select(Permission.organization_id).where(Permission.user_id == caller.user_id)
    )
    ids = list(rows)
    if caller.is_admin and caller.account_id is not None:
        ids += list(
            await session.scalars(select(Organization.id).where(Organization.account_id == caller.account_id))
        )
    return ids


async def change_password(session: AsyncSession, username: str, password: str) -> None:
    if len(password) < 8:
        raise IdentityError("password too short: at least 8 characters")
    user = await session.scalar(select(User).where(User.name == username))
    if user is None:
        raise IdentityError(f"no user {username!r}")
    user.password_hash = hash_password(password)
    user.credentials_changed_at = utcnow()
