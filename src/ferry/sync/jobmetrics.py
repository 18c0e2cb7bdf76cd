"""The sync metrics of one attempt: one call per event, from JobRunner."""

from __future__ import annotations

from ferry.metadata.models import JobStatus, SyncJob
from ferry.observability import metrics
from ferry.sync.errors import PeerError
from ferry.sync.queue import Outcome


def started(job: SyncJob) -> None:
    metrics.SYNC_ATTEMPTS.labels(job.remote_region_id).inc()


def failed(job: SyncJob, error: BaseException) -> None:
    """An attempt that raised: counted as a retry (by cause) when trying again can help."""
    if isinstance(error, PeerError):
        if error.retryable:
            metrics.SYNC_RETRIES.labels(error.cause, job.remote_region_id).inc()
        return
    metrics.SYNC_RETRIES.labels("internal", job.remote_region_id).inc()


def finished(job: SyncJob, outcome: Outcome) -> None:
    """A final status; a synced tag's push-to-visible lag, from the tag move (the job was
    recorded in the same transaction) to the verified target tag."""
    metrics.SYNC_JOBS_FINISHED.labels(outcome.status, job.remote_region_id).inc()
    if outcome.status == JobStatus.SUCCESS and outcome.visible_at is not None:
        lag = (outcome.visible_at - job.created_at).total_seconds()
        metrics.SYNC_LAG.labels(job.remote_region_id).observe(max(lag, 0.0))
