"""GET /metrics: the Prometheus text format, for the addresses `metrics_allow` names.

Queue depth, registry content and tags per replication state are read from the database when
scraped (a query or a few each, kept for CACHE_SECONDS so a burst of scrapes costs one), by
whichever process answers: they describe the region, not a process, so they are never summed
across processes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ferry.config import in_networks
from ferry.errors import SWRError
from ferry.images.totals import ContentTotals, content_totals
from ferry.observability.exposition import CONTENT_TYPE, render
from ferry.state import STATE, state
from ferry.sync.depth import QueueDepth, queue_depth
from ferry.sync.replication import tag_state_counts

CACHE_SECONDS = 2.0
T = TypeVar("T")


@dataclass
class Cached(Generic[T]):
    """The last value of an async query, reused for `seconds`."""

    load: Callable[[], Awaitable[T]]
    seconds: float = CACHE_SECONDS
    _value: T | None = None
    _at: float = field(default=-1e9)

    async def get(self) -> T:
        if self._value is None or time.monotonic() - self._at > self.seconds:
            self._value = await self.load()
            self._at = time.monotonic()
        return self._value


class RegionSnapshot(Collector):
    def __init__(self, depth: list[QueueDepth], content: ContentTotals) -> None:
        self.depth = depth
        self.content = content

    def collect(self) -> Iterator[Metric]:
        region = ["target_region"]
        waiting = GaugeMetricFamily(
            "ferry_sync_jobs_waiting", "Jobs waiting to run, by target region.", labels=region
        )
        running = GaugeMetricFamily(
            "ferry_sync_jobs_running", "Jobs running now, by target region.", labels=region
        )
        oldest = GaugeMetricFamily(
            "ferry_sync_oldest_waiting_seconds",
            "Age of the oldest waiting job, by target region.",
            labels=region,
        )
        for row in self.depth:
            waiting.add_metric([row.target_region], row.waiting)
            running.add_metric([row.target_region], row.running)
            oldest.add_metric([row.target_region], row.oldest_waiting_seconds)
        yield from (waiting, running, oldest)
        yield GaugeMetricFamily(
            "ferry_repositories", "Repositories in this region.", self.content.repositories
        )
        yield GaugeMetricFamily("ferry_tags", "Tags in this region.", self.content.tags)
        yield GaugeMetricFamily(
            "ferry_blob_bytes",
            "Bytes of the verified blobs stored (each digest once).",
            self.content.blob_bytes,
        )


class TagStates(Collector):
    """ferry_sync_tags{state,target}: tags per replication state per target (sync/replication.py)."""

    def __init__(self, counts: dict[tuple[str, str], int]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        tags = GaugeMetricFamily(
            "ferry_sync_tags",
            "Tags per replication state, by target (REGION/ORG).",
            labels=["state", "target"],
        )
        for (kind, target), count in sorted(self.counts.items()):
            tags.add_metric([kind, target], count)
        yield tags


@dataclass
class Snapshots:
    depth: Cached[list[QueueDepth]]
    content: Cached[ContentTotals]
    tags: Cached[dict[tuple[str, str], int]]


SNAPSHOTS = web.AppKey("ferry_snapshots", Snapshots)


def install(app: web.Application) -> None:
    """Keeps the cached queries on the application (one pair per process)."""
    db = app[STATE].db
    app[SNAPSHOTS] = Snapshots(
        Cached(lambda: queue_depth(db)),
        Cached(lambda: content_totals(db)),
        Cached(lambda: tag_state_counts(db)),
    )


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Public route (no credentials); the address decides: loopback by default."""
    app_state = state(request)
    if not in_networks(app_state.client_address(request), app_state.settings.metrics_allow):
        raise SWRError(
            403, "SVCSTG.SWR.4030170", "metrics are not served to this address (FERRY_METRICS_ALLOW)"
        )
    snapshots = request.app[SNAPSHOTS]
    body = render(
        [
            RegionSnapshot(await snapshots.depth.get(), await snapshots.content.get()),
            TagStates(await snapshots.tags.get()),
        ]
    )
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
