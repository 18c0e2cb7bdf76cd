"""How much work the queue holds, per target region: one grouped query, for /metrics."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select

from ferry.metadata.db import Database
from ferry.metadata.models import JobStatus, SyncJob, utcnow


@dataclass(frozen=True)
class QueueDepth:
    target_region: str
    waiting: int
    running: int
    # Seconds the oldest waiting job has existed (0 when none waits).
    oldest_waiting_seconds: float


async def queue_depth(db: Database) -> list[QueueDepth]:
    """Waiting and running jobs and the oldest waiting one's age, per target region."""
    query = (
        select(SyncJob.remote_region_id, SyncJob.status, func.count(), func.min(SyncJob.created_at))
        .where(SyncJob.status.in_([JobStatus.WAITING, JobStatus.RUNNING]))
        .group_by(SyncJob.remote_region_id, SyncJob.status)
    )
    async with db.read() as session:
        rows = (await session.execute(query)).all()
    now = utcnow()
    regions: dict[str, QueueDepth] = {}
    for region, status, count, oldest in rows:
        row = regions.get(region) or QueueDepth(region, 0, 0, 0.0)
        if status == JobStatus.WAITING:
            age = max(0.0, (now - _aware(oldest)).total_seconds()) if oldest is not None else 0.0
            row = replace(row, waiting=int(count), oldest_waiting_seconds=age)
        else:
            row = replace(row, running=int(count))
        regions[region] = row
    return [regions[region] for region in sorted(regions)]


def _aware(moment: datetime | str) -> datetime:
    """min() over a column skips the column type on SQLite, which hands back text."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
