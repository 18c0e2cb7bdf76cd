"""The store bench/sync_audit.py audits: N small distinct images in `bench/audit` of the source
and, byte for byte, of the target, and a sync job of each tag to the target.

The images go to both regions over HTTP (concurrent monolithic blob POSTs and manifest PUTs), so
the target holds them without 10,000 copies. The audit compares every source tag, but a tag the
target lacked would count as drift only if a job of the sync ever ran for it (sync/audit.py; one
that predates the rule and was never synced is not-synced), so, as in a repository that has
really been synced, every seeded tag is then manually synced once (POST …/sync_images, 1,000 tags
per call, SWR's limit; `--no-history` skips it) and the script waits until every job is final.
These are real jobs; each finds the target already holding the digest (status existed).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from bench.audit_figures import request_counts
from bench.registry_async import AsyncRegistry
from bench.servers import load_average
from bench.sync_latency import NAMESPACE, dev_client, log
from ferry.images.digests import sha256_digest
from tests.support.images import make_image

AUDITED = "audit"
BATCH = 1000  # tags per sync_images call (SWR's limit)
HISTORY_TIMEOUT = 3600.0
Seeded = tuple[str, bytes, dict[str, Any]]  # tag, config bytes, manifest


def tag_name(number: int) -> str:
    return f"t{number:05d}"


def seed_images(count: int) -> tuple[bytes, list[Seeded]]:
    """One real gzip layer shared by all, and per tag its own config (a label names the tag)."""
    base = make_image("bench-audit-shared")
    manifest = json.loads(base.manifest)
    layer = base.blobs[manifest["layers"][0]["digest"]]
    config = json.loads(base.blobs[manifest["config"]["digest"]])
    images = []
    for i in range(count):
        tag = tag_name(i)
        own = json.dumps(config | {"config": config["config"] | {"Labels": {"bench.tag": tag}}}).encode()
        image = json.loads(base.manifest)
        image["config"] = image["config"] | {"digest": sha256_digest(own), "size": len(own)}
        images.append((tag, own, image))
    return layer, images


async def seed_region(registry: AsyncRegistry, layer: bytes, images: list[Seeded], concurrency: int) -> None:
    repository = f"{NAMESPACE}/{AUDITED}"
    await registry.push_blob(repository, layer)
    todo = iter(images)
    done = 0

    async def worker() -> None:
        nonlocal done
        for tag, config, manifest in todo:
            await registry.push_blob(repository, config)
            await registry.put_manifest(repository, tag, manifest)
            done += 1
            if done % 1000 == 0:
                log(f"  {registry.base}: {done}/{len(images)} tags")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def seed(source: AsyncRegistry, target: AsyncRegistry, count: int, concurrency: int) -> dict[str, Any]:
    layer, images = seed_images(count)
    started, load = time.perf_counter(), load_average()
    await asyncio.gather(*(seed_region(r, layer, images, concurrency) for r in (source, target)))
    return {
        "tags": len(images),
        "method": "HTTP: per region 1 shared layer, then per tag a config blob POST ?digest= and a "
        f"manifest PUT, {concurrency} tags at a time per region, both regions at once",
        "seconds": round(time.perf_counter() - started, 1),
        "requests": source.requests + target.requests,
        "load_start": load,
        "load_end": load_average(),
    }


def _manual_sync(dev: dict[str, Any], tags: list[str]) -> None:
    from huaweicloudsdkswr.v2 import CreateManualImageSyncRepoRequest, CreateManualImageSyncRepoRequestBody

    body = CreateManualImageSyncRepoRequestBody(
        image_tag=tags, override=False, remote_namespace=NAMESPACE, remote_region_id=dev["regions"][1]["id"]
    )
    request = CreateManualImageSyncRepoRequest(namespace=NAMESPACE, repository=AUDITED, body=body)
    failed = dev_client(dev, 0).create_manual_image_sync_repo(request).body
    if failed:
        raise RuntimeError(f"sync_images refused {len(failed)} tags, e.g. {failed[:3]}")


async def _finished(session: aiohttp.ClientSession, source: str) -> dict[str, int]:
    async with session.get(source + "/metrics") as response:
        counts = request_counts(await response.text())
    finished: dict[str, int] = {}
    for key, value in counts.items():
        if key.startswith("ferry_sync_jobs_finished_total"):
            status = key.split("status=", 1)[1].split(",", 1)[0].rstrip("}")
            finished[status] = finished.get(status, 0) + int(value)
    return finished


async def sync_history(dev: dict[str, Any], session: aiohttp.ClientSession, count: int) -> dict[str, Any]:
    """A manual sync job of every seeded tag; returns once all are final (by the source's
    ferry_sync_jobs_finished_total), with their statuses and how long it took."""
    source = str(dev["regions"][0]["endpoint"])
    tags = [tag_name(i) for i in range(count)]
    started, load = time.perf_counter(), load_average()
    for first in range(0, count, BATCH):
        await asyncio.to_thread(_manual_sync, dev, tags[first : first + BATCH])
    deadline = started + HISTORY_TIMEOUT
    while sum((finished := await _finished(session, source)).values()) < count:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"sync jobs not final after {HISTORY_TIMEOUT:.0f} s: {finished}")
        await asyncio.sleep(1.0)
    return {
        "jobs": count,
        "statuses": finished,
        "seconds": round(time.perf_counter() - started, 1),
        "load_start": load,
        "load_end": load_average(),
    }
