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


class RegistryTokens:
    def __init__(self, key: str, service: str, ttl: int) -> None:
        self.key = key
        self.service = service
        self.ttl = ttl

    def issue(
        self, subject: str, access: list[dict[str, Any]], extra: dict[str, Any] | None = None
    ) -> tuple[str, int, int]:
        now = int(time.time())
        claims = (extra or {}) | {
            "iss": ISSUER,
            "sub": subject,
            "aud": self.service,
            "iat": now,
            "nbf": now - 5,
            "exp": now + self.ttl,
            "access": access,
        }
        return jwt.encode(claims, self.key, algorithm="HS256"), now, self.ttl

    def verify(self, token: str) -> dict[str, Any] | None:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.key, algorithms=["HS256"], audience=self.service, issuer=ISSUER
            )
        except jwt.PyJWTError:
            return None
        return claims
