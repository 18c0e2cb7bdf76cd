"""SWR's temporary docker login (`create_secret`, `create_authorization_token`): a login for
`docker|podman|skopeo login` that works until its expiry and then stops.

The credential is the long-term one's shape with an expiry in it: user `<region>@<AK>`,
password `<expire-at>.<hex HMAC-SHA256(SK, "<AK>:<expire-at>")>` (expire-at in Unix seconds). So
it needs no storage, and it never outlives its key: a disabled or deleted key, or a new SK,
refuses it at once (identity.access_keys.authenticate_docker_login verifies it). Registry tokens
issued for it expire with it (registry/auth.py).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.errors import OrganizationError
from ferry.identity.service import Principal
from ferry.metadata.models import AccessKey

MIN_SECONDS = 15 * 60
MAX_SECONDS = 24 * 3600
DEFAULT_SECONDS = 24 * 3600


class TemporaryLoginRefused(OrganizationError):
    """A temporary login that cannot be made; the message says why."""


@dataclass(frozen=True)
class TemporaryLogin:
    username: str
    password: str
    expire_at: int  # Unix seconds


def temporary_password(access_key: str, secret_key: str, expire_at: int) -> str:
    mac = hmac.new(secret_key.encode(), f"{access_key}:{expire_at}".encode(), hashlib.sha256)
    return f"{expire_at}.{mac.hexdigest()}"


def expiry_of(password: str) -> int | None:
    """The expiry a temporary password states (not yet verified); None for any other password."""
    stated, dot, mac = password.partition(".")
    if not dot or not stated.isdigit() or len(mac) != 64:
        return None
    return int(stated)


def verify_temporary(access_key: str, secret_key: str, password: str, now: float | None = None) -> bool:
    expire_at = expiry_of(password)
    if expire_at is None or (now if now is not None else time.time()) >= expire_at:
        return False
    expected = temporary_password(access_key, secret_key, expire_at)
    return hmac.compare_digest(expected, password.lower())


async def create_temporary_login(
    session: AsyncSession,
    principal: Principal,
    region: str,
    seconds: int,
    signing_key: str | None,
) -> TemporaryLogin:
    """A login for the caller, bound to the access key it signed with (else its newest enabled
    key), valid for `seconds` (MIN_SECONDS to MAX_SECONDS)."""
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise TemporaryLoginRefused(
            f"duration_seconds must be {MIN_SECONDS} to {MAX_SECONDS} (15 minutes to 24 hours), not {seconds}"
        )
    query = select(AccessKey).where(AccessKey.user_id == principal.user_id, AccessKey.enabled.is_(True))
    if signing_key is not None:
        query = query.where(AccessKey.access_key == signing_key)
    key = await session.scalar(query.order_by(AccessKey.created_at.desc()).limit(1))
    if key is None:
        raise TemporaryLoginRefused(
            f"user {principal.name} has no enabled access key to bind a temporary login to; "
            "create one first (`ferry key create`)"
        )
    expire_at = int(time.time()) + seconds
    return TemporaryLogin(
        f"{region}@{key.access_key}", temporary_password(key.access_key, key.secret_key, expire_at), expire_at
    )
