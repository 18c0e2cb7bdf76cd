"""Start and stop the registries the benchmarks measure: Ferry and Debian's distribution 2.8.

Ferry runs through the test harness (tests/support/server.py: FerryServer, free ports, waiting
for HTTP, stopping by PID); distribution is started here with the same helpers. Every server
listens on 127.0.0.1 on a free port, keeps its data in a directory the caller owns, and is
stopped by its PID (SIGTERM, then SIGKILL after a grace period).

Run the benchmarks from the repository root as modules (`.venv/bin/python -m bench.compare`), so
that both `bench` and `tests.support` import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tests.support.server import FerryServer, free_port, stop_process, wait_http

REGISTRY_BENCH = Path("/work/shared/bench/registry_bench.py")
DISTRIBUTION = "docker-registry"
ADMIN_USER = "admin"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class Registry(Protocol):
    """What the benchmarks use of a running registry."""

    @property
    def host(self) -> str: ...  # 127.0.0.1:<port>

    @property
    def url(self) -> str: ...

    @property
    def pid(self) -> int: ...

    def stop(self) -> None: ...


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_facts() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": sys.version.split()[0]}


def ferry_env(password: str) -> dict[str, str]:
    """Settings for a benchmarked Ferry: the admin's password, and FERRY_SRC if it is set.

    FERRY_SRC=<dir with ferry/> runs a fixed snapshot of the sources while the tree is being
    edited; otherwise Ferry is the interpreter's install (the venv's, i.e. the working tree).
    """
    # "0": one HTTP process per core, the default of `ferry serve` (the test harness's FerryServer
    # runs one process unless told otherwise, so that tests can signal it by PID).
    env = {"FERRY_ADMIN_PASSWORD": password, "FERRY_HTTP_WORKERS": "0"}
    src = os.environ.get("FERRY_SRC")
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    return env


def start_ferry(
    data: Path,
    password: str,
    organizations: tuple[str, ...] = ("bench",),
    extra_env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> FerryServer:
    """A Ferry region on a free port, with the bootstrap admin and the given organizations.

    `args` are extra `ferry serve` arguments (none: what a user runs, the defaults).
    """
    server = FerryServer(
        data, free_port(), env=ferry_env(password) | (extra_env or {}), args=list(args or [])
    )
    server.start(timeout=START_TIMEOUT)
    for organization in organizations:
        try:
            server.cli("org", "create", organization)
        except subprocess.CalledProcessError as error:
            server.stop()
            output = f"{error.stdout}{error.stderr}"
            raise RuntimeError(f"ferry org create {organization} failed:\n{output}") from error
    return server


@dataclass
class Distribution:
    """A running Debian docker-registry process."""

    process: subprocess.Popen[bytes]
    port: int
    data: Path
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        stop_process(self.process, grace=STOP_TIMEOUT)


def start_distribution(data: Path) -> Distribution:
    """Debian's docker-registry with registry_bench's reference config (127.0.0.1, filesystem)."""
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    root = data / "data"
    root.mkdir(exist_ok=True)
    config = subprocess.run(
        [sys.executable, str(REGISTRY_BENCH), "reference-config", "--port", str(port), "--root", str(root)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    config_path = data / "config.yml"
    config_path.write_text(config)
    log = data / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [DISTRIBUTION, "serve", str(config_path)], stdout=out, stderr=subprocess.STDOUT
        )
    server = Distribution(process, port, data, log)
    try:
        wait_http(
            f"{server.url}/v2/",
            ok=(200, 401),
            process=process,
            log=log,
            timeout=START_TIMEOUT,
            name="distribution",
        )
    except RuntimeError:
        server.stop()
        raise
    return server
