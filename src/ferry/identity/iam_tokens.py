"""IAM tokens for `X-Auth-Token`: signed, valid 24 hours, void once the user's credentials change."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.service import Principal, principal_by_id
from ferry.metadata.models import User

TOKEN_TTL = 24 * 3600
_TYPE = "ferry-iam"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    issued_at: float
    expires_at: float


class TokenError(Exception):
    pass


class IamTokens:
    def __init__(self, key: str) -> None:
        self.key = key

    def issue(self, principal: Principal, scope: dict[str, str]) -> IssuedToken:
        now = time.time()
        claims = {
            "typ": _TYPE,
            "uid": principal.user_id,
            "iat_ms": int(now * 1000),
            "exp": int(now) + TOKEN_TTL,
            "scope": scope,
        }
        return IssuedToken(jwt.encode(claims, self.key, algorithm="HS256"), now, now + TOKEN_TTL)

    async def verify(self, session: AsyncSession, token: str) -> Principal:
        try:
            claims = jwt.decode(token, self.key, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            raise TokenError("token expires") from None
        except jwt.PyJWTError:
            raise TokenError("decrypt token fail") from None
        if claims.get("typ") != _TYPE:
            raise TokenError("decrypt token fail")
        user = await session.get(User, claims.get("uid"))
        if user is None:
            raise TokenError("token expires")
        changed = user.credentials_changed_at
        if changed.timestamp() * 1000 > claims["iat_ms"]:
            raise TokenError("token expires: credentials changed since it was issued")
        principal = await principal_by_id(session, user.id)
        assert principal is not None
        return principal
