"""Basic credentials at the registry token endpoint: a password, or SWR's long-term AK login."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.access_keys import authenticate_docker_login
from ferry.identity.service import Principal, authenticate_password
from ferry.identity.throttle import key_identity, user_identity


def basic_identity(username: str) -> str:
    """What a Basic login is throttled as: the access key of `<region>@<AK>`, else the user."""
    _region, at, access_key = username.partition("@")
    return key_identity(access_key) if at else user_identity(username)


async def authenticate_basic(
    session: AsyncSession, region: str, username: str, password: str
) -> Principal | None:
    if "@" in username:
        return await authenticate_docker_login(session, region, username, password)
    return await authenticate_password(session, username, password)
