"""How many jobs a process runs at once to one peer: its cap (Peer.max_jobs, else every slot),
lowered when the peer pushes back and raised again as it keeps up (AIMD, as TCP does).

A throttle (429 or 503 with Retry-After, or RateLimit-Remaining: 0) halves the limit, at most
once per DECREASE_SECONDS (the answers to requests already in flight say the same thing once);
each job that succeeds adds 1/limit, so the limit grows by about one per round of jobs. Only
that peer's jobs slow down: the worker asks each peer's limit before it claims a job for it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ferry.observability import metrics

DECREASE_SECONDS = 1.0


class PeerConcurrency:
    def __init__(self, region: str, cap: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.region = region
        self.cap = max(1, cap)
        self.limit = float(self.cap)
        self._clock = clock
        self._last_decrease = -math.inf
        self._show()

    def allowed(self) -> int:
        """Jobs to the peer this process may run at once now (at least one)."""
        return max(1, int(self.limit))

    def throttled(self) -> None:
        now = self._clock()
        if now - self._last_decrease < DECREASE_SECONDS:
            return
        self._last_decrease = now
        self.limit = max(1.0, self.limit / 2)
        self._show()

    def succeeded(self) -> None:
        if self.limit < self.cap:
            self.limit = min(float(self.cap), self.limit + 1 / self.limit)
            self._show()

    def _show(self) -> None:
        metrics.SYNC_PEER_CONCURRENCY.labels(self.region).set(self.allowed())
