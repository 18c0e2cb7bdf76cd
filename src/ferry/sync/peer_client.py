"""Talking to a peer region: the OCI Distribution API (Docker token auth) and the management API.

Nothing here is Ferry-specific on the registry side, so a peer can be any conformant registry.
The peer's credential goes into request headers only; it is never logged or put in messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

import aiohttp
from yarl import URL

from ferry.config import Peer
from ferry.identity.signing import docker_login_password, sign_headers

# 507: the peer's storage is full; it takes the copy once space returns.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 507})
_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=120)


class PeerError(Exception):
    """A failed call to a peer; `retryable` says whether trying later can help."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None, status: int = 0):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


@dataclass
class PeerResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def error_text(body: bytes) -> str:
    try:
        document = json.loads(body)
        if isinstance(document, dict):
            if document.get("errors"):
                first = document["errors"][0]
                return str(first.get("message") or first.get("errorMessage") or first.get("code"))
            if "error_msg" in document:
                return str(document["error_msg"])
    except (ValueError, TypeError, AttributeError, IndexError):
        pass
    return body[:200].decode(errors="replace")


class PeerClient:
    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.base = peer.url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, str] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _basic(self) -> aiohttp.BasicAuth:
        if self.peer.ak:
            password = docker_login_password(self.peer.ak, self.peer.sk.get_secret_value())
            return aiohttp.BasicAuth(f"{self.peer.id}@{self.peer.ak}", password)
        return aiohttp.BasicAuth(self.peer.user, self.peer.password.get_secret_value())

    def url(self, path_or_location: str) -> str:
        return urljoin(self.base + "/", path_or_location)

    # Registry side

    async def registry(
        self,
        method: str,
        url: str,
        repository: str,
        *,
        data: bytes | AsyncIterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        read_body: bool = True,
    ) -> PeerResponse:
        """One registry call with a bearer token for `repository`; 5xx/429/network errors raise."""
        for attempt in range(2):
            request_headers = dict(headers or {})
            if repository in self._tokens:
                request_headers["Authorization"] = f"Bearer {self._tokens[repository]}"
            try:
                async with self.session.request(
                    method, self.url(url), data=data, headers=request_headers
                ) as response:
                    body = await response.read() if read_body else b""
                    result = PeerResponse(response.status, dict(response.headers), body)
                    if response.status == 401 and attempt == 0:
                        await self._authenticate(repository, response.headers.get("WWW-Authenticate", ""))
                        if isinstance(data, AsyncIterable):
                            # A consumed stream cannot be replayed: the job retries with the token.
                            raise PeerError("authentication renewed", retryable=True, retry_after=0)
                        continue
            except (aiohttp.ClientError, TimeoutError) as error:
                raise PeerError(f"region {self.peer.id} unreachable: {type(error).__name__}", True) from None
            self._raise_for_retryable(result)
            return result
        raise PeerError(f"region {self.peer.id} refused the credentials", retryable=False, status=401)

    def _raise_for_retryable(self, response: PeerResponse) -> None:
        if response.status in RETRYABLE_STATUSES:
            raise PeerError(
                f"region {self.peer.id} answered {response.status}: {error_text(response.body)}",
                retryable=True,
                retry_after=_retry_after(response.headers),
                status=response.status,
            )

    async def _authenticate(self, repository: str, challenge: str) -> None:
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() != "bearer":
            raise PeerError(
                f"region {self.peer.id} asks for {scheme or 'no'} auth", retryable=False, status=401
            )
        values = dict(re.findall(r'(\w+)="([^"]*)"', params))
        query = {"service": values.get("service", ""), "scope": f"repository:{repository}:pull,push"}
        realm = values.get("realm", self.base + "/v2/token")
        try:
            async with self.session.get(f"{realm}?{urlencode(query)}", auth=self._basic()) as response:
                body = await response.read()
                if response.status != 200:
                    self._raise_for_retryable(PeerResponse(response.status, dict(response.headers), body))
                    raise PeerError(
                        f"region {self.peer.id} refused the peer credential: {error_text(body)}",
                        retryable=False,
                        status=response.status,
                    )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise PeerError(f"region {self.peer.id} unreachable: {type(error).__name__}", True) from None
        document = json.loads(body)
        self._tokens[repository] = str(document.get("token") or document.get("access_token"))

    # Management side

    async def manage(self, method: str, path: str, body: Any = None) -> PeerResponse:
        payload = b"" if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Host": URL(self.base).raw_authority}
        url = URL(self.base + path, encoded=True)
        if self.peer.ak:
            headers |= sign_headers(
                self.peer.ak,
                self.peer.sk.get_secret_value(),
                method,
                url.raw_path,
                url.raw_query_string,
                headers,
                payload,
            )
        else:
            headers["X-Auth-Token"] = await self._iam_token()
        try:
            async with self.session.request(method, url, data=payload or None, headers=headers) as response:
                result = PeerResponse(response.status, dict(response.headers), await response.read())
        except (aiohttp.ClientError, TimeoutError) as error:
            raise PeerError(f"region {self.peer.id} unreachable: {type(error).__name__}", True) from None
        self._raise_for_retryable(result)
        return result

    async def _iam_token(self) -> str:
        user = {"name": self.peer.user, "password": self.peer.password.get_secret_value()}
        identity = {"methods": ["password"], "password": {"user": user}}
        body = {"auth": {"identity": identity, "scope": {"project": {"name": self.peer.id}}}}
        try:
            async with self.session.post(self.base + "/v3/auth/tokens", json=body) as response:
                if response.status != 201:
                    raise PeerError(f"region {self.peer.id} refused the peer credential", False, status=401)
                return response.headers["X-Subject-Token"]
        except (aiohttp.ClientError, TimeoutError) as error:
            raise PeerError(f"region {self.peer.id} unreachable: {type(error).__name__}", True) from None
