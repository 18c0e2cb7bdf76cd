"""Permanent access keys (AK/SK) and SWR's long-term docker login made from them.

Repeated bad signatures are slowed by identity.throttle, per key and client address, so that
nobody who merely knows an AK can lock its owner out.
"""

from __future__ import annotations

import hmac
import secrets
import string

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.service import IdentityError, Principal, principal_by_id
from ferry.identity.signing import docker_login_password
from ferry.identity.temporary_login import expiry_of, verify_temporary
from ferry.metadata.models import AccessKey, User, utcnow

_AK_ALPHABET = string.ascii_uppercase + string.digits


async def create_access_key(session: AsyncSession, username: str) -> tuple[str, str]:
    user = await session.scalar(select(User).where(User.name == username))
    if user is None:
        raise IdentityError(f"no user {username!r}")
    access_key = "".join(secrets.choice(_AK_ALPHABET) for _ in range(20))
    secret_key = secrets.token_urlsafe(30)[:40]
    session.add(AccessKey(access_key=access_key, user_id=user.id, secret_key=secret_key))
    user.credentials_changed_at = utcnow()
    return access_key, secret_key


async def add_access_key(session: AsyncSession, username: str, access_key: str, secret_key: str) -> None:
    """Registers a given pair (the same AK/SK in every region of `ferry dev`)."""
    user = await session.scalar(select(User).where(User.name == username))
    if user is None:
        raise IdentityError(f"no user {username!r}")
    if await session.get(AccessKey, access_key) is None:
        session.add(AccessKey(access_key=access_key, user_id=user.id, secret_key=secret_key))


async def set_access_key_enabled(session: AsyncSession, access_key: str, enabled: bool) -> None:
    key = await _require(session, access_key)
    key.enabled = enabled
    await _touch_user(session, key.user_id)


async def delete_access_key(session: AsyncSession, access_key: str) -> None:
    key = await _require(session, access_key)
    await _touch_user(session, key.user_id)
    await session.delete(key)


async def list_access_keys(session: AsyncSession, username: str) -> list[AccessKey]:
    return list(
        await session.scalars(
            select(AccessKey).join(User, User.id == AccessKey.user_id).where(User.name == username)
        )
    )


async def get_key(session: AsyncSession, access_key: str) -> AccessKey | None:
    return await session.get(AccessKey, access_key)


async def usable_key(session: AsyncSession, access_key: str) -> AccessKey | None:
    """The key when it exists and is enabled."""
    key = await session.get(AccessKey, access_key)
    return key if key is not None and key.enabled else None


async def authenticate_docker_login(
    session: AsyncSession, region: str, username: str, password: str
) -> Principal | None:
    """SWR's long-term login: user `<region>@<AK>`, password hex HMAC-SHA256(SK, AK); or its
    temporary login (identity/temporary_login.py), the same user and a password with an expiry."""
    login_region, _, access_key = username.partition("@")
    if login_region != region:
        return None
    key = await usable_key(session, access_key)
    if key is None:
        return None
    if expiry_of(password) is not None:
        if not verify_temporary(key.access_key, key.secret_key, password):
            return None
    elif not hmac.compare_digest(docker_login_password(key.access_key, key.secret_key), password.lower()):
        return None
    return await principal_by_id(session, key.user_id)


async def _require(session: AsyncSession, access_key: str) -> AccessKey:
    key = await session.get(AccessKey, access_key)
    if key is None:
        raise IdentityError(f"no access key {access_key!r}")
    return key


async def _touch_user(session: AsyncSession, user_id: int) -> None:
    user = await session.get(User, user_id)
    if user is not None:
        user.credentials_changed_at = utcnow()
