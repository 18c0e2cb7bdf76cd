"""Which jobs a pause holds (sync/pauses.py makes and ends pauses): one SQL condition, shared by
the queue's claim and the replication state, so what is held never runs and always says so."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.metadata.models import SyncJob, SyncPause


def _holds_job() -> ColumnElement[bool]:
    return and_(
        SyncPause.remote_region_id == SyncJob.remote_region_id,
        or_(
            SyncPause.remote_namespace == "",  # the whole peer
            and_(
                SyncPause.remote_namespace == SyncJob.remote_namespace,
                SyncPause.namespace == SyncJob.namespace,
                or_(SyncPause.repo_name == "", SyncPause.repo_name == SyncJob.repo_name),
            ),
        ),
    )


def held() -> ColumnElement[bool]:
    """True for a sync_jobs row that a pause holds (correlated to SyncJob)."""
    return select(SyncPause.id).where(_holds_job()).exists()


async def pause_of(session: AsyncSession, job: SyncJob) -> SyncPause | None:
    """The pause that holds this job, if one does (the narrowest first)."""
    query = (
        select(SyncPause)
        .where(
            SyncPause.remote_region_id == job.remote_region_id,
            or_(
                SyncPause.remote_namespace == "",
                and_(
                    SyncPause.remote_namespace == job.remote_namespace,
                    SyncPause.namespace == job.namespace,
                    or_(SyncPause.repo_name == "", SyncPause.repo_name == job.repo_name),
                ),
            ),
        )
        .order_by(SyncPause.repo_name.desc(), SyncPause.remote_namespace.desc())
        .limit(1)
    )
    return await session.scalar(query)
