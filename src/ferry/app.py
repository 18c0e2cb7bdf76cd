"""Assembles one region's aiohttp application from settings."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from ferry.config import Settings
from ferry.errors import OCIError, SWRError
from ferry.identity.bootstrap import bootstrap_admin
from ferry.identity.errors import LoginRefused, OrganizationError
from ferry.identity.iam_tokens import IamTokens
from ferry.identity.registry_tokens import RegistryTokens
from ferry.identity.throttle import LoginThrottled
from ferry.images.errors import ImageError
from ferry.images.gcschedule import gc_schedule
from ferry.images.retention_schedule import retention_schedule
from ferry.images.upload_ids import UploadIds
from ferry.images.uploads import Uploads
from ferry.manage import errors as manage_errors
from ferry.manage.routes import add_routes as add_management_routes
from ferry.metadata.db import DatabaseFull
from ferry.observability import logs
from ferry.ops.http_metrics import request_metrics
from ferry.ops.routes import add_routes as add_ops_routes
from ferry.region import Region, open_region
from ferry.registry import errors as registry_errors
from ferry.registry.routes import add_routes as add_registry_routes
from ferry.state import CALLER, REQUEST_ID, STATE, AppState, state
from ferry.storage import StorageFull
from ferry.sync.authorization import SyncRefused
from ferry.sync.rules import RuleError
from ferry.webhooks.errors import WebhookError

log = logging.getLogger("ferry")
# What services refuse with, in words; each API's errors module turns them into its wire format.
DOMAIN_ERRORS = (
    ImageError,
    OrganizationError,
    LoginRefused,
    LoginThrottled,
    RuleError,
    SyncRefused,
    StorageFull,
    DatabaseFull,
    WebhookError,
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error_response(request: web.Request, error: OCIError | SWRError) -> web.Response:
    body = None if request.method == "HEAD" else json.dumps(error.body()).encode()
    return web.Response(
        status=error.status, body=body, content_type="application/json", headers=error.headers
    )


# The shapes of the OCI API's paths (registry/routes.py): the base, the catalog, the token
# endpoint, and /v2/<name>/ followed by one of its four resources. Every other /v2/… path is
# SWR's (the management API, and SWR's /v2/{project_id}/… operations), and answers in SWR's format.
_REGISTRY_PATH = re.compile(
    r"^/v2/(?:|_catalog|token|.+/(?:(?:manifests|blobs|referrers)(?:/.*)?|tags/list))$"
)
# SWR operations of the official SDK that Ferry does not offer: the enterprise edition's
# instances and jobs, agency, and resource tags (README "Not in Ferry").
_NOT_IN_FERRY = re.compile(
    r"^/v2/(?:manage/agency"  # agency
    r"|[^/]+/(?:instances|jobs|repositories"  # /v2/{project_id}/… of the enterprise edition
    r"|[^/]+/[^/]+/(?:tags|[^/]+/[^/]+/tags)"  # …/{resource_type}/{resource_id}/tags
    r"|[^/]+/(?:[^/]+/[^/]+/)?resource-instances))(?:/|$)"  # resource tags' instance queries
)
NOT_IN_FERRY_CODE = "FERRY.4040001"


def is_registry_path(path: str) -> bool:
    """The OCI API's paths (under /v2/, not the management API's)."""
    return not path.startswith("/v2/manage") and bool(_REGISTRY_PATH.match(path))


def _not_found(request: web.Request, status: int) -> OCIError | SWRError:
    if is_registry_path(request.path):
        if status == 405:
            return OCIError(405, "UNSUPPORTED", "method not allowed")
        return OCIError(404, "NOT_FOUND", "no such endpoint")
    if _NOT_IN_FERRY.match(request.path):
        return SWRError(
            404,
            NOT_IN_FERRY_CODE,
            f"{request.method} {request.path} is an SWR operation Ferry does not offer (the enterprise "
            "edition's instances and jobs, agency and resource tags are not part of Ferry)",
        )
    if status == 405:
        return SWRError(405, "SVCSTG.SWR.4050000", "method not allowed")
    return SWRError(404, "SVCSTG.SWR.4040083", f"requested URL {request.path} not found")


def _domain_error(request: web.Request, error: Exception) -> OCIError | SWRError:
    """A service's refusal in the wire format of the API that was called."""
    retry_seconds = state(request).settings.storage_full_retry_seconds
    if isinstance(error, StorageFull | DatabaseFull):
        log.warning("refused %s %s: %s", request.method, request.path, error)
    if is_registry_path(request.path):
        return registry_errors.oci_error(error, retry_seconds)
    return manage_errors.swr_error(error, retry_seconds)


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request's id (the caller's X-Request-Id when sane): on the request, for the answer
    and the access line, and in the context, so every line logged meanwhile carries it."""
    request_id = logs.request_id_from(request.headers.get("X-Request-Id"))
    request[REQUEST_ID] = request_id
    with logs.request_context(request_id):
        return await handler(request)


class AccessLogger(AbstractAccessLogger):
    """aiohttp calls this once the answer is sent, so duration and bytes out are the real ones."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        resource = request.match_info.route.resource if isinstance(request, web.Request) else None
        logs.log_access(
            method=request.method,
            route=resource.canonical if resource is not None else "(no route)",
            path=request.path,
            status=response.status,
            seconds=time,
            bytes_in=request.content.total_bytes,
            bytes_out=response.body_length,
            request_id=request.get(REQUEST_ID) or "-",
            caller=request.get(CALLER) or "anonymous",
            peer=request.remote or "-",
        )


# A request line (method, path, query) up to this long reaches the APIs, which answer an odd one in
# their own error format (with its request id); aiohttp's own limit, 8 KiB, answered a long SWR
# `filter` with a bare text/plain 400 before any of Ferry's code saw it.
MAX_REQUEST_LINE = 64 * 1024


def server_options(settings: Settings) -> dict[str, Any]:
    """What `web.run_app` (or an `AppRunner`) needs for the access log the settings ask for, and
    the request line's limit."""
    limits = {"max_line_size": MAX_REQUEST_LINE}
    if not settings.access_log:
        return {"access_log": None, **limits}
    return {"access_log_class": AccessLogger, "access_log": logging.getLogger(logs.ACCESS_LOGGER), **limits}


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as the API's own error body; nothing escapes as a bare 500."""
    request_id = request.get(REQUEST_ID) or uuid.uuid4().hex
    try:
        response = await handler(request)
    except (OCIError, SWRError) as error:
        response = _error_response(request, error)
    except DOMAIN_ERRORS as refused:
        response = _error_response(request, _domain_error(request, refused))
    except web.HTTPNotFound:
        response = _error_response(request, _not_found(request, 404))
    except web.HTTPMethodNotAllowed:
        response = _error_response(request, _not_found(request, 405))
    except web.HTTPException as exc:
        # aiohttp's own refusals (413 body too large, ...): SWR's body on the management API.
        if exc.status < 400 or is_registry_path(request.path):
            exc.headers["X-Request-Id"] = request_id
            raise
        reason = exc.text or exc.reason
        response = _error_response(request, SWRError(exc.status, f"SVCSTG.SWR.{exc.status}0000", reason))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        failure: OCIError | SWRError = (
            OCIError(500, "UNKNOWN", "internal error")
            if is_registry_path(request.path)
            else SWRError(500, "SVCSTG.SWR.5000007", "operation failed")
        )
        response = _error_response(request, failure)
    response.headers["X-Request-Id"] = request_id
    if request.path.startswith("/v2/"):
        response.headers["Docker-Distribution-API-Version"] = "registry/2.0"
    return response


def build_state(region: Region) -> AppState:
    settings = region.settings
    key = settings.resolved_secret_key()
    return AppState(
        settings,
        region.db,
        region.store,
        Uploads(region.db, region.store, UploadIds(key)),
        RegistryTokens(key, settings.region, settings.registry_token_ttl),
        IamTokens(key),
        region.peer_clients,
        region.tag_events,
    )


def create_app(settings: Settings) -> web.Application:
    # request_metrics is outermost: it sees the final status of every request.
    app = web.Application(middlewares=[request_metrics, request_ids, errors], client_max_size=8 * 1024 * 1024)
    region = open_region(settings)
    app[STATE] = build_state(region)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await region.prepare()
        await bootstrap_admin(region.db, settings)
        worker = region.sync_worker()
        if settings.sync_workers:
            worker.start()
            sync_slots.worker = worker
        gc = gc_schedule(settings, region.db, region.store)
        gc.start()
        retention = retention_schedule(settings.retention_interval_seconds, region.db, region.tag_events)
        retention.start()
        reconciler = region.reconciler()
        reconciler.start()
        webhooks = region.webhook_delivery()
        webhooks.start()
        yield
        await webhooks.stop()
        await reconciler.stop()
        await retention.stop()
        await gc.stop()
        await worker.stop()
        await region.close()

    app.cleanup_ctx.append(lifecycle)
    # Management routes first: "/v2/manage/..." must never resolve as an image name.
    add_management_routes(app)
    add_registry_routes(app)
    sync_slots = add_ops_routes(app)
    return app


def create_worker_app(settings: Settings) -> web.Application:
    """`ferry worker --port`: a sync-only process that answers /healthz, /readyz and /metrics
    (its own sync metrics), and no API."""
    app = web.Application(middlewares=[request_metrics, request_ids, errors])
    region = open_region(settings)
    app[STATE] = build_state(region)
    sync_slots = add_ops_routes(app)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await region.prepare()
        worker = sync_slots.worker = region.sync_worker()
        worker.start()
        webhooks = region.webhook_delivery()
        webhooks.start()
        log.info("sync worker for region %s running %d slots", settings.region, settings.sync_workers)
        yield
        await webhooks.stop()
        await worker.stop()
        await region.close()

    app.cleanup_ctx.append(lifecycle)
    return app
