"""Which peer regions answer, and the moment a dead one answers again.

Before this, every job of a peer that went away backed off on its own: after a 60 s outage its
retries were 16-60 s apart, so 20 queued images arrived a median of 36 s after the peer was back.
Now the first job that finds the peer unreachable marks it down, and one probe per process
(`GET /v2/`, every PROBE_SECONDS) asks whether it answers again. When it does, every waiting job
of that peer whose last attempt found it unreachable is made due at once (one UPDATE, so the
other processes' polls see it too) and this process's workers wake.

Jobs keep their own backoff while the peer is down, so a peer that never comes back still ends
its jobs at the retry deadline (FERRY_SYNC_RETRY_SECONDS) with a final status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from ferry.observability import metrics
from ferry.sync.peer_client import PeerClient

log = logging.getLogger("ferry.sync")

PROBE_SECONDS = 0.5
PROBE_TIMEOUT_SECONDS = 2.0

# Makes the peer's waiting jobs due now; returns how many.
Resume = Callable[[str], Awaitable[int]]


class PeerHealth:
    def __init__(self, clients: dict[str, PeerClient], resume: Resume, wake: Callable[[], None]) -> None:
        self.clients = clients
        self.resume = resume
        self.wake = wake
        self._probes: dict[str, asyncio.Task[None]] = {}
        for region in clients:
            metrics.SYNC_PEER_UP.labels(region).set(1)

    def is_down(self, region: str) -> bool:
        probe = self._probes.get(region)
        return probe is not None and not probe.done()

    def unreachable(self, region: str) -> None:
        """A job found `region` unreachable: mark it down and probe it, once per process."""
        if region not in self.clients or self.is_down(region):
            return
        log.warning("region %s unreachable; probing it every %.1f s", region, PROBE_SECONDS)
        metrics.SYNC_PEER_UP.labels(region).set(0)
        self._probes[region] = asyncio.create_task(self._probe(region))

    async def _probe(self, region: str) -> None:
        down_since = time.monotonic()
        client = self.clients[region]
        # Polling is the point: nothing but asking tells us the peer is back.
        while not await client.answers(PROBE_TIMEOUT_SECONDS):  # noqa: ASYNC110
            await asyncio.sleep(PROBE_SECONDS)
        metrics.SYNC_PEER_UP.labels(region).set(1)
        resumed = 0
        for _ in range(3):  # the database may be busy a moment; the jobs' backoff is the fallback
            try:
                resumed = await self.resume(region)
                break
            except Exception:
                log.exception("resuming the jobs of region %s failed", region)
                await asyncio.sleep(PROBE_SECONDS)
        log.info(
            "region %s answers again after %.1f s; %d waiting jobs resumed",
            region,
            time.monotonic() - down_since,
            resumed,
        )
        self.wake()

    async def stop(self) -> None:
        probes = list(self._probes.values())
        for probe in probes:
            probe.cancel()
        for probe in probes:
            with contextlib.suppress(asyncio.CancelledError):
                await probe
