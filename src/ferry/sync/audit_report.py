"""What an audit found, as data: drift items, the totals, and the audit_runs record of each audit."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ferry.metadata.db import Database
from ferry.metadata.models import utcnow
from ferry.metadata.outbox_models import AuditRun
from ferry.observability import metrics

# The kinds of drift, README "Audit and self-repair". Every kind but these is repaired by a job.
KINDS = (
    "missing_tag",
    "digest_mismatch",
    "missing_blob",
    "missing_manifest",
    "missing_referrer",
    "corrupt_blob",
    "conflict",
)
# conflict: the target holds an image this sync never wrote and override is off, so the sync
# leaves it alone. corrupt_blob: the target says it has the blob, so a copy would skip it; a
# person decides (README).
NOT_REPAIRED = frozenset({"conflict", "corrupt_blob"})
# Drift items kept in an audit_runs row (the API answer has all of them).
STORED_DRIFT = 1000


@dataclass(frozen=True)
class Drift:
    kind: str
    tag: str
    target: str  # REGION/ORG
    digest: str
    detail: str

    @property
    def repairable(self) -> bool:
        return self.kind not in NOT_REPAIRED


@dataclass
class AuditReport:
    """One audit of one repository against the targets of its rules."""

    namespace: str
    repository: str
    region: str | None  # only rules to this region, when given
    trigger: str  # "api" or "reconciler"
    tags_checked: int = 0
    pending: int = 0  # tags skipped because a sync job for them is waiting or running
    not_synced: int = 0  # tags missing at a target that this sync never copied (not drift)
    requests: int = 0
    drift: list[Drift] = field(default_factory=list)
    repaired: int = 0  # drift items a repair job was queued for
    targets: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started_at: Any = field(default_factory=utcnow)
    audit_id: int | None = None

    def found(self, drift: Drift) -> None:
        self.drift.append(drift)
        metrics.SYNC_DRIFT_FOUND.labels(drift.kind, drift.target).inc()

    def view(self) -> dict[str, Any]:
        """The API's answer (contract 5), plus pending, notSynced, targets and errors."""
        return {
            "auditId": self.audit_id,
            "repository": f"{self.namespace}/{self.repository}",
            "tagsChecked": self.tags_checked,
            "pending": self.pending,
            "notSynced": self.not_synced,
            "requests": self.requests,
            "drift": [asdict(d) for d in self.drift],
            "repaired": self.repaired,
            "targets": self.targets,
            "errors": self.errors,
        }


async def record(db: Database, report: AuditReport) -> None:
    """Writes the audit_runs row; sets `report.audit_id`."""
    row = AuditRun(
        trigger=report.trigger,
        namespace=report.namespace,
        repo_name=report.repository,
        remote_region_id=report.region,
        tags_checked=report.tags_checked,
        requests=report.requests,
        drift_count=len(report.drift),
        repaired_count=report.repaired,
        drift=[asdict(d) | {"repository": report.repository} for d in report.drift[:STORED_DRIFT]],
        error="; ".join(report.errors)[:1024],
        started_at=report.started_at,
        finished_at=utcnow(),
    )
    async with db.write() as session:
        session.add(row)
        await session.flush()
        report.audit_id = row.id
