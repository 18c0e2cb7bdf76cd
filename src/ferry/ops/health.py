"""GET /healthz (the process answers) and GET /readyz (it can do its work).

Readiness: the database answers, the blob store answers, the schema is at the newest
migration, and, when this process runs sync slots, their loops run. The body names each check
and what failed; 503 when any did, so a load balancer stops sending requests here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from aiohttp import web
from sqlalchemy import text

from ferry.metadata.migrate import current_revision, head_revision
from ferry.state import AppState, state
from ferry.sync.worker import SyncWorker

CHECK_SECONDS = 5.0


@dataclass
class SyncSlots:
    """The sync worker of this process, once started (None: this process runs no sync slots)."""

    worker: SyncWorker | None = None


SYNC_SLOTS = web.AppKey("ferry_sync_slots", SyncSlots)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _database(app_state: AppState) -> dict[str, Any]:
    async with app_state.db.read() as session:
        await session.execute(text("SELECT 1"))
    return {}


async def _storage(app_state: AppState) -> dict[str, Any]:
    await app_state.store.check()
    return {}


@cache
def _head(url: str) -> str | None:
    return head_revision(url)


async def _migrations(app_state: AppState) -> dict[str, Any]:
    head = _head(app_state.db.url)
    current = await current_revision(app_state.db)
    if current != head:
        raise RuntimeError(f"database at revision {current}, code expects {head}: run the migrations")
    return {"revision": current}


def _sync_check(slots: SyncSlots) -> Callable[[AppState], Awaitable[dict[str, Any]]]:
    async def check(_app_state: AppState) -> dict[str, Any]:
        if slots.worker is None or not slots.worker.running:
            raise RuntimeError("the sync worker loop is not running")
        return {"slots": slots.worker.settings.sync_workers}

    return check


async def _run(check: Callable[[AppState], Awaitable[dict[str, Any]]], app_state: AppState) -> dict[str, Any]:
    try:
        details = await asyncio.wait_for(check(app_state), CHECK_SECONDS)
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {CHECK_SECONDS:.0f}s"}
    except Exception as error:
        reason = str(error).splitlines()[0][:300] if str(error) else ""
        return {"ok": False, "error": f"{type(error).__name__}: {reason}".rstrip(": ")}
    return {"ok": True, **details}


async def readyz(request: web.Request) -> web.Response:
    app_state = state(request)
    checks: dict[str, Callable[[AppState], Awaitable[dict[str, Any]]]] = {
        "database": _database,
        "storage": _storage,
        "migrations": _migrations,
    }
    if app_state.settings.sync_workers:
        checks["sync_worker"] = _sync_check(request.app[SYNC_SLOTS])
    names = list(checks)
    results = dict(
        zip(names, await asyncio.gather(*(_run(checks[n], app_state) for n in names)), strict=True)
    )
    failed = [name for name, result in results.items() if not result["ok"]]
    body = {
        "status": "not ready" if failed else "ready",
        "failed": failed,
        "checks": results,
        "pid": os.getpid(),
    }
    return web.json_response(body, status=503 if failed else 200)
