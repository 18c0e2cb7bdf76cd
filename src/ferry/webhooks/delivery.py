"""The delivery loop: claims deliveries from the outbox under a lease (as sync/queue.py claims
jobs), POSTs each with a timeout, records every try as a WebhookAttempt (the delivery log), and
retries with exponential backoff and jitter until a 2xx, or fails the delivery after
`webhook_max_attempts` tries or `webhook_give_up_seconds`.

The lease outlasts one POST (twice the timeout, plus a second), so it needs no renewal; a
process killed mid-POST leaves a running delivery whose lease runs out, and any process claims
it again: delivery is at least once, and the receiver can tell a repeat by the event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from aiohttp.abc import ResolveResult
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.config import Settings
from ferry.metadata.commits import CommitWakeup
from ferry.metadata.db import Database
from ferry.metadata.models import utcnow
from ferry.metadata.outbox_models import Webhook, WebhookAttempt, WebhookDelivery
from ferry.observability import metrics
from ferry.webhooks.outbox import DELIVERIES_RECORDED
from ferry.webhooks.signing import request_headers
from ferry.webhooks.urls import check_url, forbidden_address

log = logging.getLogger("ferry.webhooks")
WAITING, RUNNING, SUCCESS, FAILED = "waiting", "running", "success", "failed"
MAX_BACKOFF_SECONDS = 3600.0
PRUNE_EVERY_SECONDS = 3600.0


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    attempt: int
    url: str
    secret: str
    event_id: str
    event_type: str
    body: bytes
    created_at_age: float


@dataclass(frozen=True)
class Tried:
    code: int | None
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


class CheckedResolver(aiohttp.ThreadedResolver):
    """Resolves as usual, then refuses the connection when any address is forbidden: the check
    is on the addresses this connection uses, not on an earlier lookup (DNS rebinding)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await super().resolve(host, port, family)
        for result in found:
            if forbidden_address(result["host"]):
                raise OSError(f"{host} resolves to {result['host']}, which webhooks may not reach")
        return found


def backoff_seconds(base: float, attempt: int) -> float:
    """About base · 2^(attempt-1), at most an hour, with jitter so that retries spread out."""
    return min(MAX_BACKOFF_SECONDS, base * 2 ** min(attempt - 1, 20)) * random.uniform(0.5, 1.0)


class DeliveryLoop:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(seconds=2 * settings.webhook_timeout_seconds + 1)
        # Idle slots, each waiting on its own event: a wake-up starts one of them, which wakes
        # the next when it found work, so an idle process polls with one read, not one a slot.
        self._idle: list[asyncio.Event] = []
        self._commits = CommitWakeup(DELIVERIES_RECORDED, self._nudge)
        self._tasks: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None
        self._pruned_at = 0.0

    def start(self) -> None:
        if not self.settings.webhook_slots:
            return
        self._commits.start()
        resolver = None if self.settings.webhook_allow_private else CheckedResolver()
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=resolver),
            timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout_seconds),
        )
        self._tasks = [
            asyncio.create_task(self._slot(), name=f"ferry-webhook-{n}")
            for n in range(self.settings.webhook_slots)
        ]
        self._tasks.append(asyncio.create_task(self._poll(), name="ferry-webhook-poll"))

    def _nudge(self) -> None:
        """Starts one idle slot (none idle: each busy one looks again when it is done)."""
        if self._idle:
            self._idle.pop(0).set()

    async def _poll(self) -> None:
        """The fallback for what no wake-up reports (deliveries recorded by other processes,
        retries whose time came, leases that ran out): every `sync_poll_seconds` (default 1 s)
        one idle slot looks, one read."""
        while True:
            await asyncio.sleep(self.settings.sync_poll_seconds)
            self._nudge()

    async def stop(self) -> None:
        self._commits.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _slot(self) -> None:
        while True:
            try:
                claimed = await self.claim()
            except Exception:
                log.exception("claiming a webhook delivery failed")
                claimed = None
            if claimed is None:
                await self._prune_when_due()
                woken = asyncio.Event()
                self._idle.append(woken)
                try:
                    await woken.wait()
                finally:
                    with contextlib.suppress(ValueError):
                        self._idle.remove(woken)
                continue
            self._nudge()  # there may be more: let another slot look too
            try:
                await self.finish(claimed, await self.send(claimed))
            except Exception:
                # The lease runs out and the delivery is claimed again.
                log.exception("webhook delivery %s: recording the attempt failed", claimed.delivery_id)

    async def _prune_when_due(self) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = time.monotonic()
        try:
            await self.prune()
        except Exception:
            log.exception("pruning old webhook deliveries failed")

    async def prune(self) -> int:
        """Deletes finished deliveries older than `webhook_keep_days` (their attempts go with
        them); returns how many."""
        cutoff = utcnow() - timedelta(days=self.settings.webhook_keep_days)
        async with self.db.write() as session:
            result = await session.execute(
                delete(WebhookDelivery).where(
                    WebhookDelivery.status.in_((SUCCESS, FAILED)), WebhookDelivery.finished_at < cutoff
                )
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def claim(self) -> Claimed | None:
        now = utcnow()
        claimable = and_(
            or_(
                and_(WebhookDelivery.status == WAITING, WebhookDelivery.next_attempt_at <= now),
                and_(WebhookDelivery.status == RUNNING, WebhookDelivery.lease_expires_at < now),
            ),
            Webhook.enabled.is_(True),
        )
        query = (
            select(WebhookDelivery, Webhook)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(claimable)
            .order_by(WebhookDelivery.id)
            .limit(1)
        )
        async with self.db.read() as session:
            if (await session.execute(query)).first() is None:
                await self._gauge_depth(session)
                return None
        async with self.db.write() as session:
            if not self.db.is_sqlite:
                query = query.with_for_update(of=WebhookDelivery, skip_locked=True)
            row = (await session.execute(query)).first()
            if row is None:
                return None
            delivery, hook = row
            delivery.status, delivery.lease_owner = RUNNING, self.owner
            delivery.lease_expires_at = now + self.lease
            delivery.attempts += 1
            return Claimed(
                delivery.id,
                delivery.attempts,
                hook.url,
                hook.secret,
                delivery.event_id,
                delivery.event_type,
                delivery.body,
                (now - delivery.created_at).total_seconds(),
            )

    @staticmethod
    async def _gauge_depth(session: AsyncSession) -> None:
        """Deliveries not yet final (every process sets the same count; the scrape takes the max)."""
        query = (
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.status.in_((WAITING, RUNNING)))
        )
        metrics.WEBHOOK_OUTBOX_DEPTH.set(int(await session.scalar(query) or 0))

    async def send(self, claimed: Claimed) -> Tried:
        assert self._http is not None
        started = time.monotonic()
        code: int | None = None
        error = ""
        try:
            check_url(claimed.url, self.settings.webhook_allow_private)  # names: CheckedResolver
            headers = request_headers(claimed.secret, claimed.event_id, claimed.event_type, claimed.body)
            async with self._http.post(
                claimed.url, data=claimed.body, headers=headers, allow_redirects=False
            ) as r:
                code = r.status
                await r.content.read(64 * 1024)  # a little of the answer, so the connection is reusable
                if not 200 <= code < 300:
                    error = f"receiver answered {code}"
        except TimeoutError:
            error = f"no answer within {self.settings.webhook_timeout_seconds:g} s"
        except aiohttp.ClientError as failure:
            error = f"{type(failure).__name__}: {failure}"
        except Exception as failure:  # a refused URL (UrlRefused) or anything unexpected
            error = str(failure) or type(failure).__name__
        return Tried(code, error[:1000], int((time.monotonic() - started) * 1000))

    async def finish(self, claimed: Claimed, tried: Tried) -> None:
        now = utcnow()
        settings = self.settings
        if tried.ok:
            status, result = SUCCESS, "success"
        elif (
            claimed.attempt >= settings.webhook_max_attempts
            or claimed.created_at_age >= settings.webhook_give_up_seconds
        ):
            status, result = FAILED, "failed"
        else:
            status, result = WAITING, "retry"
        values: dict[str, object] = {
            "status": status,
            "lease_owner": None,
            "lease_expires_at": None,
            "response_code": tried.code,
            "last_error": tried.error,
        }
        if status == WAITING:
            delay = backoff_seconds(settings.webhook_retry_base_seconds, claimed.attempt)
            values["next_attempt_at"] = now + timedelta(seconds=delay)
        else:
            values["finished_at"] = now
        async with self.db.write() as session:
            updated = await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == claimed.delivery_id, WebhookDelivery.lease_owner == self.owner)
                .values(**values)
            )
            if not updated.rowcount:  # type: ignore[attr-defined]
                log.warning(
                    "webhook delivery %s: lease lost before the attempt was recorded", claimed.delivery_id
                )
                return
            session.add(
                WebhookAttempt(
                    delivery_id=claimed.delivery_id,
                    number=claimed.attempt,
                    started_at=now - timedelta(milliseconds=tried.duration_ms),
                    duration_ms=tried.duration_ms,
                    response_code=tried.code,
                    error=tried.error,
                )
            )
        metrics.WEBHOOK_DELIVERIES.labels(result).inc()
        if status == FAILED:
            log.warning(
                "webhook delivery %s failed after %d attempts: %s",
                claimed.delivery_id,
                claimed.attempt,
                tried.error,
            )
