"""Pacing an audit's requests to a peer, so that auditing 10,000 tags leaves room for live sync.

Two brakes. A token bucket per peer region, shared by every audit of this process (the API's and
the reconciler's): at most `rate` requests a second on average, with a burst of one second's
worth. And audits step aside while this process copies a live (not repair) sync job: a request
waits until no such job runs, up to `YIELD_SECONDS`, so a steady stream of pushes slows an audit
down without stopping it. The rate alone was not enough: bench/sync_audit.py measured live
push-to-visible at 1.6x its baseline during an audit at 100 requests a second, the cost being
CPU on both regions' event loops, not waiting for a worker. Sync jobs are not paced: they are
what the pacing protects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

# The longest an audit request waits for live sync to pause before it goes anyway.
YIELD_SECONDS = 2.0
# How often a waiting audit request looks again.
YIELD_POLL_SECONDS = 0.01


class LiveSync:
    """How many live sync jobs this process is copying now (a counter, not an asyncio object, so
    it belongs to no event loop)."""

    def __init__(self) -> None:
        self.running = 0

    @contextmanager
    def copying(self) -> Iterator[None]:
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1

    async def quiet(self, at_most: float = YIELD_SECONDS) -> None:
        """Returns once no live job is copying, or after `at_most` seconds."""
        deadline = time.monotonic() + at_most
        # Polling, not an asyncio.Event: the counter is process-wide and an Event would belong
        # to whichever event loop first waited on it.
        while self.running and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(YIELD_POLL_SECONDS)


LIVE = LiveSync()


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
        await LIVE.quiet()
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
