"""Password hashing with argon2id, off the event loop (a hash costs tens of milliseconds).

A check costs tens of CPU-milliseconds and 19 MiB here, and registry clients (docker, skopeo) ask
the token endpoint with Basic credentials on every command. So:
- a successful check is remembered for a few minutes, keyed by an HMAC (with a per-process random
  key) of the stored hash and the password: a new password means a new hash, hence a miss, and the
  cache holds neither the password nor anything an attacker could test guesses against offline;
- at most one check per core runs at once, so a burst of logins neither oversubscribes the CPU
  nor multiplies the memory;
- identical checks in flight at once share one computation: 8 parallel skopeo commands that
  each log in with the same credentials cost one argon2 run, not 8 (about 60 ms and 19 MiB each).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
import weakref
from collections import OrderedDict

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's argon2id profile (19 MiB, 2 passes, 1 lane) rather than the library's 64 MiB default:
# a login then fits beside a streaming upload in a small process. Hashes carry their parameters,
# so hashes made with other settings still verify.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_CACHE_KEY = secrets.token_bytes(32)
_CACHE_TTL = 300.0
_CACHE_MAX = 4096
_verified: OrderedDict[bytes, float] = OrderedDict()
_CONCURRENT_CHECKS = max(1, (os.cpu_count() or 1) // _hasher.parallelism)
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()
_in_flight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bytes, asyncio.Future[bool]]] = (
    weakref.WeakKeyDictionary()
)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _cache_key(password_hash: str, password: str) -> bytes:
    message = password_hash.encode() + b"\0" + password.encode()
    return hmac.new(_CACHE_KEY, message, hashlib.sha256).digest()


def _slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is None:
        slot = _slots[loop] = asyncio.Semaphore(_CONCURRENT_CHECKS)
    return slot


async def verify_password(password_hash: str, password: str) -> bool:
    key = _cache_key(password_hash, password)
    if _remembered(key):
        return True
    running = _in_flight.setdefault(asyncio.get_running_loop(), {})
    check = running.get(key)
    if check is None:
        check = running[key] = asyncio.ensure_future(_check(key, password_hash, password))
        check.add_done_callback(lambda _: running.pop(key, None))
    # Shielded: a caller that goes away (a client hung up) does not cancel the others' check.
    return await asyncio.shield(check)


def _remembered(key: bytes) -> bool:
    expires = _verified.get(key)
    return expires is not None and expires > time.monotonic()


async def _check(key: bytes, password_hash: str, password: str) -> bool:
    async with _slot():
        ok = await asyncio.to_thread(_verify, password_hash, password)
    if ok:
        _verified[key] = time.monotonic() + _CACHE_TTL
        _verified.move_to_end(key)
        while len(_verified) > _CACHE_MAX:
            _verified.popitem(last=False)
    return ok
