"""`ferry serve`: one HTTP server process, or N of them on one port (`--workers N`).

With N > 1 this process only supervises. It migrates the database and creates the admin once,
empties the metrics directory (prometheus_client's multiprocess mode), then starts N fresh
interpreters that each bind the port with SO_REUSEPORT, so the kernel spreads connections over
them. Each runs the whole application, its sync slots included. A child that dies is started
again (and its live gauges dropped); one that dies at once stops them all. SIGTERM or SIGINT
stops every child, by PID, then this process.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from ferry.config import Settings
from ferry.observability.exposition import prepare_multiprocess_dir, process_exited

log = logging.getLogger("ferry")
# A child that exits sooner than this after its start failed to start: give up, do not loop.
STARTUP_SECONDS = 10.0
STOP_GRACE_SECONDS = 10.0
PR_SET_PDEATHSIG = 1  # prctl(2)


def run_server(settings: Settings, workers: int) -> int:
    """Serves until stopped; the exit status."""
    if workers <= 1:
        serve_here(settings, reuse_port=False)
        return 0
    return _supervise(settings, workers)


def serve_here(settings: Settings, reuse_port: bool) -> None:
    """This process serves the application until SIGTERM or SIGINT."""
    from aiohttp import web

    from ferry.app import create_app, server_options
    from ferry.cli.tls import server_ssl_context
    from ferry.observability import metrics
    from ferry.ops.memory import tune_malloc

    tune_malloc()
    ssl_context = server_ssl_context(settings)  # here: each of N processes builds its own
    metrics.HTTP_SERVER_PROCESSES.set(1)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=None,
        reuse_port=reuse_port,
        ssl_context=ssl_context,
        **server_options(settings),
        shutdown_timeout=5,  # peers keep idle connections open; do not wait a minute for them
    )


def serve_worker(settings: Settings, port: int) -> None:
    """`ferry worker --port`: sync slots, and the operator's endpoints on `port`."""
    from aiohttp import web

    from ferry.app import create_worker_app
    from ferry.ops.memory import tune_malloc

    tune_malloc()
    web.run_app(create_worker_app(settings), host=settings.host, port=port, print=None, shutdown_timeout=5)


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM when the supervisor dies, even by SIGKILL, so no child keeps the port."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took effect
        raise SystemExit(1)


def _child(settings: Settings, parent: int) -> None:
    """One of N server processes (a fresh interpreter: PROMETHEUS_MULTIPROC_DIR is inherited)."""
    _die_with_parent(parent)
    from ferry.cli.tls import TLSFileError
    from ferry.observability.logs import configure_logging
    from ferry.storage import StorageUnavailable

    configure_logging(settings)
    try:
        serve_here(settings, reuse_port=True)
    except (StorageUnavailable, TLSFileError) as error:
        log.error("error: %s", error)
        raise SystemExit(1) from None


async def _prepare_once(settings: Settings) -> None:
    """What every child would otherwise race to do: migrate, create the admin."""
    from ferry.identity.bootstrap import bootstrap_admin
    from ferry.region import open_region

    region = open_region(settings)
    try:
        await region.prepare()
        await bootstrap_admin(region.db, settings)
    finally:
        await region.close()


class _Supervisor:
    def __init__(self, settings: Settings, workers: int) -> None:
        # Every child runs sync slots: each sends a peer 1/workers of its bandwidth cap.
        share = settings.sync_bandwidth_share * workers
        self.settings = settings.model_copy(update={"sync_bandwidth_share": share})
        self.workers = workers
        self.context = multiprocessing.get_context("spawn")
        self.children: dict[int, tuple[BaseProcess, float]] = {}
        self.stopping = False
        self.failed = False

    def start(self, slot: int) -> None:
        child = self.context.Process(
            target=_child, args=(self.settings, os.getpid()), name=f"ferry-http-{slot}"
        )
        child.start()
        self.children[slot] = (child, time.monotonic())

    def stop_on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def reap(self) -> None:
        """Restarts children that died, unless one died while starting (then stops)."""
        for slot, (child, started) in list(self.children.items()):
            if child.is_alive():
                continue
            child.join()
            assert child.pid is not None
            process_exited(child.pid)
            if self.stopping:
                continue
            if time.monotonic() - started < STARTUP_SECONDS:
                log.error("server process %s exited (%s) while starting; stopping", child.pid, child.exitcode)
                self.failed = self.stopping = True
                continue
            log.warning("server process %s exited (%s); starting another", child.pid, child.exitcode)
            self.start(slot)

    def stop_all(self) -> None:
        for child, _started in self.children.values():
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child, _started in self.children.values():
            child.join(max(deadline - time.monotonic(), 0.1))
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGKILL)
                child.join()
            if child.pid is not None:
                process_exited(child.pid)


def _supervise(settings: Settings, workers: int) -> int:
    asyncio.run(_prepare_once(settings))
    prepare_multiprocess_dir(settings.data_dir / "prometheus-multiproc")
    supervisor = _Supervisor(settings, workers)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, supervisor.stop_on_signal)
    for slot in range(workers):
        supervisor.start(slot)
    log.info("serving on port %d with %d processes", settings.port, workers)
    try:
        while not supervisor.stopping:
            wait([child.sentinel for child, _started in supervisor.children.values()], timeout=0.5)
            supervisor.reap()
    finally:
        supervisor.stop_all()
    return 1 if supervisor.failed else 0
