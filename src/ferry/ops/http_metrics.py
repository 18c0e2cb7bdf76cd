"""Request metrics, by API, route template, method and status class.

The route label is the template the router matched (`/v2/{name}/manifests/{reference}`), never
the raw path, so the number of series stays bounded; an unmatched request is "other".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from ferry.observability import metrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPS_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


def api_of(path: str) -> str:
    if path.startswith("/v2/manage"):
        return "manage"
    if path.startswith("/v3/"):
        return "iam"
    if path == "/v2" or path.startswith("/v2/"):
        return "registry"
    if path in OPS_PATHS:
        return "ops"
    return "manage"  # the management API's discovery documents: /, /v2, /openapi.json, /docs


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "other"


@dataclass
class _Answer:
    status: int = 500  # what the client gets when the handler raised something unexpected
    response: web.StreamResponse | None = None


@web.middleware
async def request_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts and times every request once its answer is sent: aiohttp runs each request in a
    task of its own that ends after the response is written, so the task's done callback sees
    the whole answer (a streamed or sendfile'd blob included) and its real size."""
    api = api_of(request.path)
    in_flight = metrics.HTTP_IN_FLIGHT.labels(api)
    in_flight.inc()
    started = time.perf_counter()
    answer = _Answer()

    def sent(_task: object = None) -> None:
        in_flight.dec()
        # A file response settles its status (206, 304, 416) while it is sent.
        status = answer.response.status if answer.response is not None else answer.status
        _record(request, api, status, time.perf_counter() - started, answer.response)

    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(sent)
    try:
        answer.response = await handler(request)
        return answer.response
    except web.HTTPException as exc:
        answer.status = exc.status
        raise
    finally:
        if task is None:
            sent()


def _record(
    request: web.Request, api: str, status: int, seconds: float, response: web.StreamResponse | None
) -> None:
    route = route_of(request)
    metrics.HTTP_REQUESTS.labels(api, route, request.method, f"{status // 100}xx").inc()
    metrics.HTTP_LATENCY.labels(api, route, request.method).observe(seconds)
    received = getattr(request.content, "total_bytes", 0)
    if received:
        metrics.HTTP_BYTES_IN.labels(api).inc(received)
    if response is not None and response.body_length:
        metrics.HTTP_BYTES_OUT.labels(api).inc(response.body_length)
