"""A background task of `ferry serve` that runs one piece of work every so many seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


class Periodic:
    """Awaits `work` every `every_seconds` (never when 0) until stopped; a failure is logged and
    the next turn comes as usual, so one bad run does not end the schedule."""

    def __init__(
        self, name: str, every_seconds: float, work: Callable[[], Awaitable[None]], log: logging.Logger
    ) -> None:
        self.name = name
        self.every_seconds = every_seconds
        self.work = work
        self.log = log
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.every_seconds > 0:
            self._task = asyncio.create_task(self._loop(), name=f"ferry-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every_seconds)
            try:
                await self.work()
            except Exception:
                self.log.exception("%s failed; the next run is in %.0f s", self.name, self.every_seconds)
