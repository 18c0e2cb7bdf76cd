"""The background garbage collection of `ferry serve` (FERRY_GC_INTERVAL_SECONDS > 0).

Every process of a region may run the schedule; the region-wide lease (gclease.py) lets one
collect at a time, and the others skip that turn.
"""

from __future__ import annotations

import logging

from ferry.config import Settings
from ferry.images.gc import GarbageCollector, GcBusy, GcPolicy
from ferry.images.periodic import Periodic
from ferry.metadata.db import Database
from ferry.storage import BlobStore

log = logging.getLogger("ferry.gc")


def gc_policy(settings: Settings) -> GcPolicy:
    return GcPolicy(
        grace_seconds=settings.gc_grace_seconds,
        keep_untagged=settings.gc_keep_untagged,
        upload_expiry_seconds=settings.upload_expiry_seconds,
        override_keep_seconds=settings.override_keep_seconds,
    )


def gc_schedule(settings: Settings, db: Database, store: BlobStore) -> Periodic:
    collector = GarbageCollector(db, store, gc_policy(settings))

    async def collect() -> None:
        try:
            await collector.run()
        except GcBusy:
            log.debug("gc skipped: another process of the region is collecting")

    return Periodic("gc", settings.gc_interval_seconds, collect, log)
