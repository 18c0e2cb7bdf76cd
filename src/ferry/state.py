"""What every request handler can reach: settings and the services built from them."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ferry.config import Settings
from ferry.identity.iam_tokens import IamTokens
from ferry.identity.registry_tokens import RegistryTokens
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

    def base_url(self, request: web.Request) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return f"{request.scheme}://{request.host}"


STATE = web.AppKey("ferry", AppState)


def state(request: web.Request) -> AppState:
    return request.app[STATE]
