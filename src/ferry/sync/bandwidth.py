"""Bandwidth caps: the bytes per second a process's sync sends one peer.

Every streamed upload body to the peer passes `PeerBandwidth.paced`, which lets the bytes out
in pieces of PIECE bytes, each booked on one schedule for the peer (a virtual clock, GCRA-like:
a piece of n bytes moves the clock n / rate seconds). The bookings are made one at a time in
arrival order (an asyncio.Lock is first come, first served), and each stream holds at most one
piece in the queue, so concurrent copies to the peer take turns piece by piece: a small image
queued behind a big capped transfer waits for one piece (64 KiB: 3 ms at 20 MiB/s), not for the
big blob. The cap is honoured mid-blob, and a window of the day (Peer.bandwidth_windows, UTC)
changes it from the next piece on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import UTC, datetime

from ferry.config import Peer

PIECE = 64 * 1024
# Idle time does not save up: after a pause, at most this much may go out at once.
BURST_SECONDS = 0.05


def _minute_of_day(now: datetime) -> int:
    return now.hour * 60 + now.minute


class PeerBandwidth:
    """The cap of one peer in this process; `share` processes divide the peer's cap."""

    def __init__(
        self,
        peer: Peer,
        share: int = 1,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.peer = peer
        self.share = max(1, share)
        self._clock, self._wall = clock, wall
        self._lock = asyncio.Lock()
        self._free_at = 0.0  # the virtual clock: when the next byte may go out

    @property
    def capped(self) -> bool:
        return self.peer.bandwidth is not None or bool(self.peer.bandwidth_windows)

    def rate(self) -> float | None:
        """This process's bytes per second to the peer now; None: no cap now."""
        minute = _minute_of_day(self._wall())
        window = next((w for w in self.peer.bandwidth_windows if w.covers(minute)), None)
        cap = window.bandwidth if window is not None else self.peer.bandwidth
        return None if cap is None else cap / self.share

    async def take(self, count: int) -> None:
        """Waits until `count` more bytes may go to the peer."""
        rate = self.rate()
        if rate is None:
            return
        async with self._lock:
            now = self._clock()
            self._free_at = max(self._free_at, now - BURST_SECONDS) + count / rate
            delay = self._free_at - now
            if delay > 0:
                await asyncio.sleep(delay)

    async def paced(self, body: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """`body` again, no faster than the cap (as it is at each piece)."""
        async for chunk in body:
            if self.rate() is None:
                yield chunk
                continue
            view = memoryview(chunk)
            for start in range(0, len(view), PIECE):
                piece = view[start : start + PIECE]
                await self.take(len(piece))
                yield bytes(piece)
