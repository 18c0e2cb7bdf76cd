"""A reverse proxy in front of a real region that answers every Nth request itself with
429 and Retry-After (a peer throttling its clients), can mark every Mth answer
`RateLimit-Remaining: 0`, can hold each request a moment (a slow link), and records when each
request arrived.

It runs its own event loop in a thread, on a free 127.0.0.1 port. Bodies are small in the tests
that use it, so it reads each one whole before forwarding.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.support.server import free_port

# Not forwarded either way: hop-by-hop, and what aiohttp sets for the body it sends.
_DROPPED = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}


@dataclass
class Arrival:
    at: float  # time.monotonic() when the request arrived
    method: str
    path: str
    status: int  # what the client got
    rate_limited: bool = False  # the answer said RateLimit-Remaining: 0


@dataclass
class ThrottleProxy:
    every: int = 3
    retry_after: float = 2.0
    upstream: str = ""
    delay: float = 0.0  # seconds each forwarded request waits first (a slow link)
    # Every Nth forwarded answer says `RateLimit-Remaining: 0` with `RateLimit-Reset` (0: none).
    rate_limited_every: int = 0
    rate_limit_reset: float = 2.0
    port: int = field(default_factory=free_port)
    arrivals: list[Arrival] = field(default_factory=list)
    _count: int = 0
    _forwarded: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def throttled(self) -> list[float]:
        return [a.at for a in self.arrivals if a.status == 429]

    def rate_limited(self) -> list[float]:
        """When each request arrived whose answer said the peer had no requests left."""
        return [a.at for a in self.arrivals if a.rate_limited]

    def forwarded(self) -> list[float]:
        return [a.at for a in self.arrivals if a.status != 429]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        self._count += 1
        if self.every and self._count % self.every == 0:
            self.arrivals.append(Arrival(arrived, request.method, request.path, 429))
            return web.Response(
                status=429,
                headers={"Retry-After": f"{self.retry_after:g}", "Content-Type": "application/json"},
                text='{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}',
            )
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.request(
                request.method,
                self.upstream + request.path_qs,
                data=body or None,
                headers=headers,
                allow_redirects=False,
            ) as answer:
                payload = await answer.read()
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in _DROPPED}
                self._forwarded += 1
                limited = bool(self.rate_limited_every) and self._forwarded % self.rate_limited_every == 0
                if limited:
                    kept |= {"RateLimit-Remaining": "0", "RateLimit-Reset": f"{self.rate_limit_reset:g}"}
                arrival = Arrival(arrived, request.method, request.path, answer.status, limited)
                self.arrivals.append(arrival)
                return web.Response(status=answer.status, headers=kept, body=payload)

    def start(self) -> ThrottleProxy:
        ready = threading.Event()

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            app = web.Application(client_max_size=1024**3)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app)
            loop.run_until_complete(self._runner.setup())
            loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert ready.wait(10), "the throttling proxy did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
