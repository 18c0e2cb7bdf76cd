"""Start and stop the registries the benchmarks measure: Ferry and Debian's distribution 2.8.

Every server listens on 127.0.0.1 on a free port, keeps its data in a directory the caller owns,
and is stopped by its PID (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
REGISTRY_BENCH = Path("/work/shared/bench/registry_bench.py")
DISTRIBUTION = "docker-registry"
ADMIN_USER = "admin"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def ferry_command() -> tuple[list[str], dict[str, str]]:
    """How to run `ferry`: the venv's install (the working tree), or FERRY_SRC=<dir with ferry/>.

    FERRY_SRC lets a benchmark run a fixed snapshot of the sources while the tree is being edited.
    """
    env = dict(os.environ)
    src = os.environ.get("FERRY_SRC")
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    return [str(PYTHON), "-m", "ferry"], env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    data: Path
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.hostport}"

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM by PID, wait, then SIGKILL by PID if it is still there."""
        if self.process.poll() is not None:
            return
        os.kill(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT)


def _wait_http(server: Server, path: str, ok: tuple[int, ...]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + path, timeout=2) as response:
                if response.status in ok:
                    return
        except urllib.error.HTTPError as error:
            if error.code in ok:
                return
        except OSError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.name} did not answer on {server.url}{path}:\n{server.log_tail()}")


def start_ferry(data: Path, password: str, organizations: tuple[str, ...] = ("bench",)) -> Server:
    """A Ferry region on a free port, with the bootstrap admin and the given organizations."""
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = data / "server.log"
    ferry, env = ferry_command()
    env["FERRY_ADMIN_PASSWORD"] = password
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*ferry, "serve", "--data", str(data), "--port", str(port), "--host", "127.0.0.1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server("ferry", process, port, data, log)
    _wait_http(server, "/healthz", (200,))
    for organization in organizations:
        result = subprocess.run(
            [*ferry, "org", "create", organization, "--data", str(data)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            server.stop()
            raise RuntimeError(f"ferry org create {organization} failed:\n{result.stdout}{result.stderr}")
    return server


def start_distribution(data: Path) -> Server:
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
    server = Server("distribution", process, port, data, log)
    _wait_http(server, "/v2/", (200, 401))
    return server
