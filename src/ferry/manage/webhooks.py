"""Webhooks of an organization (Ferry's extension beside SWR's API): create, list, show, change,
delete, the delivery log, and replay. The secret is in the answer to create only."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from ferry.identity.service import Principal
from ferry.manage.operations import (
    authenticated,
    id_param,
    json_response,
    namespace_param,
    parse_body,
    query_number,
)
from ferry.manage.schemas import Body, rfc3339
from ferry.metadata.outbox_models import Webhook
from ferry.state import state
from ferry.webhooks import hooks
from ferry.webhooks.hooks import DeliveryLog

WEBHOOKS = "/v2/manage/namespaces/{namespace}/webhooks"
WEBHOOK = WEBHOOKS + "/{webhook_id}"
TAG = "webhooks"


# Requests


class CreateWebhookBody(Body):
    url: str = Field(min_length=1, max_length=2048)
    events: list[str] = Field(default_factory=list, max_length=16)
    secret: str | None = Field(default=None, max_length=128)
    description: str = Field(default="", max_length=256)
    enabled: bool = True


class UpdateWebhookBody(Body):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[str] | None = Field(default=None, max_length=16)
    secret: str | None = Field(default=None, max_length=128)
    description: str | None = Field(default=None, max_length=256)
    enabled: bool | None = None


# Responses


class WebhookView(BaseModel):
    id: int
    url: str
    events: list[str]
    enabled: bool
    description: str
    creator_name: str
    created_at: str
    updated_at: str


class WebhookCreated(WebhookView):
    secret: str  # this once


class AttemptView(BaseModel):
    number: int
    started_at: str
    duration_ms: int
    response_code: int | None
    error: str


class DeliveryView(BaseModel):
    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    response_code: int | None
    last_error: str
    replay_of: int | None
    created_at: str
    finished_at: str | None
    attempt_log: list[AttemptView]


class Replayed(BaseModel):
    id: int
    replay_of: int


def _view(hook: Webhook) -> dict[str, object]:
    return {
        "id": hook.id,
        "url": hook.url,
        "events": hook.events,
        "enabled": hook.enabled,
        "description": hook.description,
        "creator_name": hook.creator_name,
        "created_at": rfc3339(hook.created_at),
        "updated_at": rfc3339(hook.updated_at),
    }


def _delivery_view(log: DeliveryLog) -> DeliveryView:
    d = log.delivery
    return DeliveryView(
        id=d.id,
        event_id=d.event_id,
        event_type=d.event_type,
        status=d.status,
        attempts=d.attempts,
        response_code=d.response_code,
        last_error=d.last_error,
        replay_of=d.replay_of,
        created_at=rfc3339(d.created_at),
        finished_at=rfc3339(d.finished_at) if d.finished_at else None,
        attempt_log=[
            AttemptView(
                number=a.number,
                started_at=rfc3339(a.started_at),
                duration_ms=a.duration_ms,
                response_code=a.response_code,
                error=a.error,
            )
            for a in log.attempts
        ],
    )


def _allow_private(request: web.Request) -> bool:
    return state(request).settings.webhook_allow_private


async def create_webhook(request: web.Request, principal: Principal) -> web.Response:
    namespace = namespace_param(request)
    body = await parse_body(request, CreateWebhookBody)
    async with state(request).db.write() as session:
        hook = await hooks.create_webhook(
            session,
            principal,
            namespace,
            body.url,
            body.events,
            body.secret,
            body.description,
            body.enabled,
            _allow_private(request),
        )
        created = WebhookCreated.model_validate(_view(hook) | {"secret": hook.secret})
    return json_response(created, status=201)


async def list_webhooks(request: web.Request, principal: Principal) -> web.Response:
    namespace = namespace_param(request)
    async with state(request).db.read() as session:
        found = await hooks.list_webhooks(session, principal, namespace)
        return json_response([WebhookView.model_validate(_view(h)) for h in found])


async def show_webhook(request: web.Request, principal: Principal) -> web.Response:
    namespace, webhook_id = namespace_param(request), id_param(request, "webhook_id")
    async with state(request).db.read() as session:
        hook = await hooks.show_webhook(session, principal, namespace, webhook_id)
        return json_response(WebhookView.model_validate(_view(hook)))


async def update_webhook(request: web.Request, principal: Principal) -> web.Response:
    namespace, webhook_id = namespace_param(request), id_param(request, "webhook_id")
    body = await parse_body(request, UpdateWebhookBody)
    change = hooks.Change(body.url, body.events, body.enabled, body.description, body.secret)
    async with state(request).db.write() as session:
        hook = await hooks.change_webhook(
            session, principal, namespace, webhook_id, change, _allow_private(request)
        )
        view = WebhookView.model_validate(_view(hook))
    return json_response(view)


async def delete_webhook(request: web.Request, principal: Principal) -> web.Response:
    namespace, webhook_id = namespace_param(request), id_param(request, "webhook_id")
    async with state(request).db.write() as session:
        await hooks.delete_webhook(session, principal, namespace, webhook_id)
    return web.Response(status=204)


async def list_deliveries(request: web.Request, principal: Principal) -> web.Response:
    """The newest deliveries first (`limit`, default 100, at most 1000), each with its attempts."""
    namespace, webhook_id = namespace_param(request), id_param(request, "webhook_id")
    limit = query_number(request, "limit", 100, 1, 1000)
    async with state(request).db.read() as session:
        found = await hooks.list_deliveries(session, principal, namespace, webhook_id, limit)
        return json_response([_delivery_view(log) for log in found])


async def replay_delivery(request: web.Request, principal: Principal) -> web.Response:
    namespace, delivery_id = namespace_param(request), id_param(request, "delivery_id")
    async with state(request).db.write() as session:
        replay = await hooks.replay_delivery(session, principal, namespace, delivery_id)
        answer = Replayed(id=replay.id, replay_of=delivery_id)
    return json_response(answer, status=201)


OPERATIONS = [
    authenticated(
        create_webhook,
        "POST",
        WEBHOOKS,
        "Create a webhook (the answer holds its secret, this once)",
        status=201,
        body=CreateWebhookBody,
        response=WebhookCreated,
        tag=TAG,
    ),
    authenticated(list_webhooks, "GET", WEBHOOKS, "List webhooks", response=list[WebhookView], tag=TAG),
    authenticated(show_webhook, "GET", WEBHOOK, "Show a webhook", response=WebhookView, tag=TAG),
    authenticated(
        update_webhook,
        "PATCH",
        WEBHOOK,
        "Change a webhook (url, events, enabled, description, secret)",
        body=UpdateWebhookBody,
        response=WebhookView,
        tag=TAG,
    ),
    authenticated(delete_webhook, "DELETE", WEBHOOK, "Delete a webhook", status=204, tag=TAG),
    authenticated(
        list_deliveries,
        "GET",
        WEBHOOK + "/deliveries",
        "A webhook's delivery log, newest first, with every attempt",
        response=list[DeliveryView],
        query=("limit",),
        tag=TAG,
    ),
    authenticated(
        replay_delivery,
        "POST",
        WEBHOOKS + "/deliveries/{delivery_id}/replay",
        "Send a delivery's event again (a new delivery, the same body)",
        status=201,
        response=Replayed,
        tag=TAG,
    ),
]
