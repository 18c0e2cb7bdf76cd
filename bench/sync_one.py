"""One small image at a time: push-to-visible of region sync, with nothing else running.

Starts two Ferry regions with `ferry dev` (bench.sync_latency.ferry_dev), creates the organization
in both and, in the source, `bench/one` with a syncAuto rule to the target. Then, `--images` (20)
times: pushes one fresh small image (tests.support.images.make_image: a config and one small
layer, monolithic blob POSTs and a manifest PUT) and polls the target's `HEAD …/manifests/<tag>`
every `--interval` (5 ms) until it answers 200. Push-to-visible is from the manifest PUT's answer
to the first 200. It also reads the source's /metrics before and after: database transactions
and sync requests per image, and the mean of each sync phase the metrics time.

    .venv/bin/python -m bench.sync_one [--images 20] [--label after]

FERRY_SRC=<dir containing ferry/> runs that source tree (PYTHONPATH) in both regions.
Writes bench/results/sync_one[_<label>].json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sqlite3
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
from bench.sync_burst import percentile
from bench.sync_latency import NAMESPACE, create_namespaces, create_sync_rules, ferry_dev, log
from tests.support.images import make_image

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REPO = "one"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)$")


async def scrape(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """Every sample of /metrics summed by name+labels (the labels as text)."""
    async with session.get(base + "/metrics") as response:
        text = await response.text()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found and not line.startswith("#"):
            key = found.group(1) + (found.group(2) or "")
            try:
                samples[key] = samples.get(key, 0.0) + float(found.group(3))
            except ValueError:
                continue
    return samples


def deltas(before: dict[str, float], after: dict[str, float], prefix: str) -> dict[str, float]:
    return {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if key.startswith(prefix) and after[key] - before.get(key, 0.0)
    }


def summarize_metrics(before: dict[str, float], after: dict[str, float], images: int) -> dict[str, Any]:
    """Per pushed image: DB transactions by kind, HTTP requests the target served by route."""
    db = deltas(before, after, "ferry_db_operation_duration_seconds_count")
    return {"source_db_operations_per_image": {k: round(v / images, 2) for k, v in sorted(db.items())}}


def mean_durations(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean answer time (ms) per route and method, from the request histograms."""
    sums = deltas(before, after, "ferry_http_request_duration_seconds_sum")
    counts = deltas(before, after, "ferry_http_request_duration_seconds_count")
    means = {}
    for key, total in sums.items():
        count = counts.get(key.replace("_sum", "_count", 1), 0)
        if count:
            means[key.partition("{")[2].rstrip("}")] = round(1000 * total / count, 2)
    return dict(sorted(means.items()))


async def run(dev: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    admin = dev["admin"]
    repository = f"{NAMESPACE}/{REPO}"
    src_url, dst_url = dev["regions"][0]["endpoint"], dev["regions"][1]["endpoint"]
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        source = AsyncRegistry(session, src_url, admin["user"], admin["password"])
        target = AsyncRegistry(session, dst_url, admin["user"], admin["password"])
        salt = str(time.time_ns())
        latencies: list[float] = []
        # A warm-up image (first connections, first token) is not counted.
        for i in range(args.images + 1):
            if i == 1:
                src_before, dst_before = await scrape(session, src_url), await scrape(session, dst_url)
            tag = f"t{i:04d}"
            image = make_image(f"one-{salt}-{i}")
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
            pushed = time.monotonic()
            deadline = pushed + args.timeout
            while await target.tag_digest(repository, tag) is None:
                if time.monotonic() > deadline:
                    raise RegistryError(f"{tag} not visible at the target after {args.timeout} s")
                await asyncio.sleep(args.interval)
            if i:
                latencies.append(time.monotonic() - pushed)
            await asyncio.sleep(args.pause)  # let the job's finish commit before the next push
        src_after, dst_after = await scrape(session, src_url), await scrape(session, dst_url)
    phases = deltas(src_before, src_after, "ferry_sync_push_to_visible_seconds")
    return {
        "images": args.images,
        "push_to_visible_p50_s": round(statistics.median(latencies), 4),
        "push_to_visible_p95_s": round(percentile(latencies, 95) or 0, 4),
        "push_to_visible_min_s": round(min(latencies), 4),
        "push_to_visible_max_s": round(max(latencies), 4),
        "latencies_s": [round(x, 4) for x in latencies],
        **summarize_metrics(src_before, src_after, args.images),
        "target_http_requests_per_image": {
            k: round(v / args.images, 2)
            for k, v in sorted(deltas(dst_before, dst_after, "ferry_http_requests_total").items())
        },
        "target_request_mean_ms": mean_durations(dst_before, dst_after),
        "source_request_mean_ms": mean_durations(src_before, src_after),
        "source_sync_lag_metric": {k: round(v, 4) for k, v in phases.items() if "_sum" in k or "_count" in k},
    }


def job_phases(root: Path) -> dict[str, float]:
    """Medians from the source's job records: waiting for a worker (created → started, the
    claim included), the copy (started → visible), recording the end (visible → finished)."""
    spans: dict[str, list[float]] = {"claimed": [], "copied": [], "finished": []}
    for path in root.rglob("*.db"):
        with contextlib.closing(sqlite3.connect(path)) as db:
            try:
                rows = db.execute(
                    "SELECT created_at, started_at, visible_at, finished_at FROM sync_jobs"
                    " WHERE status = 'success'"
                ).fetchall()
            except sqlite3.Error:
                continue
        for created, started, visible, finished in rows:
            c, s, v, f = (
                datetime.fromisoformat(str(x)).timestamp() for x in (created, started, visible, finished)
            )
            spans["claimed"].append(s - c)
            spans["copied"].append(v - s)
            spans["finished"].append(f - v)
    return {k: round(statistics.median(v), 4) for k, v in spans.items() if v}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.005, help="target poll interval (s)")
    parser.add_argument("--pause", type=float, default=0.3, help="between images (s)")
    parser.add_argument("--timeout", type=float, default=30, help="per image (s)")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or RESULTS / (f"sync_one_{args.label}.json" if args.label else "sync_one.json")
    record: dict[str, Any] = {
        "benchmark": "sync_one",
        "label": args.label,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": host_facts(),
        "ferry_command": "ferry dev (two regions, default settings)",
        "load_average_start": load_average(),
    }
    with tempfile.TemporaryDirectory(prefix="ferry-one-") as scratch:
        with ferry_dev(Path(scratch)) as dev:
            create_namespaces(dev)
            create_sync_rules(dev, [REPO])
            record["result"] = asyncio.run(run(dev, args))
            record["result"]["job_phases_median_s"] = job_phases(Path(scratch))
    record["load_average_end"] = load_average()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    result = record["result"]
    print(
        f"one small image push-to-visible: p50 {result['push_to_visible_p50_s']} s, "
        f"p95 {result['push_to_visible_p95_s']} s over {result['images']} images "
        f"(aim p50 <= 0.15 s); load {record['load_average_start']} -> {record['load_average_end']}"
    )
    print(json.dumps({k: v for k, v in result.items() if k != "latencies_s"}, indent=1))
    log(f"# wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
