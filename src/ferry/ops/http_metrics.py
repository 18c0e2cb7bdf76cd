"""Request metrics, by API, route template, method and status class.

The route label is the template the router matched (`/v2/{name}/manifests/{reference}`), never
the raw path, so the number of series stays bounded; an unmatched request is "other".
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

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


@web.middleware
async def request_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost middleware: it sends the response itself, so that its latency and size
    are those of the whole answer (a streamed blob included)."""
    api = api_of(request.path)
    in_flight = metrics.HTTP_IN_FLIGHT.labels(api)
    in_flight.inc()
    started = time.perf_counter()
    status = 500
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            await response.prepare(request)
            await response.write_eof()
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except ConnectionError:
        if response is None:
            raise
        return response  # the client left while it was sent; nothing more to do
    finally:
        in_flight.dec()
        _record(request, api, status, time.perf_counter() - started, response)


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
