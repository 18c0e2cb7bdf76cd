"""`ferry dev`: a local multi-region Ferry, one process per region, peers wired both ways."""

from __future__ import annotations

import json
import os
import secrets
import signal
import string
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class RegionProcess:
    id: str
    port: int
    data: Path
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _admin(data: Path) -> dict[str, str]:
    """The shared admin, kept in dev.json so a restart prints the same credentials."""
    existing = data / "dev.json"
    if existing.exists():
        try:
            admin: dict[str, str] = json.loads(existing.read_text())["admin"]
            return admin
        except (ValueError, KeyError):
            pass
    alphabet = string.ascii_uppercase + string.digits
    return {
        "account": "ferry",
        "user": "admin",
        "password": secrets.token_urlsafe(12),
        "project_id": secrets.token_hex(16),
        "ak": "".join(secrets.choice(alphabet) for _ in range(20)),
        "sk": secrets.token_urlsafe(30)[:40],
    }


def _env(
    region: str, port: int, data: Path, admin: dict[str, str], peers: list[dict[str, str]]
) -> dict[str, str]:
    return os.environ | {
        "FERRY_REGION": region,
        "FERRY_HOST": "127.0.0.1",
        "FERRY_PORT": str(port),
        "FERRY_DATA_DIR": str(data),
        "FERRY_ADMIN_ACCOUNT": admin["account"],
        "FERRY_ADMIN_USER": admin["user"],
        "FERRY_ADMIN_PASSWORD": admin["password"],
        "FERRY_ADMIN_ACCESS_KEY": admin["ak"],
        "FERRY_ADMIN_SECRET_KEY": admin["sk"],
        "FERRY_ADMIN_PROJECT_ID": admin["project_id"],
        "FERRY_PEERS": json.dumps(peers),
    }


def _healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_regions(
    regions: list[str], base_port: int, data: Path
) -> tuple[list[RegionProcess], dict[str, Any]]:
    data = data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    admin = _admin(data)
    ports = {region: base_port + i for i, region in enumerate(regions)}
    started: list[RegionProcess] = []
    for region in regions:
        peers = [
            {"id": other, "url": f"http://127.0.0.1:{ports[other]}", "ak": admin["ak"], "sk": admin["sk"]}
            for other in regions
            if other != region
        ]
        region_data = data / region
        region_data.mkdir(parents=True, exist_ok=True)
        log = (region_data / "server.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "ferry", "serve"],
            env=_env(region, ports[region], region_data, admin, peers),
            stdout=log,
            stderr=log,
        )
        started.append(RegionProcess(region, ports[region], region_data, process))
    _wait_healthy(started)
    description = {
        "regions": [
            {"id": r.id, "endpoint": r.endpoint, "data": str(r.data), "pid": r.process.pid} for r in started
        ],
        "admin": admin,
    }
    target = data / "dev.json"
    target.with_suffix(".tmp").write_text(json.dumps(description, indent=2))
    target.with_suffix(".tmp").replace(target)
    return started, description


def _wait_healthy(started: list[RegionProcess], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    pending = list(started)
    while pending and time.monotonic() < deadline:
        for region in list(pending):
            if region.process.poll() is not None:
                stop_regions(started)
                log = (region.data / "server.log").read_text()[-2000:]
                raise RuntimeError(f"region {region.id} exited during start:\n{log}")
            if _healthy(region.endpoint):
                pending.remove(region)
        time.sleep(0.1)
    if pending:
        stop_regions(started)
        raise RuntimeError(f"regions {[r.id for r in pending]} did not become healthy")


def stop_regions(started: list[RegionProcess]) -> None:
    for region in started:
        if region.process.poll() is None:
            region.process.send_signal(signal.SIGTERM)
    for region in started:
        try:
            region.process.wait(15)
        except subprocess.TimeoutExpired:
            region.process.kill()


def print_description(console: Console, description: dict[str, Any], data: Path) -> None:
    table = Table(title="Ferry dev regions")
    table.add_column("region")
    table.add_column("endpoint")
    table.add_column("data")
    for region in description["regions"]:
        table.add_row(region["id"], region["endpoint"], region["data"])
    console.print(table)
    admin = description["admin"]
    console.print(f"admin user [cyan]{admin['user']}[/cyan]  password [cyan]{admin['password']}[/cyan]")
    console.print(
        f"AK [cyan]{admin['ak']}[/cyan]  SK [cyan]{admin['sk']}[/cyan]  project {admin['project_id']}"
    )
    first = description["regions"][0]
    console.print(
        f"try: skopeo login --tls-verify=false -u {admin['user']} -p {admin['password']} "
        f"{first['endpoint'].removeprefix('http://')}"
    )
    console.print(f"described in {data.resolve() / 'dev.json'}; Ctrl-C stops every region")


def run_until_stopped(started: list[RegionProcess]) -> None:
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            if any(r.process.poll() is not None for r in started):
                break
            time.sleep(0.2)
    finally:
        stop_regions(started)
