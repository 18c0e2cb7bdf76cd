"""`ferry dev`: a local multi-region Ferry, one process per region, peers wired both ways."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import ssl
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

from ferry.cli.devservices import S3, Nginx, Postgres, free_port
from ferry.cli.tls import DevCA, ensure_dev_ca, issue_server_certificate


@dataclass
class RegionProcess:
    """One region: a single `ferry serve`, or (scaled) API processes, workers and their services."""

    id: str
    port: int
    data: Path
    processes: list[subprocess.Popen[bytes]]
    scheme: str = "http"

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"


@dataclass
class Scale:
    postgres: bool = False
    s3: bool = False
    api_processes: int = 2
    workers: int = 2

    @property
    def on(self) -> bool:
        return self.postgres or self.s3


@dataclass
class Services:
    postgres: Postgres | None = None
    s3: S3 | None = None
    nginx: Nginx | None = None

    def stop(self) -> None:
        for service in (self.nginx, self.s3, self.postgres):
            if service is not None:
                service.stop()


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
        # One line per request in each region's log, unless the caller's environment says otherwise.
        "FERRY_ACCESS_LOG": os.environ.get("FERRY_ACCESS_LOG", "true"),
        # One server process per region (`ferry serve` alone takes one per core): several
        # regions already share this machine's cores.
        "FERRY_HTTP_WORKERS": os.environ.get("FERRY_HTTP_WORKERS", "1"),
    }


def _healthy(endpoint: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/readyz", timeout=1, context=context) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _spawn(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "ferry", command], env=env, stdout=out, stderr=out)


class PortTaken(RuntimeError):
    """A region's port is already in use; the message says which and how to choose another."""

    def __init__(self, port: int, suggestion: int) -> None:
        super().__init__(
            f"port {port} is in use; choose another base port: make run PORT={suggestion} "
            f"(or ferry dev --base-port {suggestion})"
        )
        self.port = port


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_ports(base_port: int, count: int) -> None:
    """Before anything starts: every region's port must be free (PortTaken names the first that
    is not, and a base port whose run of ports is free now)."""
    taken = next((p for p in range(base_port, base_port + count) if not _port_free(p)), None)
    if taken is None:
        return
    bases = [base_port + 1000 * step for step in range(1, 60)] + [2000 * step for step in range(1, 32)]
    suggestion = next(
        (b for b in bases if b + count < 65536 and all(_port_free(p) for p in range(b, b + count))),
        base_port + 1000,
    )
    raise PortTaken(taken, suggestion)


def start_regions(
    regions: list[str], base_port: int, data: Path, scale: Scale | None = None, tls: bool = False
) -> tuple[list[RegionProcess], Services, dict[str, Any]]:
    scale = scale or Scale()
    if tls and scale.on:
        raise RuntimeError("--tls serves each region itself; it does not combine with --postgres or --s3")
    check_ports(base_port, len(regions))
    data = data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    ca = ensure_dev_ca(DevCA.at(data)) if tls else None
    scheme = "https" if tls else "http"
    admin = _admin(data)
    ports = {region: base_port + i for i, region in enumerate(regions)}
    services = _start_services(data, scale)
    started: list[RegionProcess] = []
    upstreams: dict[int, list[int]] = {}
    try:
        for region in regions:
            peers = [
                {
                    "id": other,
                    "url": f"{scheme}://127.0.0.1:{ports[other]}",
                    "ak": admin["ak"],
                    "sk": admin["sk"],
                }
                | ({"ca_file": str(ca.cert_file)} if ca else {})
                for other in regions
                if other != region
            ]
            region_data = data / region
            region_data.mkdir(parents=True, exist_ok=True)
            env = _env(region, ports[region], region_data, admin, peers)
            if ca is not None:
                env |= _tls_env(ca, region, region_data)
            if not scale.on:
                process = _spawn("serve", env, region_data / "server.log")
                started.append(RegionProcess(region, ports[region], region_data, [process], scheme))
                continue
            # Clients reach the region through nginx: tokens, Locations and signatures name it.
            env |= _scaled_env(services, region, region_data) | {
                "FERRY_PUBLIC_URL": f"http://127.0.0.1:{ports[region]}"
            }
            api_ports = [free_port() for _ in range(scale.api_processes)]
            processes = [
                _spawn(
                    "serve",
                    env | {"FERRY_PORT": str(port), "FERRY_SYNC_WORKERS": "0"},
                    region_data / f"api-{i + 1}.log",
                )
                for i, port in enumerate(api_ports)
            ]
            processes += [
                _spawn("worker", env, region_data / f"worker-{i + 1}.log") for i in range(scale.workers)
            ]
            upstreams[ports[region]] = api_ports
            started.append(RegionProcess(region, ports[region], region_data, processes))
        if upstreams:
            services.nginx = Nginx(data / "nginx").start(upstreams)
        _wait_healthy(started, ssl.create_default_context(cafile=ca.cert_file) if ca else None)
    except Exception:
        stop_regions(started)
        services.stop()
        raise
    description = {
        "regions": [
            {"id": r.id, "endpoint": r.endpoint, "data": str(r.data), "pids": [p.pid for p in r.processes]}
            for r in started
        ],
        "admin": admin,
    }
    if ca is not None:
        description["ca_file"] = str(ca.cert_file)  # its directory is a cert dir for skopeo
    if scale.on:
        description["scaled"] = {
            "database": "postgresql" if scale.postgres else "sqlite",
            "storage": services.s3.endpoint if services.s3 else "filesystem",
            "api_processes": scale.api_processes,
            "workers": scale.workers,
        }
    target = data / "dev.json"
    written = target.with_suffix(".tmp")
    written.touch(mode=0o600)
    written.chmod(0o600)  # it holds the admin password and SK
    written.write_text(json.dumps(description, indent=2))
    written.replace(target)
    return started, services, description


def _start_services(data: Path, scale: Scale) -> Services:
    services = Services()
    try:
        if scale.postgres:
            services.postgres = Postgres(data / "postgres", free_port()).start()
        if scale.s3:
            services.s3 = S3(data / "s3", free_port()).start()
    except Exception:
        services.stop()
        raise
    return services


def _tls_env(ca: DevCA, region: str, region_data: Path) -> dict[str, str]:
    """A fresh certificate for 127.0.0.1 and localhost, signed by the dev CA."""
    issued = issue_server_certificate(ca, region_data / "tls", region)
    return {"FERRY_TLS_CERT_FILE": str(issued.cert_file), "FERRY_TLS_KEY_FILE": str(issued.key_file)}


def _scaled_env(services: Services, region: str, region_data: Path) -> dict[str, str]:
    # API processes of one region must sign registry tokens with the same key.
    key_file = region_data / "secret.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
    # nginx on loopback forwards every client: its X-Forwarded-For names them.
    env = {"FERRY_SECRET_KEY": key_file.read_text().strip(), "FERRY_TRUSTED_PROXIES": '["127.0.0.1"]'}
    if services.postgres is not None:
        env["FERRY_DATABASE_URL"] = services.postgres.create_database(region.replace("-", "_"))
    if services.s3 is not None:
        bucket = f"ferry-{region}"
        services.s3.bucket(bucket)
        env |= {
            "FERRY_STORAGE_URL": f"s3://{bucket}/blobs",
            "FERRY_S3_ENDPOINT": services.s3.endpoint,
            "FERRY_S3_REGION": "us-east-1",
            "FERRY_S3_ACCESS_KEY_ID": "ferry-dev",
            "FERRY_S3_SECRET_ACCESS_KEY": "ferry-dev",
        }
    return env


def _wait_healthy(
    started: list[RegionProcess], context: ssl.SSLContext | None = None, timeout: float = 180
) -> None:
    deadline = time.monotonic() + timeout
    pending = list(started)
    while pending and time.monotonic() < deadline:
        for region in list(pending):
            if any(p.poll() is not None for p in region.processes):
                logs = "".join(f.read_text()[-1500:] for f in sorted(region.data.glob("*.log")))
                raise RuntimeError(f"region {region.id}: a process exited during start:\n{logs}")
            if _healthy(region.endpoint, context):
                pending.remove(region)
        time.sleep(0.1)
    if pending:
        raise RuntimeError(f"regions {[r.id for r in pending]} did not become healthy")


def stop_regions(started: list[RegionProcess]) -> None:
    processes = [p for region in started for p in region.processes]
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def print_description(console: Console, description: dict[str, Any], data: Path) -> None:
    table = Table(title="Ferry dev regions")
    table.add_column("region")
    table.add_column("endpoint")
    table.add_column("data")
    for region in description["regions"]:
        table.add_row(region["id"], region["endpoint"], region["data"])
    console.print(table)
    admin = description["admin"]
    described = data.resolve() / "dev.json"
    first = description["regions"][0]["endpoint"].split("://", 1)[-1]
    # With --tls, skopeo verifies against the dev CA: its directory is a cert dir.
    ca_file = description.get("ca_file")
    trust = f"--cert-dir {Path(ca_file).parent}" if ca_file else "--tls-verify=false"
    if ca_file:
        console.print(f"CA certificate: {ca_file}")
    if console.is_terminal:
        # Secrets go to the person at the terminal, never into a file stdout was sent to.
        console.print(f"admin user [cyan]{admin['user']}[/cyan]  password [cyan]{admin['password']}[/cyan]")
        console.print(
            f"AK [cyan]{admin['ak']}[/cyan]  SK [cyan]{admin['sk']}[/cyan]  project {admin['project_id']}"
        )
        console.print(f"try: skopeo login {trust} -u {admin['user']} -p {admin['password']} {first}")
    else:
        console.print(
            f"admin user [cyan]{admin['user']}[/cyan], AK [cyan]{admin['ak']}[/cyan]: "
            f"the password and SK are in {described} (readable by you only)"
        )
    console.print(f"described in {described}; Ctrl-C stops every region")


def run_until_stopped(started: list[RegionProcess], services: Services) -> None:
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            exited = [(r, p) for r in started for p in r.processes if p.poll() is not None]
            if exited:
                region, process = exited[0]
                print(
                    f"a process of region {region.id} exited (code {process.returncode}); "
                    f"stopping every region — see the logs in {region.data}",
                    file=sys.stderr,
                )
                break
            time.sleep(0.2)
    finally:
        stop_regions(started)
        services.stop()
