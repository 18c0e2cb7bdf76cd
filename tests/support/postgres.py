"""A real PostgreSQL server for the test session, and a fresh empty database per test.

PostgreSQL is a required test dependency (`make test` installs it): when its binaries are missing
the fixtures fail rather than skip, so a green run always includes the PostgreSQL tests.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import make_url

from tests.support.server import free_port

HOST = "127.0.0.1"


def postgres_bin() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin that holds initdb."""

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.split("/")[-3]))

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if not found:
        pytest.fail(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "run `make system-deps` (part of `make test`)",
            pytrace=False,
        )
    return Path(found[-1]).parent


@dataclass
class PostgresServer:
    bin: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@{HOST}:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Runs a PostgreSQL binary as the postgres user (initdb and postgres refuse root)."""
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> None:
        result = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"initdb failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses={HOST} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        result = self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
            check=False,
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            pytest.fail(f"PostgreSQL did not start:\n{result.stderr}\n{log[-3000:]}", pytrace=False)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)


def create_database(admin_url: str) -> str:
    """A new empty database on the server of `admin_url`; returns its SQLAlchemy URL."""
    url = make_url(admin_url)
    name = f"t_{uuid.uuid4().hex}"
    subprocess.run(
        [
            str(postgres_bin() / "psql"),
            "-h",
            str(url.host),
            "-p",
            str(url.port),
            "-U",
            str(url.username),
            "-d",
            str(url.database),
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            f"CREATE DATABASE {name}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Starts the session's PostgreSQL server; yields the URL of its maintenance database."""
    bin_dir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="ferry-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = PostgresServer(bin_dir, root, free_port())
    try:
        server.start()
        yield server.url()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> str:
    """A new, empty database on the session's PostgreSQL server, for this test alone."""
    return create_database(postgres_url)
