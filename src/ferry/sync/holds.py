"""Which jobs a pause holds (sync/pauses.py makes and ends pauses): one SQL condition, shared by
the queue's claim and the replication state, so what is held never runs and always says so."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.metadata.models import SyncJob, SyncPause


def _holding(region: Any, remote_namespace: Any, namespace: Any, repo_name: Any) -> ColumnElement[bool]:
    """The pauses that hold a job to `region`/`remote_namespace` from `namespace`/`repo_name`:
    SyncJob's columns (a correlated condition) or one job's values."""
    return and_(
        SyncPause.remote_region_id == region,
        or_(
            SyncPause.remote_namespace == "",  # the whole peer
            and_(
                SyncPause.remote_namespace == remote_namespace,
                SyncPause.namespace == namespace,
                or_(SyncPause.repo_name == "", SyncPause.repo_name == repo_name),
            ),
        ),
    )


def held() -> ColumnElement[bool]:
    """True for a sync_jobs row that a pause holds (correlated to SyncJob)."""
    where = _holding(SyncJob.remote_region_id, SyncJob.remote_namespace, SyncJob.namespace, SyncJob.repo_name)
    return select(SyncPause.id).where(where).exists()


async def pause_of(session: AsyncSession, job: SyncJob) -> SyncPause | None:
    """The pause that holds this job, if one does (the narrowest first)."""
    query = (
        select(SyncPause)
        .where(_holding(job.remote_region_id, job.remote_namespace, job.namespace, job.repo_name))
        .order_by(SyncPause.repo_name.desc(), SyncPause.remote_namespace.desc())
        .limit(1)
    )
    return await session.scalar(query)
