"""Rendering /metrics, in one process or summed over the processes of `ferry serve --workers N`.

prometheus_client picks file-backed values when PROMETHEUS_MULTIPROC_DIR is set at its first
import; `ferry serve` sets it, in a directory it empties at start, before any HTTP process
imports it. Each process that exits is marked dead so its live gauges stop counting.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir(path: Path) -> None:
    """Empties `path` (files of an earlier run would be summed in) and points this process and
    the processes it starts at it. Must run before prometheus_client is imported by them."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)


def process_exited(pid: int) -> None:
    """Drops a dead process's live gauges (in-flight requests, process count)."""
    directory = multiprocess_dir()
    if directory:
        multiprocess.mark_process_dead(pid, directory)


class _ThisProcess(Collector):
    """The default registry's metrics, for a registry built per scrape."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def render(scrape_time: Iterable[Collector]) -> bytes:
    """The text exposition: every process's metrics plus those computed for this scrape."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    for collector in scrape_time:
        registry.register(collector)
    return generate_latest(registry)
