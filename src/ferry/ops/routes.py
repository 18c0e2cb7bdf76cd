"""The operator's routes: public (no credentials), listed in tests/test_every_route_is_guarded.py."""

from __future__ import annotations

from aiohttp import web

from ferry.ops import scrape
from ferry.ops.health import SYNC_SLOTS, SyncSlots, healthz, readyz


def add_routes(app: web.Application) -> SyncSlots:
    """Adds /metrics, /healthz and /readyz; returns where readiness looks for the sync worker."""
    scrape.install(app)
    app[SYNC_SLOTS] = slots = SyncSlots()
    app.router.add_get("/metrics", scrape.metrics_endpoint)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return slots
