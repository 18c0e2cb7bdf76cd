"""Real Ferry server processes for tests (and bench/): free loopback ports, waiting until a
process answers over HTTP, stopping it by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from ferry.storage import BlobStore, FilesystemBlobStore
from ferry.storage.s3 import S3BlobStore
from tests.support import leaks

ADMIN_PASSWORD = "admin-pass-123"
# Set by the test session when FERRY_TEST_BACKEND asks for PostgreSQL + S3: gives each new server
# the FERRY_* settings of its own fresh database and bucket.
backend_env: Callable[[], dict[str, str]] | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_run(count: int) -> int:
    """A free port followed by `count - 1` more free ones (`ferry dev --base-port` takes a run)."""
    for _ in range(200):
        base = free_port()
        if base + count >= 65000:
            continue
        try:
            for port in range(base + 1, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no run of {count} free loopback ports found")


def log_tail(log: Path | None, chars: int = 3000) -> str:
    if log is None or not log.exists():
        return ""
    return log.read_text(errors="replace")[-chars:]


def wait_http(
    url: str,
    *,
    ok: tuple[int, ...] = (200,),
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    timeout: float = 60,
    name: str = "ferry",
) -> None:
    """Polls GET `url` until it answers one of `ok`; fails at once when `process` exits.

    Either failure names `name` and ends with the tail of its `log`.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log_tail(log)}")
        try:
            if requests.get(url, timeout=1).status_code in ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer {url} within {timeout:.0f}s: {log_tail(log)}")


def kill_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL by PID, if it still runs."""
    if process is not None and process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)


def stop_process(process: subprocess.Popen[bytes] | None, grace: float = 10) -> None:
    """SIGTERM by PID, then SIGKILL by PID if it still runs after `grace` seconds."""
    if process is None or process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        kill_process(process)


@dataclass
class FerryServer:
    data: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    # Extra `ferry serve` arguments (e.g. ["--workers", "2"]).
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    _cache: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _env(self) -> dict[str, str]:
        env = (
            os.environ
            | {
                "FERRY_DATA_DIR": str(self.data),
                "FERRY_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "FERRY_PORT": str(self.port),
                "FERRY_HOST": "127.0.0.1",
                # One process unless a test asks for more (args ["--workers", "2"] or this env):
                # tests kill and inspect the server by its PID.
                "FERRY_HTTP_WORKERS": "1",
            }
            | self.env
        )
        leaks.remember_settings(env)
        return env

    def start(self, timeout: float = 60) -> FerryServer:
        if backend_env is not None and "FERRY_DATABASE_URL" not in self.env:
            self.env = backend_env() | self.env  # kept, so a restart finds the same state
        self.data.mkdir(parents=True, exist_ok=True)
        leaks.remember_log(self.log)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ferry", "serve", *self.args], env=self._env(), stdout=log, stderr=log
            )
        try:
            wait_http(f"{self.url}/readyz", process=self.process, log=self.log, timeout=timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    @property
    def log(self) -> Path:
        return self.data / "server.log"

    def stop(self) -> None:
        stop_process(self.process)

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        kill_process(self.process)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Runs `ferry ARGS` against this server's data directory."""
        result = subprocess.run(
            [sys.executable, "-m", "ferry", *args],
            env=self._env(),
            capture_output=True,
            text=True,
            check=check,
        )
        leaks.remember_cli(args, result.stdout)
        if args[:1] == ("key",) or args[:2] == ("user", "passwd"):
            # A key or password change voids the user's IAM tokens (SWR-API.md): the admin's
            # cached one may be among them.
            self._cache.pop("token", None)
        return result

    def user(self, name: str, password: str) -> None:
        self.cli("user", "create", name, "--password", password)

    def admin_token(self) -> str:
        """An IAM token of the bootstrap admin, for management API calls."""
        if "token" not in self._cache:
            user = {"name": "admin", "password": ADMIN_PASSWORD}
            identity = {"methods": ["password"], "password": {"user": user}}
            body: dict[str, Any] = {"auth": {"identity": identity}}
            response = requests.post(f"{self.url}/v3/auth/tokens", json=body, timeout=60)
            response.raise_for_status()
            self._cache["token"] = response.headers["X-Subject-Token"]
        return self._cache["token"]

    def org(self, name: str) -> None:
        """Creates an organization through the management API (faster than the CLI)."""
        for _attempt in range(2):
            response = requests.post(
                f"{self.url}/v2/manage/namespaces",
                json={"namespace": name},
                headers={"X-Auth-Token": self.admin_token()},
                timeout=60,
            )
            if response.status_code != 401:
                break
            # Another test changed the admin's keys, which voids earlier tokens: take a new one.
            self._cache.pop("token", None)
        assert response.status_code == 201, response.text

    def grant(self, user: str, org: str, auth: int) -> None:
        self.cli("grant", user, org, "--auth", str(auth))


def store_of(server: FerryServer) -> BlobStore:
    """The region's blob store itself (a directory, or its bucket under FERRY_TEST_BACKEND=postgres-s3)."""
    env = server.env
    if "FERRY_STORAGE_URL" in env:
        return S3BlobStore.from_url(
            env["FERRY_STORAGE_URL"],
            endpoint=env["FERRY_S3_ENDPOINT"],
            region=env["FERRY_S3_REGION"],
            access_key=env["FERRY_S3_ACCESS_KEY_ID"],
            secret_key=env["FERRY_S3_SECRET_ACCESS_KEY"],
        )
    return FilesystemBlobStore(server.data / "storage")
