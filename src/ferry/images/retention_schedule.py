"""The background retention runs of `ferry serve` (FERRY_RETENTION_INTERVAL_SECONDS > 0).

Every serving process may run the schedule: each policy not run for an interval is claimed by a
conditional update (images.retention.run_due), so one process runs it and the others skip it.
"""

from __future__ import annotations

import logging

from ferry.images.events import TagEvents
from ferry.images.periodic import Periodic
from ferry.images.retention import run_due
from ferry.metadata.db import Database

log = logging.getLogger("ferry.retention")
# How often the loop looks for due policies: the interval, but at least once a minute, so a
# policy created or run just after a look waits about one interval, not nearly two.
MAX_LOOK_SECONDS = 60.0


def retention_schedule(interval_seconds: float, db: Database, events: TagEvents) -> Periodic:
    async def run_policies_due() -> None:
        await run_due(db, events, interval_seconds)

    look = min(interval_seconds, MAX_LOOK_SECONDS)
    return Periodic("retention", look, run_policies_due, log)
