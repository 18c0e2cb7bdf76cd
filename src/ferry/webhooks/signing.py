"""The signature a receiver checks: HMAC-SHA256 of the exact body bytes with the webhook's secret."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ferry.webhooks.events import CONTENT_TYPE

SIGNATURE_HEADER = "X-Ferry-Signature"
EVENT_ID_HEADER = "X-Ferry-Event-Id"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(signature(secret, body), header)


def request_headers(secret: str, event_id: str, event_type: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": CONTENT_TYPE,
        SIGNATURE_HEADER: signature(secret, body),
        EVENT_ID_HEADER: event_id,
        "ce-id": event_id,
        "ce-type": event_type,
        "User-Agent": "ferry-webhooks/1",
    }
