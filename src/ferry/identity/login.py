"""Basic credentials at the registry token endpoint: a password, or SWR's long-term AK login."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.access_keys import authenticate_docker_login
from ferry.identity.service import Principal, authenticate_password


async def authenticate_basic(
    session: AsyncSession, region: str, username: str, password: str
) -> Principal | None:
    if "@" in username:
        return await authenticate_docker_login(session, region, username, password)
    return await authenticate_password(session, username, password)
