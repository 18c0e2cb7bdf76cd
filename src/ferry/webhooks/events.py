"""Events as CloudEvents 1.0 in structured JSON mode (content type application/cloudevents+json).

The body is made once, when the event is recorded, and kept byte for byte: the signature is over
those bytes and a replay sends them again.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

CONTENT_TYPE = "application/cloudevents+json"
IMAGE_PUSHED = "ferry.image.pushed"
TAG_SYNCED = "ferry.tag.synced"
SYNC_FAILED = "ferry.sync.failed"
SYNC_CONFLICT = "ferry.sync.conflict"
DRIFT_REPAIRED = "ferry.drift.repaired"
EVENT_TYPES = (IMAGE_PUSHED, TAG_SYNCED, SYNC_FAILED, SYNC_CONFLICT, DRIFT_REPAIRED)


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    body: bytes


def source_of(region: str) -> str:
    """The CloudEvents `source`: which region's Ferry saw the event."""
    return f"ferry/{region}"


def make_event(region: str, event_type: str, subject: str, data: dict[str, Any]) -> Event:
    event_id = uuid.uuid4().hex
    document = {
        "specversion": "1.0",
        "id": event_id,
        "source": source_of(region),
        "type": event_type,
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }
    return Event(event_id, event_type, json.dumps(document, separators=(",", ":")).encode())
