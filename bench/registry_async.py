"""A small asyncio (aiohttp) OCI client for benchmarks that push or poll thousands of tags.

tests/support/registry_client.py is the synchronous twin the tests use; this one speaks the same
Docker token protocol (one bearer token per repository scope, fetched again on a 401 because
tokens expire after FERRY_REGISTRY_TOKEN_TTL) so that many requests can be in flight at once.
Blobs go up monolithically (`POST …/blobs/uploads/?digest=`, one request per blob).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp

from ferry.images.digests import sha256_digest
from tests.support.layouts import OCI_MANIFEST
from tests.support.registry_client import parse_challenge

ACCEPT = f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"


class RegistryError(RuntimeError):
    pass


class AsyncRegistry:
    """Registry calls against one region as one user; tokens cached per repository."""

    def __init__(self, session: aiohttp.ClientSession, base: str, user: str, password: str) -> None:
        self.session = session
        self.base = base.rstrip("/")
        self.basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.tokens: dict[str, str] = {}
        self.challenge: dict[str, str] | None = None
        self.requests = 0  # every request sent, token requests included

    async def _token(self, repository: str) -> str:
        if self.challenge is None:
            async with self.session.get(f"{self.base}/v2/") as response:
                self.challenge = parse_challenge(response.headers["WWW-Authenticate"])
            self.requests += 1
        params = {"service": self.challenge.get("service", ""), "scope": f"repository:{repository}:pull,push"}
        headers = {"Authorization": f"Basic {self.basic}"}
        async with self.session.get(self.challenge["realm"], params=params, headers=headers) as response:
            self.requests += 1
            if response.status != 200:
                raise RegistryError(f"token for {repository}: HTTP {response.status}")
            token = str((await response.json())["token"])
        self.tokens[repository] = token
        return token

    async def request(
        self, method: str, repository: str, path: str, **kwargs: Any
    ) -> tuple[int, dict[str, str], bytes]:
        """One call under /v2/<repository>/; status, headers and body. Retried once on a 401."""
        url = f"{self.base}/v2/{repository}/{path}"
        base_headers = dict(kwargs.pop("headers", {}) or {})
        for attempt in range(2):
            token = self.tokens.get(repository) if attempt == 0 else None
            token = token or await self._token(repository)
            headers = base_headers | {"Authorization": f"Bearer {token}"}
            async with self.session.request(method, url, headers=headers, **kwargs) as response:
                self.requests += 1
                body = await response.read()
                if response.status != 401:
                    return response.status, dict(response.headers), body
        return response.status, dict(response.headers), body

    async def push_blob(self, repository: str, data: bytes) -> str:
        digest = sha256_digest(data)
        status, _, body = await self.request(
            "POST",
            repository,
            "blobs/uploads/",
            params={"digest": digest},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if status != 201:
            raise RegistryError(f"blob {digest} to {repository}: HTTP {status} {body[:300]!r}")
        return digest

    async def put_manifest(self, repository: str, tag: str, manifest: dict[str, Any]) -> str:
        payload = json.dumps(manifest).encode()
        status, _, body = await self.request(
            "PUT",
            repository,
            f"manifests/{tag}",
            data=payload,
            headers={"Content-Type": str(manifest.get("mediaType", OCI_MANIFEST))},
        )
        if status != 201:
            raise RegistryError(f"manifest {repository}:{tag}: HTTP {status} {body[:300]!r}")
        return sha256_digest(payload)

    async def tag_digest(self, repository: str, tag: str) -> str | None:
        """The digest the tag names now, or None while it does not exist."""
        status, headers, body = await self.request(
            "HEAD", repository, f"manifests/{tag}", headers={"Accept": ACCEPT}
        )
        if status == 404:
            return None
        if status != 200:
            raise RegistryError(f"HEAD {repository}:{tag}: HTTP {status} {body[:300]!r}")
        return headers.get("Docker-Content-Digest")


async def iam_token(session: aiohttp.ClientSession, base: str, user: str, password: str, region: str) -> str:
    """An IAM token (POST /v3/auth/tokens, password method) for management API calls."""
    identity = {"methods": ["password"], "password": {"user": {"name": user, "password": password}}}
    body = {"auth": {"identity": identity, "scope": {"project": {"name": region}}}}
    async with session.post(f"{base.rstrip('/')}/v3/auth/tokens", json=body) as response:
        if response.status != 201:
            raise RegistryError(f"IAM token: HTTP {response.status} {(await response.text())[:300]}")
        return response.headers["X-Subject-Token"]
