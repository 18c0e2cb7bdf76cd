"""Workers wake the moment a transaction that recorded jobs commits (DESIGN invariant 5).

Whatever records jobs calls `jobs_recorded(session)`. On PostgreSQL that issues NOTIFY, which the
server delivers at commit to every listening process, or not at all on rollback. In this process,
SQLAlchemy's `after_commit` session event wakes the workers (a `metadata.commits.CommitWakeup` on
JOBS_RECORDED). The database handle knows nothing of either.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

JOBS_RECORDED = "ferry.sync.jobs_recorded"
NOTIFY_CHANNEL = "ferry_sync_jobs"


async def jobs_recorded(session: AsyncSession) -> None:
    if session.info.get(JOBS_RECORDED):
        return
    session.info[JOBS_RECORDED] = True
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
