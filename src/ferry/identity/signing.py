"""The SDK-HMAC-SHA256 request signature of Huawei Cloud SDKs (SWR-API.md section 6).

Pure functions: the HTTP layer extracts the parts of a request, this module rebuilds the
canonical request and compares signatures in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW = timedelta(minutes=15)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
CONTENT_SHA256 = "x-sdk-content-sha256"
# What a signature must cover: when it was made, and where it was meant to go. The Python SDK
# signs the host; the Go SDK signs no host but the project, which is one account in one region.
# Without either, a request signed for one region replays against another that shares the key;
# without the date, forever.
REGION_BINDING = ("host", "x-project-id")
_AUTHORIZATION_RE = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-fA-F]{64})$"
)


class SignatureError(Exception):
    """Why a signed request was refused, in APIGW's words."""


@dataclass(frozen=True)
class SignedAuthorization:
    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(header: str) -> SignedAuthorization:
    match = _AUTHORIZATION_RE.match(header.strip())
    if match is None:
        raise SignatureError("verify aksk signature fail: malformed Authorization header")
    headers = tuple(match.group(2).lower().split(";"))
    return SignedAuthorization(match.group(1), headers, match.group(3).lower())


def check_date(value: str | None, now: datetime | None = None) -> None:
    if not value:
        raise SignatureError("verify aksk signature fail: X-Sdk-Date missing")
    try:
        signed_at = datetime.strptime(value, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("verify aksk signature fail: bad X-Sdk-Date") from None
    if abs((now or datetime.now(UTC)) - signed_at) > MAX_SKEW:
        raise SignatureError("verify aksk signature fail: X-Sdk-Date outside the 15 minute window")


def canonical_uri(raw_path: str) -> str:
    # Decoded exactly once, as the SDK does: "%2524" stays "%24" and is re-encoded as "%2524".
    segments = [quote(segment, safe="~") for segment in unquote(raw_path).split("/")]
    uri = "/".join(segments)
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(raw_query: str) -> str:
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    signed_headers: tuple[str, ...],
    body: bytes,
) -> str:
    ordered = sorted(signed_headers)
    block = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in ordered)
    # The SDK puts a declared body hash in the canonical request in place of the body's own.
    # Only a signed declaration counts; verify() then requires it to be the body's real hash.
    content_sha = headers.get(CONTENT_SHA256) if CONTENT_SHA256 in signed_headers else None
    payload_hash = content_sha if body and content_sha else hashlib.sha256(body).hexdigest()
    parts = [
        method.upper(),
        canonical_uri(raw_path),
        canonical_query(raw_query),
        block,
        ";".join(ordered),
        payload_hash,
    ]
    return "\n".join(parts)


def signature(secret_key: str, sdk_date: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{sdk_date}\n{digest}"
    return hmac.new(secret_key.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def check_coverage(
    auth: SignedAuthorization, headers: dict[str, str], own_host: Callable[[str], bool]
) -> None:
    """The signature must cover the date and the host or the project; a signed host must be this
    region's (the project is checked once the key's account is known: `check_project`)."""
    if "x-sdk-date" not in auth.signed_headers:
        raise SignatureError("verify aksk signature fail: SignedHeaders must include x-sdk-date")
    if not any(name in auth.signed_headers for name in REGION_BINDING):
        raise SignatureError("verify aksk signature fail: SignedHeaders must include host or x-project-id")
    if "host" in auth.signed_headers and not own_host(headers.get("host", "")):
        raise SignatureError("verify aksk signature fail: the request was signed for another host")


def check_project(auth: SignedAuthorization, headers: dict[str, str], project_id: str) -> None:
    """A signed X-Project-Id must be the key's account's project in this region."""
    if "x-project-id" in auth.signed_headers and headers.get("x-project-id", "").strip() != project_id:
        raise SignatureError("verify aksk signature fail: the request was signed for another project")


def verify(
    auth: SignedAuthorization,
    secret_key: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
) -> None:
    """Raises SignatureError unless the request, body included, was signed with this secret key."""
    sdk_date = headers.get("x-sdk-date")
    check_date(sdk_date)
    assert sdk_date is not None
    canonical = canonical_request(method, raw_path, raw_query, headers, auth.signed_headers, body)
    expected = signature(secret_key, sdk_date, canonical)
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureError("verify aksk signature fail")
    declared = headers.get(CONTENT_SHA256) if CONTENT_SHA256 in auth.signed_headers else None
    if body and declared is not None and declared.lower() != hashlib.sha256(body).hexdigest():
        # UNSIGNED-PAYLOAD, or another body's hash: the signature would not protect this body.
        raise SignatureError("verify aksk signature fail: X-Sdk-Content-Sha256 is not the body's hash")


def docker_login_password(access_key: str, secret_key: str) -> str:
    """SWR's long-term docker login password for `<region>@<AK>`."""
    return hmac.new(secret_key.encode(), access_key.encode(), hashlib.sha256).hexdigest()


def sign_headers(
    access_key: str,
    secret_key: str,
    method: str,
    url_path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    now: datetime | None = None,
) -> dict[str, str]:
    """Headers that sign a request the way the SDK does (client side, for calls to peers)."""
    signed = {k.lower(): v for k, v in headers.items()}
    signed["x-sdk-date"] = (now or datetime.now(UTC)).strftime(DATE_FORMAT)
    names = tuple(sorted(n for n in signed if "_" not in n))
    canonical = canonical_request(method, url_path, query, signed, names, body)
    value = signature(secret_key, signed["x-sdk-date"], canonical)
    authorization = f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(names)}, Signature={value}"
    return {"X-Sdk-Date": signed["x-sdk-date"], "Authorization": authorization}
