"""The background garbage collection of `ferry serve` (FERRY_GC_INTERVAL_SECONDS > 0).

Every process of a region may run the schedule; the region-wide lease (gclease.py) lets one
collect at a time, and the others skip that turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ferry.config import Settings
from ferry.images.gc import GarbageCollector, GcBusy, GcPolicy
from ferry.metadata.db import Database
from ferry.storage import BlobStore

log = logging.getLogger("ferry.gc")


def gc_policy(settings: Settings) -> GcPolicy:
    return GcPolicy(
        grace_seconds=settings.gc_grace_seconds,
        keep_untagged=settings.gc_keep_untagged,
        upload_expiry_seconds=settings.upload_expiry_seconds,
    )


class GcSchedule:
    def __init__(self, settings: Settings, db: Database, store: BlobStore) -> None:
        self.interval = settings.gc_interval_seconds
        self.collector = GarbageCollector(db, store, gc_policy(settings))
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._loop(), name="ferry-gc")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.collector.run()
            except GcBusy:
                log.debug("gc skipped: another process of the region is collecting")
            except Exception:
                log.exception("gc failed; the next run is in %.0f s", self.interval)
