"""Pacing an audit's requests to a peer, so that auditing 10,000 tags leaves room for live sync.

A token bucket per peer region, shared by every audit of this process (the API's and the
reconciler's): at most `rate` requests a second on average, with a burst of one second's worth.
Sync jobs are not paced: they are what the pacing protects.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """`acquire()` returns once a token is free; tokens refill at `rate` a second up to `burst`."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._tokens = self.burst
        self._at = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    async def acquire(self) -> None:
        # One waiter at a time: waiters are served in order, and none is starved by a burst.
        async with self._lock:
            self._refill()
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1


# One bucket per (peer, rate) for the whole process: the API's audits and the reconciler's share
# the peer's budget instead of each taking all of it.
_buckets: dict[tuple[str, float], TokenBucket] = {}


def bucket_for(peer_id: str, rate: float) -> TokenBucket:
    key = (peer_id, rate)
    if key not in _buckets:
        _buckets[key] = TokenBucket(rate)
    return _buckets[key]
