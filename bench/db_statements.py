"""Database statements and transactions per pushed small image and per HEAD blob / GET manifest /
GET tag list, and HTTP requests per push, from Ferry's own /metrics.

Starts one single-process Ferry (`ferry serve --workers 1`, so that one /metrics scrape sees every
request; FERRY_SRC=<dir> runs another source tree, e.g. the baseline worktree), then:

- reads `ferry_db_operation_duration_seconds_count` by kind (statement, read, write transaction)
  and `ferry_http_requests_total` (all APIs but ops: /metrics, /healthz, /readyz) before and after
  each phase;
- idle: a few seconds with no requests, giving the background rate (sync and outbox polling) that
  is subtracted from every phase, scaled by the phase's duration;
- push: N images of registry_bench's `many` layout (`skopeo copy oci:…:mNNN docker://…`, one at a
  time, each skopeo with an empty blob-info cache as registry_bench runs it) into one repository:
  exactly the requests skopeo makes, token requests included;
- HEAD blob, GET manifest (by tag, Accept: OCI/Docker), GET tag list: N sequential requests each
  with one bearer token fetched beforehand.

    .venv/bin/python -m bench.db_statements [--images 20] [--requests 200] [--label after]

Prints a table and writes bench/results/db_statements[_<label>].json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.servers import ADMIN_USER, load_average, start_ferry
from bench.small_requests import ACCEPT, REPO, TAG, bearer_token, host_facts, log, seed_small

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DB_METRIC = "ferry_db_operation_duration_seconds"
HTTP_METRIC = "ferry_http_requests_total"
MANY_LAYOUT = (
    Path(os.environ.get("REGISTRY_BENCH_CACHE", Path.home() / ".cache" / "registry-bench"))
    / "layouts"
    / "many"
)
KINDS = ("statement", "read", "write")


def scrape(base: str) -> dict[str, float]:
    """DB counts by kind, and HTTP requests by `api method route` (ops API left out)."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{DB_METRIC}_count":
                counts[f"db {sample.labels['kind']}"] = sample.value
            elif sample.name == HTTP_METRIC and sample.labels.get("api") != "ops":
                key = f"http {sample.labels['api']} {sample.labels['method']} {sample.labels['route']}"
                counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    keys = set(before) | set(after)
    return {
        k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys if after.get(k, 0.0) != before.get(k, 0.0)
    }


class Phase:
    """Counts of one phase: raw deltas, and per operation with the idle rate taken off."""

    def __init__(self, name: str, operations: int) -> None:
        self.name = name
        self.operations = operations
        self.seconds = 0.0
        self.raw: dict[str, float] = {}

    def per_operation(self, idle_rate: dict[str, float]) -> dict[str, float]:
        out = {}
        for key, value in self.raw.items():
            background = idle_rate.get(key, 0.0) * self.seconds
            out[key] = round(max(value - background, 0.0) / self.operations, 2)
        return out


def measure(base: str, phase: Phase, action: Any) -> Phase:
    before = scrape(base)
    started = time.monotonic()
    action()
    phase.seconds = time.monotonic() - started
    phase.raw = delta(before, scrape(base))
    return phase


def skopeo_push(host: str, creds: str, names: list[str], repo: str, scratch: Path) -> None:
    for name in names:
        cache = Path(tempfile.mkdtemp(prefix="bic-", dir=scratch))
        env = dict(os.environ) | {"XDG_DATA_HOME": str(cache)}
        if os.geteuid() == 0:
            env["_CONTAINERS_ROOTLESS_UID"] = "65534"
        command = ["skopeo", "--insecure-policy", "copy", "--quiet", "--preserve-digests"]
        command += ["--dest-tls-verify=false", f"--dest-creds={creds}"]
        command += [f"oci:{MANY_LAYOUT}:{name}", f"docker://{host}/{repo}:{name}"]
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)
        shutil.rmtree(cache, ignore_errors=True)


async def sequential(
    base: str, token: str, method: str, path: str, headers: dict[str, str], count: int
) -> None:
    h = headers | {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            async with session.request(method, f"{base}/v2/{REPO}/{path}", headers=h) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{method} {path}: HTTP {response.status}")


def table(rows: dict[str, dict[str, float]]) -> str:
    lines = [
        "| operation | statements | transactions (read + write) | read | write | HTTP requests |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, per in rows.items():
        http = sum(v for k, v in per.items() if k.startswith("http "))
        st, rd, wr = (per.get(f"db {k}", 0.0) for k in KINDS)
        lines.append(f"| {name} | {st:.1f} | {rd + wr:.1f} | {rd:.1f} | {wr:.1f} | {http:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--images", type=int, default=20, help="small images pushed (default 20, at most 200)"
    )
    parser.add_argument("--requests", type=int, default=200, help="requests per read endpoint (default 200)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of the idle phase (default 5)")
    parser.add_argument("--label", default="", help="results/db_statements_<label>.json")
    args = parser.parse_args(argv)
    if not (MANY_LAYOUT / "index.json").exists():
        raise SystemExit(f"no {MANY_LAYOUT}: run `python3 /work/shared/bench/registry_bench.py gen` first")
    out_path = RESULTS / (f"db_statements_{args.label}.json" if args.label else "db_statements.json")

    work = Path(tempfile.mkdtemp(prefix="ferry-dbstat-"))
    password = secrets.token_urlsafe(12)
    load_start = load_average()
    ferry_args = ["--workers", "1"]
    phases: list[Phase] = []
    try:
        server = start_ferry(work / "ferry", password, organizations=("bench",), args=ferry_args)
        try:
            base = server.url
            time.sleep(2.0)  # let start-up work (first polls, migrations' follow-ups) pass
            token = asyncio.run(bearer_token(base, password, f"repository:{REPO}:pull,push"))
            digest = asyncio.run(seed_small(base, token))
            idle = measure(base, Phase("idle", 1), lambda: time.sleep(args.idle))
            idle_rate = {k: v / idle.seconds for k, v in idle.raw.items()}
            log(f"# idle {idle.seconds:.1f} s: {idle.raw}")
            names = [f"m{i:03d}" for i in range(args.images)]
            creds = f"{ADMIN_USER}:{password}"
            phases.append(
                measure(
                    base,
                    Phase("push small image (skopeo copy)", len(names)),
                    lambda: skopeo_push(server.host, creds, names, "bench/dbs-many", work),
                )
            )
            token = asyncio.run(bearer_token(base, password, f"repository:{REPO}:pull"))
            reads = {
                "HEAD blob": ("HEAD", f"blobs/{digest}", {}),
                "GET manifest (tag)": ("GET", f"manifests/{TAG}", {"Accept": ACCEPT}),
                "GET tag list": ("GET", "tags/list", {}),
            }
            for name, (method, path, headers) in reads.items():
                phases.append(
                    measure(
                        base,
                        Phase(name, args.requests),
                        lambda m=method, p=path, h=headers: asyncio.run(
                            sequential(base, token, m, p, h, args.requests)
                        ),
                    )
                )
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = {p.name: p.per_operation(idle_rate) for p in phases}
    record = {
        "benchmark": "db_statements",
        "label": args.label,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": host_facts(),
        "ferry_command": " ".join(["ferry", "serve", *ferry_args]),
        "metric": f"{DB_METRIC}_count by kind; {HTTP_METRIC} without api=ops",
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "idle": {"seconds": round(idle.seconds, 2), "counts": idle.raw},
        "phases": [
            {
                "name": p.name,
                "operations": p.operations,
                "seconds": round(p.seconds, 2),
                "raw": p.raw,
                "per_operation": rows[p.name],
            }
            for p in phases
        ],
        "per_operation": rows,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(record, indent=1) + "\n")
    print(table(rows))
    push = rows.get("push small image (skopeo copy)", {})
    routes = {k[5:]: v for k, v in sorted(push.items()) if k.startswith("http ")}
    print("\nHTTP requests per pushed image by route: " + ", ".join(f"{k} {v:g}" for k, v in routes.items()))
    print(f"idle background over {idle.seconds:.1f} s (subtracted): {idle.raw}")
    print(
        f"load average: start {load_start}, end {record['load_average_end']}; "
        f"ferry: {record['ferry_command']}"
    )
    log(f"# wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
