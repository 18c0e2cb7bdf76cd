"""What every request handler can reach: settings and the services built from them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aiohttp import web

from ferry.config import Settings, in_networks
from ferry.identity.iam_tokens import IamTokens
from ferry.identity.registry_tokens import RegistryTokens
from ferry.identity.throttle import LoginThrottle
from ferry.images.events import TagEvents
from ferry.images.uploads import Uploads
from ferry.metadata.db import Database
from ferry.storage import BlobStore
from ferry.sync.peer_client import PeerClient


@dataclass
class AppState:
    settings: Settings
    db: Database
    store: BlobStore
    uploads: Uploads
    registry_tokens: RegistryTokens
    iam_tokens: IamTokens
    peer_clients: dict[str, PeerClient]
    tag_events: TagEvents
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)

    def base_url(self, request: web.Request) -> str:
        """The URL clients reach this region at: the public URL when set, else what a trusted
        proxy says the client asked for, else this request's own scheme and Host."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        proto, host = self.forwarded(request)
        return f"{proto or request.scheme}://{host or request.host}"

    def behind_trusted_proxy(self, request: web.Request) -> bool:
        return in_networks(request.remote or "", self.settings.trusted_proxies)

    def forwarded(self, request: web.Request) -> tuple[str | None, str | None]:
        """The scheme and host a trusted proxy forwarded (Forwarded, else X-Forwarded-Proto and
        -Host); (None, None) from anyone else. Of a list, the last entry counts: the one the
        trusted proxy itself wrote."""
        if not self.behind_trusted_proxy(request):
            return None, None
        element = request.forwarded[-1] if request.forwarded else {}
        proto = element.get("proto") or _last(request.headers.get("X-Forwarded-Proto"))
        host = element.get("host") or _last(request.headers.get("X-Forwarded-Host"))
        proto = proto.lower() if proto and proto.lower() in ("http", "https") else None
        return proto, host if host and _AUTHORITY.fullmatch(host) else None

    def client_host(self, request: web.Request) -> str:
        """The Host the client sent: forwarded by a trusted proxy, else this request's."""
        return self.forwarded(request)[1] or request.host

    def client_address(self, request: web.Request) -> str:
        """The caller's address: the peer's, or the one a trusted proxy says it forwarded for.

        Only the last X-Forwarded-For entry counts: it is the one the trusted proxy wrote.
        """
        remote = request.remote or ""
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded and in_networks(remote, self.settings.trusted_proxies):
            return forwarded.split(",")[-1].strip() or remote
        return remote


# A host name, IPv4 or [IPv6] address, and an optional port: nothing that could break out of a
# header value or a URL (quotes, spaces, slashes, @).
_AUTHORITY = re.compile(r"(?:[A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def _last(header: str | None) -> str | None:
    return header.split(",")[-1].strip() if header else None


STATE = web.AppKey("ferry", AppState)
# What the HTTP layers leave on a request for its access line: its id and who called.
REQUEST_ID = web.RequestKey("ferry.request_id", str)
CALLER = web.RequestKey("ferry.caller", str)
# The access key a management request was signed with (none for an IAM token).
SIGNING_KEY = web.RequestKey("ferry.signing_key", str)


def state(request: web.Request) -> AppState:
    return request.app[STATE]
