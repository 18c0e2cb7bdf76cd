"""A burst of small images pushed into a repository with an automatic sync rule: does sync keep up?

Starts two Ferry regions with `ferry dev` (bench.sync_latency.ferry_dev), creates the organization
in both and, in the source, `bench/burst` with a syncAuto rule to the target. Then pushes `--images`
(300) distinct small images (tests.support.images.make_image: one small layer and a config each,
monolithic blob POSTs and a manifest PUT, bench.registry_async) at `--concurrency` (16) pushes in
flight, while a poller lists the target's tags (`GET /v2/bench/burst/tags/list?n=10000` every
`--interval` s) and notes when each tag first appears.

- push rate: images / (last manifest PUT answered - first push started);
- drain rate: images / (last tag visible at the target - first push started);
- push-to-visible per image: first seen at the target - its manifest PUT answered (p50, p95, max).

Aim (issue 13): the drain rate keeps up with the push rate and push-to-visible p95 <= 2 s.

    .venv/bin/python -m bench.sync_burst [--images 300] [--concurrency 16] [--label after]

FERRY_SRC=<dir containing ferry/> runs that source tree (PYTHONPATH) in both regions.
Writes bench/results/sync_burst[_<label>].json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.registry_async import AsyncRegistry, RegistryError
from bench.servers import load_average
from bench.small_requests import host_facts
from bench.sync_latency import NAMESPACE, create_namespaces, create_sync_rules, ferry_dev, log
from tests.support.images import make_image

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REPO = "burst"


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def push_all(
    source: AsyncRegistry, repository: str, count: int, concurrency: int, salt: str
) -> tuple[dict[str, float], float]:
    """Pushes `count` images; returns each tag's manifest-answered time and the first start."""
    images = [(f"t{i:04d}", make_image(f"burst-{salt}-{i}")) for i in range(count)]
    done: dict[str, float] = {}
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    for item in images:
        queue.put_nowait(item)
    started = time.monotonic()

    async def worker() -> None:
        while not queue.empty():
            tag, image = queue.get_nowait()
            for blob in image.blobs.values():
                await source.push_blob(repository, blob)
            status, _, body = await source.request(
                "PUT",
                repository,
                f"manifests/{tag}",
                data=image.manifest,
                headers={"Content-Type": image.media_type},
            )
            if status != 201:
                raise RegistryError(f"manifest {tag}: HTTP {status} {body[:300]!r}")
            done[tag] = time.monotonic()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, started


async def poll_target(
    target: AsyncRegistry, repository: str, count: int, interval: float, limit_s: float, stop: asyncio.Event
) -> tuple[dict[str, float], int]:
    seen: dict[str, float] = {}
    polls = 0
    deadline = time.monotonic() + limit_s
    while len(seen) < count and time.monotonic() < deadline:
        status, _, body = await target.request("GET", repository, "tags/list", params={"n": "10000"})
        polls += 1
        now = time.monotonic()
        if status == 200:
            for tag in json.loads(body).get("tags") or []:
                seen.setdefault(tag, now)
        if stop.is_set() and len(seen) >= count:
            break
        await asyncio.sleep(interval)
    return seen, polls


async def run(dev: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    admin = dev["admin"]
    repository = f"{NAMESPACE}/{REPO}"
    connector = aiohttp.TCPConnector(limit=4 * args.concurrency)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        source = AsyncRegistry(session, dev["regions"][0]["endpoint"], admin["user"], admin["password"])
        target = AsyncRegistry(session, dev["regions"][1]["endpoint"], admin["user"], admin["password"])
        stop = asyncio.Event()
        load_before = load_average()
        poller = asyncio.create_task(
            poll_target(target, repository, args.images, args.interval, args.timeout, stop)
        )
        pushed, started = await push_all(
            source, repository, args.images, args.concurrency, str(time.time_ns())
        )
        load_push_end = load_average()
        stop.set()
        seen, polls = await poller
    latencies = [seen[t] - pushed[t] for t in pushed if t in seen]
    push_end = max(pushed.values())
    last_seen = max(seen.values()) if seen else None
    push_seconds = push_end - started
    drain_seconds = (last_seen - started) if last_seen else None
    return {
        "images": args.images,
        "concurrency": args.concurrency,
        "visible": len(seen),
        "missing": sorted(set(pushed) - set(seen))[:20],
        "push_seconds": round(push_seconds, 3),
        "drain_seconds": round(drain_seconds, 3) if drain_seconds else None,
        "push_rate_img_s": round(args.images / push_seconds, 2),
        "drain_rate_img_s": round(len(seen) / drain_seconds, 2) if drain_seconds else None,
        "backlog_at_push_end": sum(1 for t in pushed if t not in seen or seen[t] > push_end),
        "push_to_visible_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "push_to_visible_p95_s": round(percentile(latencies, 95) or 0, 3) if latencies else None,
        "push_to_visible_max_s": round(max(latencies), 3) if latencies else None,
        "polls": polls,
        "load_before": load_before,
        "load_push_end": load_push_end,
        "load_after": load_average(),
        "latencies_s": [round(x, 4) for x in latencies],
    }


def line(result: dict[str, Any]) -> str:
    keeps_up = (result["drain_rate_img_s"] or 0) >= 0.95 * result["push_rate_img_s"]
    p95 = result["push_to_visible_p95_s"]
    met = keeps_up and p95 is not None and p95 <= 2.0 and result["visible"] == result["images"]
    return (
        f"| {result['images']} small images at concurrency {result['concurrency']}, auto rule "
        f"| drain {result['drain_rate_img_s']} img/s vs push {result['push_rate_img_s']} img/s; "
        f"push-to-visible p50 {result['push_to_visible_p50_s']} s, p95 {p95} s "
        f"| {'yes' if met else 'no'} (keeps up, p95 ≤ 2 s) |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--interval", type=float, default=0.05, help="target poll interval (s)")
    parser.add_argument("--timeout", type=float, default=300, help="give up on the rest after (s)")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or RESULTS / (f"sync_burst_{args.label}.json" if args.label else "sync_burst.json")
    env: dict[str, str] = {}  # FERRY_SRC is honoured by ferry_dev itself
    record: dict[str, Any] = {
        "benchmark": "sync_burst",
        "label": args.label,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": host_facts(),
        "ferry_command": "ferry dev (two regions, default settings)",
        "load_average_start": load_average(),
    }
    with tempfile.TemporaryDirectory(prefix="ferry-burst-") as scratch:
        with ferry_dev(Path(scratch), env) as dev:
            create_namespaces(dev)
            create_sync_rules(dev, [REPO])
            record["result"] = asyncio.run(run(dev, args))
    record["load_average_end"] = load_average()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    result = record["result"]
    print(line(result))
    print(
        f"visible {result['visible']}/{result['images']}; "
        f"backlog at push end {result['backlog_at_push_end']}; "
        f"load {record['load_average_start']} -> {record['load_average_end']}"
    )
    log(f"# wrote {out}")
    return 0 if result["visible"] == result["images"] else 1


if __name__ == "__main__":
    sys.exit(main())
