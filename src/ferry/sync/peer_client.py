"""Talking to a peer region: the OCI Distribution API (Docker token auth) and the management API.

Nothing here is Ferry-specific on the registry side, so a peer can be any conformant registry.
The peer's credential goes into request headers only; it is never logged or put in messages.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

import aiohttp
import jwt
from yarl import URL

from ferry.config import Peer
from ferry.identity.signing import docker_login_password, sign_headers
from ferry.sync.bandwidth import Lane, PeerBandwidth
from ferry.sync.concurrency import PeerConcurrency
from ferry.sync.errors import PeerError

__all__ = ["Actor", "PeerClient", "PeerError", "PeerResponse", "error_text"]

# 507: the peer's storage is full; it takes the copy once space returns.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 507})
# Answers that ask every client to hold off for Retry-After seconds: the whole peer waits.
HOLD_OFF_STATUSES = frozenset({429, 503})
# A request without a body to stream is sent again after a hold-off this many times in a row
# before the attempt fails (and the job waits its turn again).
HOLD_OFF_RETRIES = 3
# A streamed upload's answer may come long after our last byte left: the peer still reads what
# the sockets hold, then verifies and stores the blob. So its wait for an answer keeps 120 s.
_UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=120)
# Every other call: a peer that accepts connections but sends nothing for this long (a hung
# process) counts as unreachable. A download that keeps sending is never cut (the limit is on
# the silence between reads, not on the whole transfer).
DEFAULT_STALL_SECONDS = 15.0


def _stall_timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_connect=seconds, sock_read=seconds)


@dataclass(frozen=True)
class Actor:
    """Whom a sync copies for. The peer is told, so that it grants only what this user may do
    there (Ferry peers intersect the credential's rights with the user's of the same name)."""

    account: str
    user: str

    def __str__(self) -> str:
        return f"user {self.user} (account {self.account})"


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


def _is_challenge(response: aiohttp.ClientResponse) -> bool:
    """401, or 403 with a Bearer challenge: a token (or a wider one) may help."""
    return response.status == 401 or response.headers.get("WWW-Authenticate", "").lower().startswith("bearer")


def _granted(token: str, repository: str) -> frozenset[str] | None:
    """The actions a Docker-token JWT grants on `repository` (its `access` claim), if it is one."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    entries = claims.get("access")
    if not isinstance(entries, list):
        return None
    actions: set[str] = set()
    for entry in entries:
        if isinstance(entry, dict) and entry.get("type") == "repository" and entry.get("name") == repository:
            actions |= {str(a) for a in entry.get("actions") or []}
    return frozenset(actions)


# A token shared with a job that asked while it was being fetched has this long left at least.
TOKEN_MARGIN = 30.0
# The lifetime of a token whose answer names none (Docker's token spec says 60 s).
DEFAULT_TOKEN_SECONDS = 60.0


@dataclass(frozen=True)
class _Token:
    value: str
    granted: frozenset[str] | None  # the actions its `access` claim grants, if it says
    expires: float  # time.monotonic()
    fetched: float  # time.monotonic() when the peer answered

    def fresh(self) -> bool:
        return time.monotonic() < self.expires - TOKEN_MARGIN


def _lifetime(document: Any, token: str) -> float:
    """Seconds the peer says the token lives: `expires_in`, else the JWT's `exp`, else 60."""
    expires_in = document.get("expires_in") if isinstance(document, dict) else None
    if isinstance(expires_in, int | float) and expires_in > 0:
        return float(expires_in)
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        exp = None
    if isinstance(exp, int | float):
        return max(0.0, float(exp) - time.time())
    return DEFAULT_TOKEN_SECONDS


def _ssl_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


class PeerClient:
    def __init__(
        self,
        peer: Peer,
        stall_seconds: float = DEFAULT_STALL_SECONDS,
        bandwidth_share: int = 1,
        job_slots: int = 32,
    ) -> None:
        self.peer = peer
        self.bandwidth = PeerBandwidth(peer, bandwidth_share)
        self.concurrency = PeerConcurrency(peer.id, peer.max_jobs or job_slots)
        self._timeout = _stall_timeout(stall_seconds)
        self.base = peer.url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[tuple[str, Actor | None], _Token] = {}
        # One token fetch at a time per (repository, actor): jobs of one repository that start
        # together share the first one's token instead of each fetching their own.
        self._fetching: dict[tuple[str, Actor | None], asyncio.Lock] = {}
        self._challenge: str | None = None
        # No request to this peer before this moment (time.monotonic()): the latest
        # Retry-After it sent with a 429 or 503, honoured by every job of the process.
        self._not_before = 0.0

    async def _held_off(self) -> None:
        """Waits while the peer asked us to hold off."""
        # A sleep to a deadline that another 429 may push further: looked at again after each.
        while (delay := self._not_before - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

    async def _before_request(self, _session: Any, _context: Any, _params: Any) -> None:
        await self._held_off()

    def _hold_off(self, status: int, headers: Any) -> float | None:
        """Notes a 429/503's Retry-After for the whole peer (and fewer jobs to it at once); the
        seconds, if it gave any."""
        retry_after = _retry_after(headers)
        if status in HOLD_OFF_STATUSES:
            self.concurrency.throttled()
            if retry_after:
                self._not_before = max(self._not_before, time.monotonic() + retry_after)
        return retry_after

    def _rate_limit(self, headers: Any) -> None:
        """A peer that says it has no requests left (RateLimit-Remaining: 0) gets none until its
        RateLimit-Reset (delta seconds; 1 when it does not say), and fewer jobs at once."""
        remaining = headers.get("RateLimit-Remaining")
        if remaining is None or remaining.strip() not in ("0", "-0"):
            return
        reset = _retry_after({"Retry-After": headers.get("RateLimit-Reset", "1")}) or 1.0
        self.concurrency.throttled()
        self._not_before = max(self._not_before, time.monotonic() + reset)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # A peer's own CA, else the system's trust (which honours SSL_CERT_FILE).
            connector = aiohttp.TCPConnector(
                ssl=_ssl_context(self.peer.ca_file) if self.peer.ca_file else True,
                limit=self.peer.max_connections,
            )
            # Every request of the session waits out the peer's hold-off before it is sent
            # (an aiohttp trace hook, awaited ahead of the request): no call site can forget.
            held_off = aiohttp.TraceConfig()
            held_off.on_request_start.append(self._before_request)
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, auto_decompress=False, connector=connector, trace_configs=[held_off]
            )
        return self._session

    async def answers(self, within_seconds: float) -> bool:
        """Whether the peer answers its registry's base endpoint (any answer below 500, a 401
        included: it is up, whatever it thinks of us) within `within_seconds`."""
        try:
            async with self.session.get(
                self.url("/v2/"), timeout=aiohttp.ClientTimeout(total=within_seconds)
            ) as response:
                return response.status < 500
        except (aiohttp.ClientError, TimeoutError):
            return False

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
        actor: Actor | None = None,
        slow_answer: bool = False,
        lane: Lane | None = None,
    ) -> PeerResponse:
        """One registry call with a bearer token for `repository` (acting for `actor`);
        5xx/429/507 and network errors raise. A call that streams a body, or whose answer may
        take long to make (`slow_answer`: a blob's finishing PUT), waits up to 120 s for it;
        every other call counts as unreachable after `stall_seconds` of silence."""
        await self._token_in_flight(repository, actor)
        replayable = not isinstance(data, AsyncIterable)
        lane = lane or Lane()
        if isinstance(data, AsyncIterable) and self.bandwidth.wants_pacing(lane):
            data = self.bandwidth.paced(data, lane)
        attempt = held_off = 0
        while attempt < 2:
            request_headers = dict(headers or {})
            if (token := self._token(repository, actor)) is not None:
                request_headers["Authorization"] = f"Bearer {token}"
            try:
                async with self.session.request(
                    method,
                    self.url(url),
                    data=data,
                    headers=request_headers,
                    timeout=_UPLOAD_TIMEOUT if slow_answer or not replayable else self._timeout,
                ) as response:
                    body = await response.read() if read_body else b""
                    result = PeerResponse(response.status, dict(response.headers), body)
                    if response.status in (401, 403) and attempt == 0 and _is_challenge(response):
                        challenge = response.headers.get("WWW-Authenticate", "")
                        await self._authenticate(repository, challenge, actor)
                        if not replayable:
                            # A consumed stream cannot be replayed: the job retries with the token.
                            raise PeerError(
                                "authentication renewed", retryable=True, retry_after=0, cause="reauth"
                            )
                        attempt += 1
                        continue
            except (aiohttp.ClientError, TimeoutError) as error:
                raise PeerError(f"region {self.peer.id} unreachable: {type(error).__name__}", True) from None
            if result.status in HOLD_OFF_STATUSES and replayable and held_off < HOLD_OFF_RETRIES:
                if self._hold_off(result.status, result.headers):
                    held_off += 1
                    continue  # sent again once the peer's Retry-After has passed
            self._rate_limit(result.headers)
            self._raise_for_retryable(result)
            return result
        raise PeerError(f"region {self.peer.id} refused the credentials", retryable=False, status=401)

    async def read_into(
        self, url: str, repository: str, sink: Callable[[bytes], None], actor: Actor | None = None
    ) -> int:
        """GET `url` (a blob), handing its body to `sink` chunk by chunk, never whole in memory;
        returns the status (the body is read only on 200)."""
        for attempt in range(2):
            headers = {}
            if (token := self._token(repository, actor)) is not None:
                headers["Authorization"] = f"Bearer {token}"
            try:
                async with self.session.get(self.url(url), headers=headers) as response:
                    if response.status in (401, 403) and attempt == 0 and _is_challenge(response):
                        challenge = response.headers.get("WWW-Authenticate", "")
                        await self._authenticate(repository, challenge, actor)
                        continue
                    self._raise_for_retryable(PeerResponse(response.status, dict(response.headers), b""))
                    if response.status == 200:
                        async for chunk in response.content.iter_chunked(1024 * 1024):
                            sink(chunk)
                    return response.status
            except (aiohttp.ClientError, TimeoutError) as error:
                raise PeerError(f"region {self.peer.id} unreachable: {type(error).__name__}", True) from None
        raise PeerError(f"region {self.peer.id} refused the credentials", retryable=False, status=401)

    def _raise_for_retryable(self, response: PeerResponse) -> None:
        if response.status in RETRYABLE_STATUSES:
            raise PeerError(
                f"region {self.peer.id} answered {response.status}: {error_text(response.body)}",
                retryable=True,
                retry_after=self._hold_off(response.status, response.headers),
                status=response.status,
            )

    async def _token_in_flight(self, repository: str, actor: Actor | None) -> None:
        """With no token held yet and one being fetched, waits for it: a request sent without
        would be refused (401) and fetch a second one."""
        key = (repository, actor)
        lock = self._fetching.get(key)
        if key not in self._tokens and lock is not None and lock.locked():
            async with lock:
                pass

    def _token(self, repository: str, actor: Actor | None) -> str | None:
        held = self._tokens.get((repository, actor))
        return held.value if held is not None and held.value else None

    async def authorize(self, repository: str, actor: Actor) -> frozenset[str] | None:
        """A fresh token for `repository` acting for `actor`; the actions the peer granted.

        Rights can change at the peer, so every job asks (the token is then used for all of
        the job's requests, and for the next job's until its own answer arrives). Jobs that ask
        at the same time share one answer: a caller waiting while another fetched takes that
        token, fetched after it asked. None when the peer does not say (no auth at all, or an
        opaque token): the copy then learns from the peer's answers.
        """
        key = (repository, actor)
        asked = time.monotonic()
        async with self._fetching.setdefault(key, asyncio.Lock()):
            held = self._tokens.get(key)
            if held is not None and held.fetched >= asked and held.fresh():
                return held.granted
            return await self._fresh_grant(repository, actor)

    async def _fresh_grant(self, repository: str, actor: Actor) -> frozenset[str] | None:
        if self._challenge is None:
            try:
                async with self.session.get(self.url("/v2/")) as response:
                    await response.read()
                    self._raise_for_retryable(PeerResponse(response.status, dict(response.headers), b""))
                    if response.status != 401:
                        # No auth at all: remembered like a token, so the next job asks again
                        # only after the same lifetime.
                        now = time.monotonic()
                        self._tokens[(repository, actor)] = _Token("", None, now + DEFAULT_TOKEN_SECONDS, now)
                        return None
                    self._challenge = response.headers.get("WWW-Authenticate", "")
            except (aiohttp.ClientError, TimeoutError) as error:
                raise PeerError(f"region {self.peer.id} unreachable: {type(error).__name__}", True) from None
        await self._authenticate(repository, self._challenge, actor)
        return self._tokens[(repository, actor)].granted

    async def _authenticate(self, repository: str, challenge: str, actor: Actor | None = None) -> str:
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() != "bearer":
            raise PeerError(
                f"region {self.peer.id} asks for {scheme or 'no'} auth", retryable=False, status=401
            )
        values = dict(re.findall(r'(\w+)="([^"]*)"', params))
        # pull and push for a copy, and whatever else the challenge asks on this repository (a
        # deletion sync's delete): the token has no more rights than the call needs.
        actions = {"pull", "push"}
        for scope in values.get("scope", "").split(" "):
            kind, _, rest = scope.partition(":")
            named, _, wanted = rest.rpartition(":")
            if kind == "repository" and named == repository:
                actions |= {a for a in wanted.split(",") if a in ("pull", "push", "delete")}
        wanted_scope = (
            f"repository:{repository}:{','.join(sorted(actions, key=['pull', 'push', 'delete'].index))}"
        )
        query = {"service": values.get("service", ""), "scope": wanted_scope}
        if actor is not None:
            query |= {"acting_account": actor.account, "acting_user": actor.user}
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
        token = str(document.get("token") or document.get("access_token"))
        now = time.monotonic()
        self._tokens[(repository, actor)] = _Token(
            token, _granted(token, repository), now + _lifetime(document, token), now
        )
        return token

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
