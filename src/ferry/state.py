"""What every request handler can reach: settings and the services built from them."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field

from aiohttp import web

from ferry.config import Settings
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
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return f"{request.scheme}://{request.host}"

    def client_address(self, request: web.Request) -> str:
        """The caller's address: the peer's, or the one a trusted proxy says it forwarded for.

        Only the last X-Forwarded-For entry counts: it is the one the trusted proxy wrote.
        """
        remote = request.remote or ""
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded and _is_trusted(remote, self.settings.trusted_proxies):
            return forwarded.split(",")[-1].strip() or remote
        return remote


@functools.lru_cache(maxsize=64)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _is_trusted(remote: str, proxies: list[str]) -> bool:
    if not proxies:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in network for network in _networks(tuple(proxies)))


STATE = web.AppKey("ferry", AppState)
# What the HTTP layers leave on a request for its access line: its id and who called.
REQUEST_ID = web.RequestKey("ferry.request_id", str)
CALLER = web.RequestKey("ferry.caller", str)


def state(request: web.Request) -> AppState:
    return request.app[STATE]
