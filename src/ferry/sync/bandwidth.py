"""Bandwidth caps: the bytes per second a process's sync sends one peer, shared fairly between
the rules that send to it, and a rule's own cap.

Every streamed upload body to the peer passes `PeerBandwidth.paced`, which lets the bytes out
in pieces of PIECE bytes. Each piece is booked twice:
- on its lane's clock, when the lane has a cap: a lane is one organization rule (a rule's own
  `bandwidth`), or the source repository and target of any other copy;
- on the peer's clock (a virtual clock, GCRA-like: a piece of n bytes moves it n / rate
  seconds), handed out round-robin between lanes and first come, first served within one.
So rules sharing a capped peer get equal shares whatever their number of copies, copies within a
rule take turns piece by piece, and a small image queued behind a big capped transfer waits for
a piece (64 KiB: 3 ms at 20 MiB/s), not for the big blob. The cap holds mid-blob, and a window
of the day (Peer.bandwidth_windows, UTC) changes it from the next piece on.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ferry.config import Peer

PIECE = 64 * 1024
# Idle time does not save up: after a pause, at most this much may go out at once.
BURST_SECONDS = 0.05


def _minute_of_day(now: datetime) -> int:
    return now.hour * 60 + now.minute


@dataclass(frozen=True)
class Lane:
    """Whose share a copy's bytes are: `key` names the rule (or repository and target), `cap`
    its own bytes per second (None: only the peer's)."""

    key: str = ""
    cap: int | None = None


class _Clock:
    """A virtual clock for one cap: when its next byte may go out."""

    def __init__(self) -> None:
        self.free_at = 0.0

    def book(self, now: float, count: int, rate: float) -> float:
        """Books `count` bytes; the seconds until they may go."""
        self.free_at = max(self.free_at, now - BURST_SECONDS) + count / rate
        return self.free_at - now


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
        self._peer_clock = _Clock()
        # Waiting pieces per lane, in arrival order; lanes are served round-robin, in `_rotation`.
        self._waiting: dict[str, deque[tuple[int, asyncio.Future[None]]]] = {}
        self._rotation: deque[str] = deque()
        self._idle: set[str] = set()  # lanes found empty at their last turn
        self._server: asyncio.Task[None] | None = None
        self._lanes: dict[str, tuple[asyncio.Lock, _Clock]] = {}

    @property
    def capped(self) -> bool:
        return self.peer.bandwidth is not None or bool(self.peer.bandwidth_windows)

    def rate(self) -> float | None:
        """This process's bytes per second to the peer now; None: no cap now."""
        minute = _minute_of_day(self._wall())
        window = next((w for w in self.peer.bandwidth_windows if w.covers(minute)), None)
        cap = window.bandwidth if window is not None else self.peer.bandwidth
        return None if cap is None else cap / self.share

    async def take(self, count: int, lane: Lane = Lane()) -> None:
        """Waits until `count` more bytes of `lane` may go to the peer."""
        if lane.cap is not None:
            lock, clock = self._lanes.setdefault(lane.key, (asyncio.Lock(), _Clock()))
            async with lock:
                delay = clock.book(self._clock(), count, lane.cap / self.share)
                if delay > 0:
                    await asyncio.sleep(delay)
        if self.rate() is None:
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if lane.key not in self._waiting:
            self._waiting[lane.key] = deque()
            self._rotation.append(lane.key)
        self._waiting[lane.key].append((count, turn))
        if self._server is None or self._server.done():
            self._server = asyncio.create_task(self._serve())
        await turn

    async def _serve(self) -> None:
        """Hands out the peer's bytes: one piece per lane in turn, each when the clock allows."""
        while any(self._waiting.values()):
            key = self._next_lane()
            count, turn = self._waiting[key].popleft()
            if turn.done():  # its copy was cancelled meanwhile
                continue
            rate = self.rate()
            if rate is not None:
                delay = self._peer_clock.book(self._clock(), count, rate)
                if delay > 0:
                    await asyncio.sleep(delay)
            if not turn.done():
                turn.set_result(None)

    def _next_lane(self) -> str:
        """The next lane in the rotation with a piece waiting. A lane keeps its place while its
        copy is between pieces (its next one comes during the next sleep); one found empty on
        two turns in a row leaves the rotation."""
        while True:
            key = self._rotation.popleft()
            if self._waiting.get(key):
                self._idle.discard(key)
                self._rotation.append(key)
                return key
            if key in self._idle:
                self._idle.discard(key)
                self._waiting.pop(key, None)
            else:
                self._idle.add(key)
                self._rotation.append(key)

    def wants_pacing(self, lane: Lane) -> bool:
        return lane.cap is not None or self.capped

    async def paced(self, body: AsyncIterable[bytes], lane: Lane = Lane()) -> AsyncIterator[bytes]:
        """`body` again, no faster than the caps (as they are at each piece)."""
        async for chunk in body:
            if lane.cap is None and self.rate() is None:
                yield chunk
                continue
            view = memoryview(chunk)
            for start in range(0, len(view), PIECE):
                piece = view[start : start + PIECE]
                await self.take(len(piece), lane)
                yield bytes(piece)
