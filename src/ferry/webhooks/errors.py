"""What can go wrong managing webhooks, in words, without HTTP (manage/errors.py maps them)."""

from __future__ import annotations


class WebhookError(Exception):
    """A refused webhook operation; `str(error)` is a message for a person (never the secret)."""


class WebhookInvalid(WebhookError):
    """A URL, event type or field the webhook cannot have."""


class WebhookUnknown(WebhookError):
    def __init__(self, webhook_id: int, organization: str) -> None:
        super().__init__(f"webhook {webhook_id} not found in organization '{organization}'")


class DeliveryUnknown(WebhookError):
    def __init__(self, delivery_id: int, organization: str) -> None:
        super().__init__(f"webhook delivery {delivery_id} not found in organization '{organization}'")
