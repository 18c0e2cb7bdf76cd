"""The webhook outbox: one delivery row per subscribed webhook, inserted in the transaction of
the event's cause (a tag move, a sync job's end), so an event whose cause committed is never
lost, and nothing is sent from inside that transaction (a slow receiver never slows a push).

The delivery loop of this process wakes when such a transaction commits (SQLAlchemy's
`after_commit`, through the `metadata.commits.CommitWakeup` the sync workers use too); other
processes find the rows when they poll.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.metadata.outbox_models import Webhook, WebhookDelivery
from ferry.webhooks.events import make_event

DELIVERIES_RECORDED = "ferry.webhooks.deliveries_recorded"


async def record(
    session: AsyncSession,
    organization_id: int,
    event_type: str,
    subject: str,
    data: dict[str, Any],
    region: str,
) -> int:
    """Queues the event for every enabled webhook of the organization that takes its type;
    returns how many deliveries it queued. One event (one id, one body) for all of them."""
    hooks = list(
        await session.scalars(
            select(Webhook).where(Webhook.organization_id == organization_id, Webhook.enabled.is_(True))
        )
    )
    wanted = [hook for hook in hooks if not hook.events or event_type in hook.events]
    if not wanted:
        return 0
    made = make_event(region, event_type, subject, data)
    for hook in wanted:
        session.add(
            WebhookDelivery(webhook_id=hook.id, event_id=made.id, event_type=made.type, body=made.body)
        )
    session.info[DELIVERIES_RECORDED] = True
    return len(wanted)
