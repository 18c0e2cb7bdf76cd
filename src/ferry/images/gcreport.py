"""What a garbage collection is told (GcPolicy) and what it reports (GcReport, metrics)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ferry.observability import metrics

KINDS = ("manifest", "blob", "upload", "orphan")


@dataclass(frozen=True)
class GcPolicy:
    grace_seconds: float = 3600
    keep_untagged: bool = False
    upload_expiry_seconds: float = 24 * 3600
    # An image a sync copy replaced under a tag is kept this long, for a rollback.
    override_keep_seconds: float = 7 * 24 * 3600


@dataclass
class GcReport:
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    seconds: float = 0.0

    @property
    def total_count(self) -> int:
        return sum(self.counts.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    def summary(self) -> str:
        parts = ", ".join(f"{self.counts[k]} {k}s ({self.bytes[k]} bytes)" for k in KINDS)
        verb = "would free" if self.dry_run else "freed"
        return f"gc {verb} {self.total_count} items, {self.total_bytes} bytes: {parts} in {self.seconds:.1f}s"


# Called once per item collected: kind, name (org/repo@digest, digest, upload id), size.
OnItem = Callable[[str, str, int], None]
# Called as work advances: the phase and how many items it has examined so far.
OnProgress = Callable[[str, int], None]


class GcBusy(Exception):
    """Another process of the region is collecting now."""


def record(report: GcReport | None) -> None:
    """Counts a finished run in the metrics; None: a run that failed."""
    if report is None:
        metrics.GC_RUNS.labels("failed").inc()
        return
    metrics.GC_RUNS.labels("success").inc()
    metrics.GC_DURATION.observe(report.seconds)
    metrics.GC_LAST_SUCCESS.set(time.time())
    for kind in KINDS:
        metrics.GC_FREED.labels(kind).inc(report.counts[kind])
        metrics.GC_FREED_BYTES.labels(kind).inc(report.bytes[kind])
