from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import clients, leaks
from tests.support import server as server_module
from tests.support.postgres import create_database, fresh_postgres_url, postgres_url  # noqa: F401
from tests.support.s3server import S3Server
from tests.support.server import ADMIN_PASSWORD, FerryServer, free_port

BACKEND = os.environ.get("FERRY_TEST_BACKEND", "sqlite-fs")
CLIENT_BUILD_MODULES = {"test_go_tools", "test_sdk_samples"}


def pytest_report_header() -> str:
    return f"ferry backend: {BACKEND} (FERRY_TEST_BACKEND=sqlite-fs|postgres-s3)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that look inside the filesystem store only run on the filesystem backend. When
    tests of the Go and Java clients are selected, their builds start now, in the background."""
    if any(item.module.__name__.rsplit(".", 1)[-1] in CLIENT_BUILD_MODULES for item in items if item.module):
        clients.prebuild_in_background()
    if BACKEND == "postgres-s3":
        skip = pytest.mark.skip(reason="inspects the filesystem blob store")
        for item in items:
            if "filesystem_only" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """skopeo's blob-info cache and the SWR SDK's application id stay out of the real HOME."""
    home = tmp_path_factory.mktemp("home")
    # Toolchain caches (Go modules, Maven, built clients) stay in the real home: tests/support/clients.py.
    os.environ.setdefault("FERRY_TEST_REAL_HOME", os.environ.get("HOME", str(Path.home())))
    os.environ["HOME"] = str(home)
    os.environ["XDG_DATA_HOME"] = str(home / "xdg")
    os.environ["_CONTAINERS_ROOTLESS_UID"] = "0"


@pytest.fixture(scope="session", autouse=True)
def _server_backend(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[None]:
    """With FERRY_TEST_BACKEND=postgres-s3 every server gets its own PostgreSQL database and bucket."""
    if BACKEND != "postgres-s3":
        yield
        return
    admin_url = request.getfixturevalue("postgres_url")
    s3 = S3Server(tmp_path_factory.mktemp("s3")).start()

    def env() -> dict[str, str]:
        return {"FERRY_DATABASE_URL": create_database(admin_url)} | s3.server_env()

    server_module.backend_env = env
    yield
    server_module.backend_env = None
    s3.stop()


@pytest.fixture(scope="session", autouse=True)
def _no_secret_in_any_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole run: no password, SK or token a test created appears in a log any test
    or server wrote."""
    undo = leaks.watch_requests()
    yield
    undo()
    found = leaks.found_in_logs(tmp_path_factory.getbasetemp())
    assert not found, f"{len(found)} secret(s) in logs (of {leaks.count()} remembered): {found[:20]}"


@pytest.fixture(scope="session")
def ferry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FerryServer]:
    """One region shared by tests that create their own organizations."""
    server = FerryServer(tmp_path_factory.mktemp("ferry"), free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def new_server(tmp_path: Path) -> Iterator[FerryServer]:
    """A region of this test's own, for tests that kill or restart it."""
    server = FerryServer(tmp_path / "ferry", free_port())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin_password() -> str:
    return ADMIN_PASSWORD
