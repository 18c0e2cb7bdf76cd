from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ADMIN_PASSWORD, FerryServer, free_port


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """skopeo's blob-info cache and the SWR SDK's application id stay out of the real HOME."""
    home = tmp_path_factory.mktemp("home")
    os.environ["HOME"] = str(home)
    os.environ["XDG_DATA_HOME"] = str(home / "xdg")
    os.environ["_CONTAINERS_ROOTLESS_UID"] = "0"


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
