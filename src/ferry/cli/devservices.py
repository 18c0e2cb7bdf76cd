"""Local backing services for `ferry dev --postgres --s3`: PostgreSQL, an S3 server, nginx.

Each is a real server on loopback under the dev data directory, started and stopped by `ferry dev`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


class ServiceError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class Postgres:
    root: Path
    port: int

    @staticmethod
    def binaries() -> Path:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise ServiceError("PostgreSQL is not installed: apt-get install postgresql")
        return Path(found[-1]).parent

    def start(self) -> Postgres:
        bin_dir, data = self.binaries(), self.root / "data"
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        if not (data / "PG_VERSION").exists():
            self._run(
                [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]
            )
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.root / "postgres.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        return self

    def create_database(self, name: str) -> str:
        psql = str(self.binaries() / "psql")
        exists = subprocess.run(
            [
                psql,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{name}'",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not exists:
            subprocess.run(
                [
                    psql,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-qc",
                    f'CREATE DATABASE "{name}"',
                ],
                capture_output=True,
                text=True,
                check=True,
            )
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_postgres([str(self.binaries() / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                capture_output=True,
                check=False,
            )

    @staticmethod
    def _run(command: list[str]) -> None:
        result = subprocess.run(_as_postgres(command), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceError(f"{Path(command[0]).name} failed: {result.stderr.strip()[-500:]}")


@dataclass
class S3:
    """moto in server mode: a real S3 API on loopback (in memory)."""

    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3:
        try:
            import moto  # noqa: F401
        except ImportError:
            raise ServiceError("the S3 server needs moto: pip install 'moto[server]'") from None
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "s3.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=log,
        )
        for _ in range(300):
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.1)
        raise ServiceError("the S3 server did not start")

    def bucket(self, name: str) -> None:
        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/{name}", method="PUT"), timeout=30
        ).read()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


@dataclass
class Nginx:
    """One nginx in front of every scaled region: a server block per region, round-robin."""

    root: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, regions: dict[int, list[int]]) -> Nginx:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise ServiceError("nginx is not installed: apt-get install nginx")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.root / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        config = self.root / "nginx.conf"
        config.write_text(self._config(regions))
        log = (self.root / "nginx.out").open("ab")
        self.process = subprocess.Popen(
            [binary, "-p", str(self.root), "-c", str(config), "-g", "daemon off;"], stdout=log, stderr=log
        )
        return self

    def _config(self, regions: dict[int, list[int]]) -> str:
        temp = self.root / "tmp"
        blocks = []
        for public, backends in regions.items():
            servers = "".join(f"    server 127.0.0.1:{port};\n" for port in backends)
            blocks.append(
                f"  upstream ferry_{public} {{\n{servers}    keepalive 32;\n  }}\n"
                f"  server {{\n    listen 127.0.0.1:{public};\n"
                "    client_max_body_size 0;\n    proxy_request_buffering off;\n    proxy_buffering off;\n"
                "    proxy_http_version 1.1;\n    proxy_read_timeout 600s;\n    proxy_send_timeout 600s;\n"
                f"    location / {{\n      proxy_pass http://ferry_{public};\n"
                '      proxy_set_header Host $http_host;\n      proxy_set_header Connection "";\n'
                "      proxy_set_header X-Forwarded-For $remote_addr;\n    }\n  }\n"
            )
        return (
            f"worker_processes 1;\npid {self.root / 'nginx.pid'};\n"
            f"error_log {self.root / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n  access_log off;\n  client_body_temp_path {temp / 'body'};\n"
            f"  proxy_temp_path {temp / 'proxy'};\n  fastcgi_temp_path {temp / 'fastcgi'};\n"
            f"  uwsgi_temp_path {temp / 'uwsgi'};\n  scgi_temp_path {temp / 'scgi'};\n"
            + "".join(blocks)
            + "}\n"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
