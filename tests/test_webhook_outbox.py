"""The webhook outbox in process (no server): deliveries commit or roll back with their cause,
only subscribed and enabled webhooks get one, old finished deliveries are pruned."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ferry.config import Settings
from ferry.metadata.models import Organization, utcnow
from ferry.metadata.outbox_models import Webhook, WebhookAttempt, WebhookDelivery
from ferry.webhooks import events
from ferry.webhooks.delivery import DeliveryLoop
from ferry.webhooks.outbox import record
from ferry.webhooks.sources import job_event_types
from tests.support.inprocess import ORG, World, database_url


class Boom(Exception):
    pass


@pytest.fixture
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    region = await World(database_url("sqlite", tmp_path, request), tmp_path).open()
    yield region
    await region.close()


async def _hooks(world: World) -> tuple[int, list[int]]:
    """org's id and three webhooks: all events, only syncs, disabled."""
    async with world.db.write() as session:
        org_id = await session.scalar(select(Organization.id).where(Organization.name == ORG))
        assert org_id is not None
        made = [
            Webhook(organization_id=org_id, url="https://a.example/h", secret="s" * 16, events=[]),
            Webhook(
                organization_id=org_id, url="https://b.example/h", secret="s" * 16, events=[events.TAG_SYNCED]
            ),
            Webhook(organization_id=org_id, url="https://c.example/h", secret="s" * 16, enabled=False),
        ]
        session.add_all(made)
        await session.flush()
        return org_id, [hook.id for hook in made]


async def _deliveries(world: World) -> list[WebhookDelivery]:
    async with world.db.read() as session:
        return list(await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


async def test_deliveries_commit_with_their_cause_and_only_for_subscribers(world: World) -> None:
    org_id, (everything, syncs, _disabled) = await _hooks(world)
    with pytest.raises(Boom):
        async with world.db.write() as session:
            await record(session, org_id, events.IMAGE_PUSHED, "org/app:v1", {"tag": "v1"}, "r1")
            raise Boom
    assert await _deliveries(world) == []

    async with world.db.write() as session:
        assert await record(session, org_id, events.IMAGE_PUSHED, "org/app:v1", {"tag": "v1"}, "r1") == 1
        assert await record(session, org_id, events.TAG_SYNCED, "org/app:v1", {"tag": "v1"}, "r1") == 2
    found = await _deliveries(world)
    assert [(d.webhook_id, d.event_type) for d in found] == [
        (everything, events.IMAGE_PUSHED),
        (everything, events.TAG_SYNCED),
        (syncs, events.TAG_SYNCED),
    ]
    assert found[1].event_id == found[2].event_id and found[1].body == found[2].body  # one event


async def test_old_finished_deliveries_are_pruned(world: World, tmp_path: Path) -> None:
    _, (hook, _, _) = await _hooks(world)
    old = utcnow() - timedelta(days=31)
    async with world.db.write() as session:
        for status, finished in (("success", old), ("failed", old), ("success", utcnow()), ("waiting", None)):
            delivery = WebhookDelivery(
                webhook_id=hook, event_id="e", event_type="t", body=b"{}", status=status, finished_at=finished
            )
            session.add(delivery)
            await session.flush()
            session.add(WebhookAttempt(delivery_id=delivery.id, number=1))
    loop = DeliveryLoop(Settings(data_dir=tmp_path, webhook_keep_days=30), world.db)
    assert await loop.prune() == 2
    assert [d.status for d in await _deliveries(world)] == ["success", "waiting"]
    async with world.db.read() as session:
        assert len(list(await session.scalars(select(WebhookAttempt)))) == 2  # theirs went with them


def test_which_job_ends_make_which_events() -> None:
    assert job_event_types("success", None, "auto") == [events.TAG_SYNCED]
    assert job_event_types("success", None, "repair") == [events.TAG_SYNCED, events.DRIFT_REPAIRED]
    assert job_event_types("existed", "conflict", "auto") == [events.SYNC_CONFLICT]
    assert job_event_types("existed", None, "auto") == []
    assert job_event_types("failed", "unreachable", "manual") == [events.SYNC_FAILED]
    assert job_event_types("timeout", "timeout", "auto") == [events.SYNC_FAILED]
    assert job_event_types("cancel", "source_gone", "auto") == []
