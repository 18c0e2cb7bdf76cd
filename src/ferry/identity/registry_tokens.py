"""Docker registry bearer tokens: HS256 JWTs whose `access` claim lists granted actions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

ISSUER = "ferry"


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        """`repository:org/repo:pull,push`; the name may not contain ':' in OCI names."""
        parts = text.split(":")
        if len(parts) < 3:
            return None
        type_, actions = parts[0], parts[-1]
        name = ":".join(parts[1:-1])
        type_ = type_.split("(", 1)[0]
        return cls(type_, name, tuple(a for a in actions.split(",") if a))


# Verified tokens kept, each until it expires: a client sends the same token on every request
# of a push or pull, and checking its signature again each time was a tenth of a HEAD's cost.
VERIFIED_CACHE_SIZE = 4096


class RegistryTokens:
    def __init__(self, key: str, service: str, ttl: int) -> None:
        self.key = key
        self.service = service
        self.ttl = ttl
        self._verified: dict[str, tuple[float, dict[str, Any]]] = {}

    def issue(
        self,
        subject: str,
        access: list[dict[str, Any]],
        extra: dict[str, Any] | None = None,
        not_after: int | None = None,
    ) -> tuple[str, int, int]:
        """The token, when issued, and its lifetime: the TTL, or less when the credential it was
        issued for expires sooner (`not_after`, a temporary login's expiry)."""
        now = int(time.time())
        ttl = self.ttl if not_after is None else max(1, min(self.ttl, not_after - now))
        claims = (extra or {}) | {
            "iss": ISSUER,
            "sub": subject,
            "aud": self.service,
            "iat": now,
            "nbf": now - 5,
            "exp": now + ttl,
            "access": access,
        }
        return jwt.encode(claims, self.key, algorithm="HS256"), now, ttl

    def verify(self, token: str) -> dict[str, Any] | None:
        """The token's claims when this region signed it for this service and it has not
        expired; else None. The claims are shared between callers: read them, do not change them."""
        cached = self._verified.get(token)
        if cached is not None:
            if time.time() < cached[0]:
                return cached[1]
            del self._verified[token]
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.key, algorithms=["HS256"], audience=self.service, issuer=ISSUER
            )
        except jwt.PyJWTError:
            return None
        self._remember(token, claims)
        return claims

    def _remember(self, token: str, claims: dict[str, Any]) -> None:
        if not isinstance(claims.get("exp"), int | float):
            return  # never kept past an expiry it does not state (every token issued here has one)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            # Oldest first (dicts keep insertion order): a bounded cache, whatever the traffic.
            for stale in list(self._verified)[: VERIFIED_CACHE_SIZE // 4]:
                del self._verified[stale]
        self._verified[token] = (float(claims["exp"]), claims)
