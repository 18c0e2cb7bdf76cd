"""Webhooks as the management API sees them: create (the secret is returned this once), list,
show, change, delete, the delivery log, and replay. Every operation needs manage permission on
the organization, as its permissions do."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import MANAGE
from ferry.identity.organizations import require_organization
from ferry.identity.service import Principal
from ferry.metadata.models import Organization, utcnow
from ferry.metadata.outbox_models import Webhook, WebhookAttempt, WebhookDelivery
from ferry.webhooks.errors import DeliveryUnknown, WebhookInvalid, WebhookUnknown
from ferry.webhooks.events import EVENT_TYPES
from ferry.webhooks.outbox import DELIVERIES_RECORDED
from ferry.webhooks.signing import new_secret
from ferry.webhooks.urls import check_url

MIN_SECRET = 16


@dataclass(frozen=True)
class Change:
    """What a PATCH sets (None: left as it is)."""

    url: str | None = None
    events: list[str] | None = None
    enabled: bool | None = None
    description: str | None = None
    secret: str | None = None


@dataclass(frozen=True)
class DeliveryLog:
    delivery: WebhookDelivery
    attempts: list[WebhookAttempt]


async def _organization(session: AsyncSession, principal: Principal, namespace: str) -> Organization:
    return (await require_organization(session, principal, namespace, MANAGE)).organization


def _events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise WebhookInvalid(f"unknown event type {unknown[0]!r}: use one of {', '.join(EVENT_TYPES)}")
    return sorted(set(events))


def _secret(secret: str) -> str:
    if not MIN_SECRET <= len(secret) <= 128:
        raise WebhookInvalid(f"webhook secret must be {MIN_SECRET} to 128 characters")
    return secret


async def _webhook(session: AsyncSession, org: Organization, webhook_id: int) -> Webhook:
    hook = await session.get(Webhook, webhook_id)
    if hook is None or hook.organization_id != org.id:
        raise WebhookUnknown(webhook_id, org.name)
    return hook


async def create_webhook(
    session: AsyncSession,
    principal: Principal,
    namespace: str,
    url: str,
    events: list[str],
    secret: str | None,
    description: str,
    enabled: bool,
    allow_private: bool,
) -> Webhook:
    """The new webhook; its `secret` (given, or generated) is for the caller's answer only."""
    org = await _organization(session, principal, namespace)
    check_url(url, allow_private)
    hook = Webhook(
        organization_id=org.id,
        url=url,
        secret=_secret(secret) if secret is not None else new_secret(),
        events=_events(events),
        description=description,
        enabled=enabled,
        creator_name=principal.name,
    )
    session.add(hook)
    await session.flush()
    return hook


async def list_webhooks(session: AsyncSession, principal: Principal, namespace: str) -> list[Webhook]:
    org = await _organization(session, principal, namespace)
    return list(
        await session.scalars(select(Webhook).where(Webhook.organization_id == org.id).order_by(Webhook.id))
    )


async def show_webhook(
    session: AsyncSession, principal: Principal, namespace: str, webhook_id: int
) -> Webhook:
    return await _webhook(session, await _organization(session, principal, namespace), webhook_id)


async def change_webhook(
    session: AsyncSession,
    principal: Principal,
    namespace: str,
    webhook_id: int,
    change: Change,
    allow_private: bool,
) -> Webhook:
    hook = await show_webhook(session, principal, namespace, webhook_id)
    if change.url is not None:
        check_url(change.url, allow_private)
        hook.url = change.url
    if change.events is not None:
        hook.events = _events(change.events)
    if change.enabled is not None:
        hook.enabled = change.enabled
        session.info[DELIVERIES_RECORDED] = True  # re-enabled: its waiting deliveries may go now
    if change.description is not None:
        hook.description = change.description
    if change.secret is not None:
        hook.secret = _secret(change.secret)
    hook.updated_at = utcnow()
    return hook


async def delete_webhook(
    session: AsyncSession, principal: Principal, namespace: str, webhook_id: int
) -> None:
    """The webhook, its deliveries and their attempts."""
    await session.delete(await show_webhook(session, principal, namespace, webhook_id))


async def list_deliveries(
    session: AsyncSession, principal: Principal, namespace: str, webhook_id: int, limit: int
) -> list[DeliveryLog]:
    """The webhook's newest deliveries, each with its attempts in order."""
    hook = await show_webhook(session, principal, namespace, webhook_id)
    deliveries = list(
        await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == hook.id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
    )
    attempts: dict[int, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        found = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number, WebhookAttempt.id)
        )
        for attempt in found:
            attempts[attempt.delivery_id].append(attempt)
    return [DeliveryLog(d, attempts[d.id]) for d in deliveries]


async def replay_delivery(
    session: AsyncSession, principal: Principal, namespace: str, delivery_id: int
) -> WebhookDelivery:
    """A new delivery of the same event (same id, same body) to the same webhook."""
    org = await _organization(session, principal, namespace)
    original = await session.get(WebhookDelivery, delivery_id)
    hook = None if original is None else await session.get(Webhook, original.webhook_id)
    if original is None or hook is None or hook.organization_id != org.id:
        raise DeliveryUnknown(delivery_id, org.name)
    replay = WebhookDelivery(
        webhook_id=original.webhook_id,
        event_id=original.event_id,
        event_type=original.event_type,
        body=original.body,
        replay_of=original.id,
    )
    session.add(replay)
    await session.flush()
    session.info[DELIVERIES_RECORDED] = True
    return replay
