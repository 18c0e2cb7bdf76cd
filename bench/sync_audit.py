"""An audit of 10,000 tags between two regions, and what it does to live sync meanwhile.

Starts two Ferry regions with `ferry dev` (bench.sync_latency.ferry_dev; /readyz), creates the
organization `bench` in both and seeds `--tags` small distinct images (one shared real layer, a
config of its own per tag) into `bench/audit` of the source AND, identically, of the target: the
same bytes pushed to both over HTTP (concurrent monolithic blob POSTs and manifest PUTs), so the
target holds them without 10,000 copies. Then the rules (syncAuto) are created: `bench/audit` and
`bench/live` → the target (which enqueues nothing for existing tags), and every seeded tag is
manually synced once, as in a repository that really was synced (bench/audit_seed.py says
why; `--no-history` skips it); those jobs find the target current.

1. audit alone: one `POST …/repos/audit/sync_audit` (sync/audit.py) with nothing else running:
   wall time, the audit's own request count, the target's ferry_http_requests_total delta.
2. interleaved runs, `--rounds` of each: baseline, with-audit, baseline, with-audit, …
   A run pushes small new images to `bench/live` one at a time (the next push after the last
   became visible, plus `--gap`) and polls the target's tag every `--interval` s: push-to-visible
   is from the end of the manifest PUT until the target answers with the digest. A with-audit
   run pushes for as long as a concurrent audit of all `--tags` tags runs; a baseline run pushes
   `--pushes` images.

    .venv/bin/python -m bench.sync_audit                 # 10,000 tags -> bench/results/sync_audit.json
    .venv/bin/python -m bench.sync_audit --quick         # 500 tags, smoke run -> sync_audit_quick.json

Every process runs on 127.0.0.1 and is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.audit_figures import cpu_seconds, request_counts, summarize, table
from bench.audit_seed import AUDITED, seed, sync_history
from bench.registry_async import AsyncRegistry, iam_token
from bench.servers import load_average, machine_facts
from bench.sync_latency import NAMESPACE, create_namespaces, create_sync_rules, ferry_dev, log
from tests.support.images import make_image

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LIVE = "live"
VISIBLE_TIMEOUT = 120.0


@dataclass
class Bench:
    """The two running regions and the clients the runs use."""

    dev: dict[str, Any]
    session: aiohttp.ClientSession
    source: AsyncRegistry
    target: AsyncRegistry
    manage_token: str
    args: argparse.Namespace
    pushed: int = 0  # live images pushed so far (unique tags across runs)
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def source_url(self) -> str:
        return str(self.dev["regions"][0]["endpoint"])

    @property
    def target_url(self) -> str:
        return str(self.dev["regions"][1]["endpoint"])

    @property
    def target_id(self) -> str:
        return str(self.dev["regions"][1]["id"])

    def pids(self) -> dict[str, list[int]]:
        return {"source": self.dev["regions"][0]["pids"], "target": self.dev["regions"][1]["pids"]}


# --- live pushes and the audit -----------------------------------------------------------------


async def push_and_watch(bench: Bench) -> dict[str, Any]:
    """One new small image pushed to the source; seconds until the target's tag shows it."""
    bench.pushed += 1
    tag = f"l{bench.pushed:05d}"
    image = make_image(f"bench-live-{tag}")
    repository = f"{NAMESPACE}/{LIVE}"
    started = time.perf_counter()
    for blob in image.blobs.values():
        await bench.source.push_blob(repository, blob)
    digest = await bench.source.put_manifest(repository, tag, json.loads(image.manifest))
    pushed, pushed_wall = time.perf_counter(), time.time()
    polls, deadline = 0, pushed + VISIBLE_TIMEOUT
    while time.perf_counter() < deadline:
        polls += 1
        if await bench.target.tag_digest(repository, tag) == digest:
            seen = time.perf_counter()
            return {"tag": tag, "push_s": round(pushed - started, 4), "visible_s": round(seen - pushed, 4),
                    "polls": polls, "pushed_at": pushed_wall}  # fmt: skip
        await asyncio.sleep(bench.args.interval)
    return {"tag": tag, "push_s": round(pushed - started, 4), "visible_s": None, "polls": polls}


def _epoch(moment: str | None) -> float | None:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp() if moment else None


async def job_times(bench: Bench, samples: list[dict[str, Any]]) -> None:
    """Splits each push-to-visible with the live job's startedAt/finishedAt (milliseconds; the
    server's clock is this machine's): push end → claimed (`wait_s`), the copy (`copy_s`)."""
    path = f"/v2/manage/namespaces/{NAMESPACE}/repos/{LIVE}/sync_job"
    jobs: dict[str, dict[str, Any]] = {}
    for offset in range(0, bench.pushed + 1000, 1000):
        params = {"filter": f"limit::1000|offset::{offset}|order::asc"}
        headers = {"X-Auth-Token": bench.manage_token}
        async with bench.session.get(bench.source_url + path, params=params, headers=headers) as response:
            page = await response.json() if response.status == 200 else []
        jobs |= {job["tag"]: job for job in page}
        if len(page) < 1000:
            break
    for sample in samples:
        job = jobs.get(sample["tag"], {})
        started, finished = _epoch(job.get("startedAt")), _epoch(job.get("finishedAt"))
        if started is not None and finished is not None and "pushed_at" in sample:
            sample["wait_s"] = round(started - sample["pushed_at"], 4)
            sample["copy_s"] = round(finished - started, 4)
            sample["job_attempts"] = job.get("attempts")


async def run_audit(bench: Bench) -> dict[str, Any]:
    """One audit of bench/audit against the target through the API; its answer and wall time."""
    path = f"/v2/manage/namespaces/{NAMESPACE}/repos/{AUDITED}/sync_audit"
    headers = {"X-Auth-Token": bench.manage_token}
    started = time.perf_counter()
    async with bench.session.post(
        bench.source_url + path, json={"remoteRegionId": bench.target_id}, headers=headers
    ) as response:
        text = await response.text()
        status = response.status
    seconds = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"sync_audit: HTTP {status} {text[:500]}")
    answer: dict[str, Any] = json.loads(text)
    drift = answer.get("drift", [])
    return {
        "seconds": round(seconds, 2),
        "tagsChecked": answer.get("tagsChecked"),
        "requests": answer.get("requests"),
        "drift_count": len(drift),
        "drift_sample": drift[:5],
        "repaired": answer.get("repaired"),
        "auditId": answer.get("auditId"),
    }


async def scrape(bench: Bench) -> dict[str, Any]:
    """What the runs compare before and after: request counters of both regions and CPU seconds."""
    snapshot: dict[str, Any] = {"cpu": cpu_seconds(bench.pids())}
    for side, url in (("source", bench.source_url), ("target", bench.target_url)):
        async with bench.session.get(url + "/metrics") as response:
            snapshot[side] = request_counts(await response.text())
    snapshot["client_target_requests"] = bench.target.requests
    return snapshot


async def one_run(bench: Bench, kind: str, number: int) -> dict[str, Any]:
    log(f"run {number}: {kind}")
    before, load = await scrape(bench), load_average()
    started = time.perf_counter()
    audit: asyncio.Task[dict[str, Any]] | None = None
    if kind != "baseline":
        audit = asyncio.create_task(run_audit(bench))
    samples: list[dict[str, Any]] = []
    while (audit is not None and not audit.done()) or (audit is None and len(samples) < bench.args.pushes):
        if kind == "audit-alone":
            await asyncio.sleep(0.2)
            continue
        samples.append(await push_and_watch(bench))
        await asyncio.sleep(bench.args.gap)
    result: dict[str, Any] = {"kind": kind, "number": number, "load_start": load}
    await job_times(bench, samples)
    if audit is not None:
        result["audit"] = await audit
    result |= {
        "seconds": round(time.perf_counter() - started, 2),
        "load_end": load_average(),
        "samples": samples,
        "before": before,
        "after": await scrape(bench),
    }
    latencies = [s["visible_s"] for s in samples if s["visible_s"] is not None]
    if latencies:
        log(f"  {len(latencies)} pushes, p50 {statistics.median(latencies):.3f} s")
    if "audit" in result:
        answer = result["audit"]
        log(f"  audit {answer['seconds']} s, {answer['requests']} requests, {answer['drift_count']} drift")
    return result


async def measure(bench: Bench) -> dict[str, Any]:
    create_sync_rules(bench.dev, [AUDITED], create_repos=False)
    create_sync_rules(bench.dev, [LIVE])
    # A rule does not sync what already exists: no job may have been created by now.
    created = {k: v for k, v in (await scrape(bench))["source"].items() if "jobs_created" in k}
    document: dict[str, Any] = {"jobs_created_by_rules": int(sum(created.values()))}
    if not bench.args.no_history:
        log(f"history: manual sync of the {bench.args.tags} seeded tags (the target already holds them)")
        document["history"] = await sync_history(bench.dev, bench.session, bench.args.tags)
        log(f"  {document['history']['jobs']} jobs final in {document['history']['seconds']} s")
    bench.runs.append(await one_run(bench, "audit-alone", 0))
    for number in range(1, bench.args.rounds + 1):
        for kind in ("baseline", "with-audit"):
            bench.runs.append(await one_run(bench, kind, number))
    document["runs"] = bench.runs
    return document


def ferry_tree() -> dict[str, Any]:
    """Which Ferry ran: the commit, files of src/ changed since, and FERRY_SRC/PYTHONPATH if set."""
    import os
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {
        "head": git("rev-parse", "--short", "HEAD"),
        "src_changed": git("status", "--porcelain", "src").splitlines(),
        "pythonpath": os.environ.get("PYTHONPATH", ""),
    }


def default_rate() -> Any:
    """Ferry's FERRY_AUDIT_RATE default (requests a second to each peer), for the record."""
    from ferry.config import Settings

    field = Settings.model_fields.get("audit_rate")
    return field.default if field is not None else None


async def main_async(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    # No access log lines (tens of thousands of requests), and no background reconciler: the only
    # audits are the ones this script starts, so a baseline run has none.
    env = {"FERRY_ACCESS_LOG": "false", "FERRY_AUDIT_INTERVAL_SECONDS": "0"}
    if args.audit_rate:
        env["FERRY_AUDIT_RATE"] = args.audit_rate
    document: dict[str, Any] = {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_facts(),
        "ferry": ferry_tree(),
        "settings": vars(args)
        | {"env": env, "ferry_audit_rate": env.get("FERRY_AUDIT_RATE", default_rate())},
    }
    with ferry_dev(root, env) as dev:
        create_namespaces(dev)
        admin = dev["admin"]
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        connector = aiohttp.TCPConnector(limit=4 * args.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            region = dev["regions"][0]
            bench = Bench(
                dev,
                session,
                AsyncRegistry(session, region["endpoint"], admin["user"], admin["password"]),
                AsyncRegistry(session, dev["regions"][1]["endpoint"], admin["user"], admin["password"]),
                await iam_token(session, region["endpoint"], admin["user"], admin["password"], region["id"]),
                args,
            )
            log(f"seeding {args.tags} tags into both regions")
            document["seed"] = await seed(bench.source, bench.target, args.tags, args.concurrency)
            log(f"  seeded in {document['seed']['seconds']} s")
            document |= await measure(bench)
    document["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    document["summary"] = summarize(document)
    return document


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2, help="baseline + with-audit pairs")
    parser.add_argument("--pushes", type=int, default=30, help="live images per baseline run")
    parser.add_argument("--gap", type=float, default=0.5, help="pause between live pushes (s)")
    parser.add_argument("--interval", type=float, default=0.01, help="poll interval at the target (s)")
    parser.add_argument("--concurrency", type=int, default=8, help="seeding requests in flight per region")
    parser.add_argument(
        "--audit-rate", default="", help="FERRY_AUDIT_RATE for both regions (default: Ferry's)"
    )
    parser.add_argument("--no-history", action="store_true", help="no manual sync job per seeded tag")
    parser.add_argument("--quick", action="store_true", help="500 tags, 10 pushes per baseline")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.tags, args.pushes = min(args.tags, 500), min(args.pushes, 10)
    out = args.out or RESULTS / ("sync_audit_quick.json" if args.quick else "sync_audit.json")
    args.out = str(out)
    with tempfile.TemporaryDirectory(prefix="ferry-audit-bench-") as scratch:
        document = asyncio.run(main_async(args, Path(scratch)))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(table(document["summary"]))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
