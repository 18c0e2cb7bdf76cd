"""A scaled-out region: API-only processes and `ferry worker` processes sharing one PostgreSQL
database and one S3 bucket, plus a plain region as their sync peer. Everything stops by PID."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import leaks
from tests.support.postgres import create_database
from tests.support.regions import ACCESS_KEY, PROJECT_ID, SECRET_KEY
from tests.support.s3server import S3Server
from tests.support.server import ADMIN_PASSWORD, FerryServer, free_port, kill_process, stop_process, wait_http

SOURCE = "cn-north-4"
TARGET = "cn-east-3"
# The final line of each job (ferry/sync/joblog.py): "sync job=<id> org/repo:tag → region/org: <status> …".
JOB_DONE = re.compile(r"sync job=(\d+) \S+ → \S+: (success|existed|failed|timeout|cancel)\b")


@dataclass
class Process:
    """One `python -m ferry ...` process with its own log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        leaks.remember_settings(self.env)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ferry", *self.args], env=os.environ | self.env, stdout=out, stderr=out
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, signum: int) -> None:
        if self.running():
            os.kill(self.pid, signum)

    def stop(self, timeout: float = 15) -> None:
        stop_process(self.process, grace=timeout)

    def kill(self) -> None:
        """SIGKILL: no chance to hand a job back."""
        kill_process(self.process)

    def jobs_done(self) -> dict[int, str]:
        """Job id → final status, from this worker's "sync job=<id> … : <status>" log lines."""
        return {int(m.group(1)): m.group(2) for m in JOB_DONE.finditer(self.text())}


@dataclass
class ScaledRegion:
    """N API processes (`serve --sync-slots 0`) and M `ferry worker` processes of one region."""

    root: Path
    database_url: str
    target: FerryServer
    apis: list[Process] = field(default_factory=list)
    workers: list[Process] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def api(self, index: int) -> FerryServer:
        """A handle on API process `index` for the helpers that take a FerryServer (never started)."""
        return FerryServer(self.root / f"api{index}", self.ports[index], env=dict(self.env))

    def lease_owners(self) -> dict[int, str | None]:
        """sync_jobs.id → lease_owner ("host:pid:nonce"), read straight from PostgreSQL."""
        rows = asyncio.run(_query(self.database_url, "SELECT id, lease_owner FROM sync_jobs"))
        return {int(r["id"]): r["lease_owner"] for r in rows}

    def transfers(self) -> dict[int, int]:
        """job id → highest acknowledged offset of its chunked transfers."""
        sql = 'SELECT job_id, MAX("offset") AS offset FROM sync_transfers GROUP BY job_id'
        rows = asyncio.run(_query(self.database_url, sql))
        return {int(r["job_id"]): int(r["offset"] or 0) for r in rows}

    def stop(self) -> None:
        for process in [*self.workers, *self.apis]:
            process.stop()
        self.target.stop()


async def _query(database_url: str, sql: str) -> list[dict[str, Any]]:
    import asyncpg

    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(dsn)
    try:
        return [dict(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


def start_scaled_region(
    root: Path,
    admin_url: str,
    s3: S3Server,
    *,
    apis: int = 2,
    workers: int = 2,
    slots: int = 2,
    extra_env: dict[str, str] | None = None,
    timeout: float = 180,
) -> ScaledRegion:
    """Starts the target region, then every process of the scaled source region at once.

    The processes share nothing but the database URL, the bucket and the settings: each has its
    own data directory, so the registry-token key must be (and is) given explicitly.
    """
    target_port = free_port()
    target = FerryServer(
        root / "target",
        target_port,
        env={
            "FERRY_REGION": TARGET,
            "FERRY_ADMIN_ACCESS_KEY": ACCESS_KEY,
            "FERRY_ADMIN_SECRET_KEY": SECRET_KEY,
            "FERRY_ADMIN_PROJECT_ID": PROJECT_ID,
            "FERRY_PEERS": "[]",
        },
    )
    peers = [{"id": TARGET, "url": target.url, "ak": ACCESS_KEY, "sk": SECRET_KEY}]
    env = (
        {
            "FERRY_REGION": SOURCE,
            "FERRY_DATABASE_URL": create_database(admin_url),
            "FERRY_SECRET_KEY": secrets.token_hex(32),
            "FERRY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "FERRY_ADMIN_ACCESS_KEY": ACCESS_KEY,
            "FERRY_ADMIN_SECRET_KEY": SECRET_KEY,
            "FERRY_ADMIN_PROJECT_ID": PROJECT_ID,
            "FERRY_PEERS": json.dumps(peers),
            "FERRY_HOST": "127.0.0.1",
            "FERRY_SYNC_WORKERS": str(slots),
        }
        | s3.server_env()
        | (extra_env or {})
    )
    region = ScaledRegion(root, env["FERRY_DATABASE_URL"], target, env=env)
    region.ports = [free_port() for _ in range(apis)]
    for index, port in enumerate(region.ports):
        data = root / f"api{index}"
        process_env = env | {"FERRY_DATA_DIR": str(data), "FERRY_PORT": str(port)}
        region.apis.append(
            # One process each (the test stops and kills API processes by PID).
            Process(
                f"api{index}",
                ["serve", "--workers", "1", "--sync-slots", "0"],
                process_env,
                data / "server.log",
            )
        )
    # Each worker answers /readyz on a port of its own (`ferry worker --port`).
    worker_ports = [free_port() for _ in range(workers)]
    for index, port in enumerate(worker_ports):
        data = root / f"worker{index}"
        process_env = env | {"FERRY_DATA_DIR": str(data)}
        args = ["worker", "--port", str(port)]
        region.workers.append(Process(f"worker{index}", args, process_env, data / "worker.log"))
    try:
        target.start(timeout)
        for process in [*region.apis, *region.workers]:
            process.start()
        deadline = time.monotonic() + timeout
        for process, port in zip([*region.apis, *region.workers], region.ports + worker_ports, strict=True):
            remaining = max(deadline - time.monotonic(), 0.1)
            wait_http(
                f"http://127.0.0.1:{port}/readyz",
                process=process.process,
                log=process.log,
                timeout=remaining,
                name=process.name,
            )
    except Exception:
        region.stop()
        raise
    return region
