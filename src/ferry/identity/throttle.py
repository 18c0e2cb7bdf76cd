"""Slows repeated failed logins without letting anyone lock a real user out for long.

One policy for every credential check: passwords at the token endpoint and at IAM, SWR's
long-term docker login and AK/SK signatures. An identity is a user name or an access key.

- One identity from one address: five failures in a row are free; each further one makes that
  pair wait twice as long as the last (1 s, 2 s, 4 s … at most 5 minutes). A success resets it.
- One identity from everywhere (a distributed guess): after 20 failures, each within 15 minutes
  of the last (a success does not reset this count), addresses that have not logged in as that
  identity in the last day wait too (1 s, 2 s … at most a
  minute). Addresses it did log in from are never held back, so an attacker who knows a user
  name or an access key cannot keep its owner out; a new address waits a minute at most.
- One address for many identities (spraying names or keys): an address may fail for 30
  different identities; after that each new one waits, one more every 2 s.

Where an identity has logged in from an address in the last day, only that pair's own failures
hold it back there: neither a distributed guess nor spraying from a shared address (a NAT, a
CI farm) locks its owner out.

An attempt that must wait is refused without checking the credential, so guessing costs the
server nothing. The state lives in this process only (a few bytes per address and identity,
bounded): with N API processes an attacker gets N times the rate, still bounded.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

PAIR_FREE_FAILURES = 5
PAIR_MAX_WAIT = 300.0
IDENTITY_FREE_FAILURES = 20
IDENTITY_MAX_WAIT = 60.0
ADDRESS_BUDGET = 30
ADDRESS_REFILL_SECONDS = 2.0
IDENTITY_STREAK_GAP = 15 * 60.0
KNOWN_FOR = 24 * 3600.0
MAX_ENTRIES = 100_000

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class LoginThrottled(Exception):
    """Too many failed logins: try again in `retry_after` seconds."""

    def __init__(self, wait: float) -> None:
        self.retry_after = max(1, math.ceil(wait))
        super().__init__(f"too many failed logins from this address; try again in {self.retry_after} s")


@dataclass
class _Streak:
    failures: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0


@dataclass
class _Budget:
    tokens: float
    updated: float


class _Bounded(OrderedDict[K, V]):
    """A dict that forgets its least recently used entries past MAX_ENTRIES."""

    def touch(self, key: K, make: Callable[[], V]) -> V:
        value = self.get(key)
        if value is None:
            value = self[key] = make()
            while len(self) > MAX_ENTRIES:
                self.popitem(last=False)
        self.move_to_end(key)
        return value


def _backoff(failures: int, free: int, ceiling: float) -> float:
    return 0.0 if failures < free else min(ceiling, 2.0 ** (failures - free))


class LoginThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._pairs: _Bounded[tuple[str, str], _Streak] = _Bounded()
        self._identities: _Bounded[str, _Streak] = _Bounded()
        self._addresses: _Bounded[str, _Budget] = _Bounded()
        self._known: _Bounded[tuple[str, str], float] = _Bounded()

    def wait(self, identity: str, address: str) -> float:
        """Seconds before this identity may try from this address again; 0 means now."""
        now = self.clock()
        waits = [0.0]
        pair = self._pairs.get((identity, address))
        if pair:
            waits.append(pair.blocked_until - now)
        if self._known.get((identity, address), -KNOWN_FOR) > now - KNOWN_FOR:
            return max(waits)
        if streak := self._identities.get(identity):
            waits.append(streak.blocked_until - now)
        budget = self._addresses.get(address)
        if budget and not pair and self._tokens(budget, now) < 1:
            waits.append((1 - self._tokens(budget, now)) * ADDRESS_REFILL_SECONDS)
        return max(waits)

    def check(self, identity: str, address: str) -> None:
        """Raises LoginThrottled when this attempt has to wait."""
        wait = self.wait(identity, address)
        if wait > 0:
            raise LoginThrottled(wait)

    async def attempt(
        self, identity: str, address: str, login: Callable[[], Awaitable[T | None]]
    ) -> T | None:
        """Runs the credential check `login` (None: refused) unless the attempt has to wait."""
        self.check(identity, address)
        result = await login()
        if result is None:
            self.failed(identity, address)
        else:
            self.succeeded(identity, address)
        return result

    def failed(self, identity: str, address: str) -> None:
        now = self.clock()
        pair = self._pairs.touch((identity, address), _Streak)
        if pair.failures == 0:  # a new identity failing from this address
            budget = self._addresses.touch(address, lambda: _Budget(ADDRESS_BUDGET, now))
            budget.tokens = self._tokens(budget, now) - 1
            budget.updated = now
        pair.failures += 1
        pair.blocked_until = now + _backoff(pair.failures, PAIR_FREE_FAILURES, PAIR_MAX_WAIT)
        streak = self._identities.touch(identity, _Streak)
        if now - streak.last_failure > IDENTITY_STREAK_GAP:
            streak.failures = 0
        streak.failures += 1
        streak.last_failure = now
        streak.blocked_until = now + _backoff(streak.failures, IDENTITY_FREE_FAILURES, IDENTITY_MAX_WAIT)

    def succeeded(self, identity: str, address: str) -> None:
        self._pairs.pop((identity, address), None)
        self._known.touch((identity, address), self.clock)
        self._known[(identity, address)] = self.clock()  # refreshed on every success

    @staticmethod
    def _tokens(budget: _Budget, now: float) -> float:
        return min(ADDRESS_BUDGET, budget.tokens + (now - budget.updated) / ADDRESS_REFILL_SECONDS)


def user_identity(name: str) -> str:
    return f"user:{name}"


def key_identity(access_key: str) -> str:
    """Signatures and SWR's docker login (`<region>@<AK>`) with one key share one identity."""
    return f"ak:{access_key}"
