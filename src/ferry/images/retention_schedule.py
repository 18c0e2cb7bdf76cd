"""The background retention runs of `ferry serve` (FERRY_RETENTION_INTERVAL_SECONDS > 0).

Every serving process may run the schedule: each policy not run for an interval is claimed by a
conditional update (images.retention.run_due), so one process runs it and the others skip it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ferry.images.retention import run_due
from ferry.metadata.db import Database

log = logging.getLogger("ferry.retention")
# How often the loop looks for due policies: the interval, but at least once a minute, so a
# policy created or run just after a look waits about one interval, not nearly two.
MAX_LOOK_SECONDS = 60.0


class RetentionSchedule:
    def __init__(self, interval_seconds: float, db: Database) -> None:
        self.interval = interval_seconds
        self.db = db
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._loop(), name="ferry-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        look = min(self.interval, MAX_LOOK_SECONDS)
        while True:
            await asyncio.sleep(look)
            try:
                await run_due(self.db, self.interval)
            except Exception:
                log.exception("retention run failed; the next look is in %.0f s", look)
