"""Stable reason codes for a job's failure, retry or conflict (the `reason` column).

A code is for machines (the API, metrics, scripts); the message beside it is for people. Codes
never change meaning; new ones may be added.
"""

from __future__ import annotations

from ferry.sync.errors import PeerError

UNREACHABLE = "unreachable"
THROTTLED = "throttled"
PEER_5XX = "peer_5xx"
PEER_4XX = "peer_4xx"
REFUSED = "refused"
TARGET_ORG_MISSING = "target_org_missing"
REJECTED = "rejected"
NOT_VISIBLE = "not_visible"
UPLOAD_POSITION = "upload_position"
REAUTH = "reauth"
STALE_BLOBS = "stale_blobs"
NOT_PEER = "not_peer"
SOURCE_GONE = "source_gone"
TIMEOUT = "timeout"
INTERNAL = "internal"
WORKER_STOPPED = "worker_stopped"
CONFLICT = "conflict"
RULE_DELETED = "rule_deleted"
CANCELLED = "cancelled"
NO_PLATFORM = "no_platform"

# What each code means, as a clause for "retrying in 40 s: …" / "will not retry: …".
_WORDS = {
    UNREACHABLE: "region {region} unreachable",
    THROTTLED: "region {region} is throttling the copy (429)",
    PEER_5XX: "region {region} answered with a server error",
    PEER_4XX: "region {region} refused a request",
    REFUSED: "the copy is not allowed (credentials or the user's rights)",
    TARGET_ORG_MISSING: "target organization missing in {region}, or the user may not push to it there",
    REJECTED: "region {region} rejected the image",
    NOT_VISIBLE: "the tag did not resolve to the copied digest in {region}",
    UPLOAD_POSITION: "a blob upload to {region} lost its position",
    REAUTH: "the token for {region} was renewed",
    STALE_BLOBS: "{region} no longer held a blob it had confirmed shortly before",
    NOT_PEER: "region {region} is not a configured peer",
    SOURCE_GONE: "the tag no longer exists at the source",
    TIMEOUT: "gave up: retried past the deadline (FERRY_SYNC_RETRY_SECONDS)",
    INTERNAL: "an internal error (see the server log)",
    WORKER_STOPPED: "the worker running it stopped",
    CONFLICT: "{region} holds another image and override is off",
    RULE_DELETED: "the automatic rule that queued it was deleted before it ran",
    CANCELLED: "cancelled by hand",
    NO_PLATFORM: "the index has none of the platforms the rule copies",
}
CODES = frozenset(_WORDS)


def of_error(error: PeerError) -> str:
    """The code for a failed call to a peer (its `cause`, which metrics use too)."""
    cause = error.cause
    return cause if cause in CODES else PEER_4XX


def describe(reason: str | None, region: str) -> str:
    """A clause saying what the code means, for a person."""
    words = _WORDS.get(reason or "", reason or "unknown")
    return words.format(region=region)
