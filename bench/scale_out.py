"""Scale-out benchmarks.

(a) push/pull MiB/s of one Ferry process on the S3 store (a moto server on loopback) against the
    filesystem store, driven by /work/shared/bench/registry_bench.py (skopeo). moto is a Python
    S3 emulator and is itself the bottleneck: the S3 figures bound moto, not Ferry's S3 driver.
(b) sync jobs per second with 1 and 2 `ferry worker` processes of a scaled region (API-only
    `ferry serve --sync-slots 0` + workers on one PostgreSQL and one bucket): N small tags are
    manual-synced to a peer region; timed from the sync call until every job is final.

Every server runs on a free 127.0.0.1 port and is stopped by PID. Writes bench/results/scale_out.json
and prints a markdown table. Usage: .venv/bin/python -m bench.scale_out [--repeat 1] [--tags 200]
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.servers import REGISTRY_BENCH, Registry, load_average, machine_facts, start_ferry
from tests.support.images import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, push_blob, push_manifest
from tests.support.postgres import PostgresServer, postgres_bin
from tests.support.registry_client import RegistryClient
from tests.support.s3server import S3Server
from tests.support.scaled import TARGET, ScaledRegion, start_scaled_region
from tests.support.server import ADMIN_PASSWORD, free_port

ROOT = Path(__file__).resolve().parent.parent
FINAL = ("success", "existed", "failed", "timeout", "cancel")


# --- (a) store throughput ------------------------------------------------------------------------


def registry_bench(
    command: str, server: Registry, password: str, workloads: str, repeat: int, out: Path
) -> Any:
    subprocess.run(
        [
            sys.executable,
            str(REGISTRY_BENCH),
            command,
            server.host,
            "--workload",
            workloads,
            "--repeat",
            str(repeat),
            "--creds",
            f"admin:{password}",
            "--quiet",
            "--json",
            str(out),
        ],
        check=True,
        timeout=3600,
    )
    return json.loads(out.read_text())


def store_throughput(work: Path, workloads: str, repeat: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    (work / "moto").mkdir()
    s3 = S3Server(work / "moto").start(timeout=180)
    try:
        for store in ("filesystem", "s3"):
            password = secrets.token_urlsafe(12)
            env = s3.server_env() if store == "s3" else {}
            server = start_ferry(work / f"ferry-{store}", password, extra_env=env)
            try:
                for command in ("push", "pull"):
                    load = load_average()
                    document = registry_bench(
                        command, server, password, workloads, repeat, work / f"{store}-{command}.json"
                    )
                    for result in document["results"]:
                        rows.append(
                            {
                                "store": store,
                                "command": command,
                                "workload": result["workload"],
                                "mib": round(result["bytes"] / 2**20, 1),
                                "mib_per_s": result["mib_per_s"],
                                "seconds_median": result["seconds"]["median"],
                                "load_before": load,
                                "load_after": load_average(),
                            }
                        )
                        print(f"  {store} {command} {result['workload']}: {result['mib_per_s']} MiB/s")
            finally:
                server.stop()
    finally:
        s3.stop()
    return rows


# --- (b) sync jobs per second ---------------------------------------------------------------------


def push_small_tags(region: ScaledRegion, repo: str, count: int) -> list[str]:
    client = RegistryClient(region.api(0).url, "admin", ADMIN_PASSWORD)
    layer = os.urandom(16 * 1024)
    layer_digest = push_blob(client, repo, layer)
    tags = [f"t{i:03d}" for i in range(count)]
    for tag in tags:
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"t": tag}}})
        config_digest = push_blob(client, repo, config.encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": len(layer)}],
        }
        push_manifest(client, repo, tag, json.dumps(manifest).encode())
    return tags


async def _statuses(database_url: str) -> dict[str, int]:
    import asyncpg

    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        rows = await connection.fetch("SELECT status, count(*) AS n FROM sync_jobs GROUP BY status")
        return {str(r["status"]): int(r["n"]) for r in rows}
    finally:
        await connection.close()


def sync_rate(
    work: Path, admin_url: str, s3: S3Server, workers: int, slots: int, count: int
) -> dict[str, Any]:
    from tests.support.sync_helpers import create_org, manual_sync  # imports the SDK: after HOME is set

    region = start_scaled_region(work, admin_url, s3, apis=1, workers=workers, slots=slots, timeout=300)
    try:
        create_org(region.api(0), "bench")
        create_org(region.target, "mirror")
        tags = push_small_tags(region, "bench/sync", count)
        load = load_average()
        started = time.perf_counter()
        assert manual_sync(region.api(0), "bench", "sync", tags, TARGET, "mirror") == []
        deadline = time.monotonic() + 1800
        statuses: dict[str, int] = {}
        while time.monotonic() < deadline:
            statuses = asyncio.run(_statuses(region.database_url))
            if sum(statuses.get(s, 0) for s in FINAL) >= count:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        per_worker = [len(w.jobs_done()) for w in region.workers]
        return {
            "worker_processes": workers,
            "slots_per_worker": slots,
            "jobs": count,
            "seconds": round(seconds, 2),
            "jobs_per_s": round(count / seconds, 2),
            "statuses": statuses,
            "jobs_per_worker_process": per_worker,
            "load_before": load,
            "load_after": load_average(),
        }
    finally:
        region.stop()


def sync_throughput(work: Path, count: int, slots: int) -> list[dict[str, Any]]:
    postgres_root = Path(tempfile.mkdtemp(prefix="ferry-scale-bench-pg-"))  # postgres must traverse it
    if os.geteuid() == 0:
        shutil.chown(postgres_root, "postgres", "postgres")
    postgres = PostgresServer(postgres_bin(), postgres_root, free_port())
    (work / "moto-sync").mkdir()
    s3 = S3Server(work / "moto-sync")
    rows = []
    try:
        postgres.start()
        s3.start(timeout=180)
        for workers in (1, 2):
            row = sync_rate(work / f"sync-{workers}", postgres.url(), s3, workers, slots, count)
            print(f"  {workers} worker process(es): {row['jobs_per_s']} jobs/s {row['statuses']}")
            rows.append(row)
    finally:
        s3.stop()
        postgres.stop()
        shutil.rmtree(postgres_root, ignore_errors=True)
    return rows


def markdown(store: list[dict[str, Any]], sync: list[dict[str, Any]]) -> str:
    lines = ["| store | op | workload | MiB | MiB/s | load (1 min) |", "|---|---|---|---|---|---|"]
    for r in store:
        lines.append(
            f"| {r['store']} | {r['command']} | {r['workload']} | {r['mib']} | {r['mib_per_s']} "
            f"| {r['load_before'][0]} |"
        )
    lines += [
        "",
        "| worker processes x slots | jobs | seconds | jobs/s | jobs per process | load (1 min) |",
        "|---|---|---|---|---|---|",
    ]
    for r in sync:
        lines.append(
            f"| {r['worker_processes']} x {r['slots_per_worker']} | {r['jobs']} | {r['seconds']} "
            f"| {r['jobs_per_s']} | {r['jobs_per_worker_process']} | {r['load_before'][0]} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=1, help="registry_bench repeats (median)")
    parser.add_argument("--workload", default="big,layers")
    parser.add_argument("--tags", type=int, default=200, help="tags manual-synced per run")
    parser.add_argument("--slots", type=int, default=2, help="FERRY_SYNC_WORKERS per worker process")
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--skip-sync", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale_out.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ferry-scale-bench-"))
    os.environ["HOME"] = str(work / "home")  # the SWR SDK writes ~/.huaweicloud on import
    try:
        store = [] if args.skip_store else store_throughput(work, args.workload, args.repeat)
        sync = [] if args.skip_sync else sync_throughput(work, args.tags, args.slots)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "notes": "S3 = moto server (Python) on loopback: moto is the bottleneck of the S3 rows.",
        "store_throughput": store,
        "sync_throughput": sync,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(markdown(store, sync))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
