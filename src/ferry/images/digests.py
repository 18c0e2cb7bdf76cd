from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from ferry.images.errors import DigestInvalid
from ferry.names import DIGEST_GRAMMAR_RE, is_digest


def require_digest(value: str) -> str:
    """A sha256 digest, else DIGEST_INVALID (never a 500)."""
    if is_digest(value):
        return value
    if DIGEST_GRAMMAR_RE.match(value) and not value.startswith("sha256:"):
        raise DigestInvalid(value, f"unsupported digest algorithm in {value!r}: use sha256")
    raise DigestInvalid(value, f"malformed digest {value!r}")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def hashed(chunks: AsyncIterable[bytes], hasher: Any) -> AsyncIterator[bytes]:
    """Passes chunks through while feeding them to the hasher."""
    async for chunk in chunks:
        hasher.update(chunk)
        yield chunk
