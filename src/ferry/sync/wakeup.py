"""Workers wake the moment a transaction that recorded jobs commits (DESIGN invariant 5).

Whatever records jobs calls `jobs_recorded(session)`. On PostgreSQL that issues NOTIFY, which the
server delivers at commit to every listening process, or not at all on rollback. In this process,
SQLAlchemy's `after_commit` session event wakes the workers a `CommitWakeup` serves. The database
handle knows nothing of either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

JOBS_RECORDED = "ferry.sync.jobs_recorded"
NOTIFY_CHANNEL = "ferry_sync_jobs"


async def jobs_recorded(session: AsyncSession) -> None:
    if session.info.get(JOBS_RECORDED):
        return
    session.info[JOBS_RECORDED] = True
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


class CommitWakeup:
    """Calls `wake` after every commit in this process that recorded jobs."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake
        self._listening = False

    def start(self) -> None:
        if not self._listening:
            event.listen(Session, "after_commit", self._after_commit)
            self._listening = True

    def stop(self) -> None:
        if self._listening:
            event.remove(Session, "after_commit", self._after_commit)
            self._listening = False

    def _after_commit(self, session: Session, *_args: Any) -> None:
        if session.info.get(JOBS_RECORDED):
            self.wake()
