"""The log lines of a sync job's life: start, retry, failure and success, each naming the whole
copy (`org/repo:tag → region/org`) and the job, so an operator can follow one job by grep."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from ferry.metadata.models import JobStatus, SyncJob
from ferry.observability.logs import log_event
from ferry.sync.queue import Outcome

log = logging.getLogger("ferry.sync")
_FAILED = frozenset({JobStatus.FAILED, JobStatus.TIMEOUT})


def copy_name(job: SyncJob) -> str:
    return f"{job.namespace}/{job.repo_name}:{job.tag} → {job.remote_region_id}/{job.remote_namespace}"


def _event(job: SyncJob, level: int, what: str, **fields: object) -> None:
    log_event(
        log,
        level,
        f"sync job={job.id} {copy_name(job)}: {what}",
        job_id=job.id,
        image=f"{job.namespace}/{job.repo_name}:{job.tag}",
        target=f"{job.remote_region_id}/{job.remote_namespace}",
        attempt=job.attempts,
        **fields,
    )


def started(job: SyncJob) -> None:
    _event(job, logging.INFO, f"attempt {job.attempts} started", event="start")


def retrying(job: SyncJob, cause: str, next_attempt_at: datetime | None) -> None:
    when = _moment(next_attempt_at)
    what = f"attempt {job.attempts} failed, next attempt at {when}: {cause}"
    _event(job, logging.WARNING, what, event="retry", cause=cause, next_attempt_at=when)


def cancelled(job: SyncJob) -> None:
    what = f"attempt {job.attempts} stopped: the job was cancelled; its upload sessions deleted"
    _event(job, logging.WARNING, what, event="cancel")


def finished(job: SyncJob, outcome: Outcome, seconds: float) -> None:
    duration_ms = round(seconds * 1000, 1)
    if outcome.status in _FAILED:
        what = f"{outcome.status} after {job.attempts} attempt(s): {outcome.message}"
        _event(job, logging.ERROR, what, event="failure", status=outcome.status, cause=outcome.message)
        return
    level = logging.WARNING if outcome.status == JobStatus.CANCEL else logging.INFO
    what = f"{outcome.status} {outcome.digest or '-'}, {outcome.bytes_sent} bytes sent in {duration_ms} ms"
    if outcome.status == JobStatus.CANCEL:
        what += f": {outcome.message}"
    _event(
        job,
        level,
        what,
        event="finish",
        status=outcome.status,
        digest=outcome.digest,
        bytes_sent=outcome.bytes_sent,
        duration_ms=duration_ms,
    )


def _moment(value: datetime | None) -> str:
    if value is None:
        return "-"
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
