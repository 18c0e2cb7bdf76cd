"""One region's services, assembled from settings: the one composition that `ferry serve` (the
aiohttp application) and `ferry worker` (sync only) both start from."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from ferry.config import Settings
from ferry.images.events import FanOut, TagEvents
from ferry.images.periodic import Periodic
from ferry.metadata.db import Database
from ferry.metadata.migrate import upgrade
from ferry.storage import BlobStore, open_store
from ferry.sync.peer_client import PeerClient
from ferry.sync.reconciler import reconciler_schedule
from ferry.sync.triggers import SyncTriggers
from ferry.sync.worker import SyncWorker
from ferry.webhooks.delivery import DeliveryLoop
from ferry.webhooks.sources import WebhookTagEvents

log = logging.getLogger("ferry")


@dataclass
class Region:
    settings: Settings
    db: Database
    store: BlobStore
    peer_clients: dict[str, PeerClient]
    tag_events: TagEvents

    def sync_worker(self) -> SyncWorker:
        return SyncWorker(self.settings, self.db, self.store, self.peer_clients)

    def webhook_delivery(self) -> DeliveryLoop:
        return DeliveryLoop(self.settings, self.db)

    def reconciler(self) -> Periodic:
        """The background audit and repair (started by `ferry serve` when its interval is > 0)."""
        return reconciler_schedule(self.settings, self.db, self.store, self.peer_clients)

    async def prepare(self) -> None:
        """Fails fast on unusable storage, then brings the schema up to date."""
        await self.store.check()
        await upgrade(self.db)

    async def close(self) -> None:
        for client in self.peer_clients.values():
            await client.close()
        await self.db.close()


def open_region(settings: Settings) -> Region:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Region(
        settings,
        Database(settings.resolved_database_url()),
        open_store(settings),
        {
            peer.id: PeerClient(
                peer, settings.sync_stall_seconds, settings.sync_bandwidth_share, settings.sync_workers
            )
            for peer in settings.peer_regions()
        },
        # A tag move records its sync jobs and its webhook deliveries in its own transaction.
        FanOut(SyncTriggers(), WebhookTagEvents(settings.region)),
    )


async def run_worker(settings: Settings) -> None:
    """A process that only runs sync jobs (`ferry worker`), until SIGTERM or SIGINT."""
    region = open_region(settings)
    await region.prepare()
    worker = region.sync_worker()
    webhooks = region.webhook_delivery()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    worker.start()
    webhooks.start()
    log.info("sync worker for region %s running %d slots", settings.region, settings.sync_workers)
    try:
        await stop.wait()
    finally:
        await webhooks.stop()
        await worker.stop()
        await region.close()
