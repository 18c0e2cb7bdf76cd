"""Fixtures of the conformance port: organizations, users and an admin client.

The `ferry` CLI takes seconds to start on a busy machine, so independent calls run in parallel.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conformance.helpers import ORG, PUSHER, PUSHER_ORG, PUSHER_PASSWORD, READER, READER_PASSWORD
from tests.support.registry_client import RegistryClient
from tests.support.server import FerryServer


def _parallel(server: FerryServer, *commands: tuple[str, ...]) -> None:
    with ThreadPoolExecutor(len(commands)) as pool:
        results = list(pool.map(lambda args: server.cli(*args, check=False), commands))
    for command, result in zip(commands, results, strict=True):
        output = result.stdout + result.stderr
        assert result.returncode == 0 or "already exists" in output, (command, output)


@pytest.fixture(scope="session")
def conformance_org(ferry_server: FerryServer) -> str:
    """The organization `conformance` (image names are <organization>/<repository>), a user with
    read-only rights on it and a user owning another organization but with no right on this one."""
    _parallel(
        ferry_server,
        ("org", "create", ORG),
        ("user", "create", READER, "--password", READER_PASSWORD),
        ("user", "create", PUSHER, "--password", PUSHER_PASSWORD),
    )
    _parallel(
        ferry_server,
        ("grant", READER, ORG, "--auth", "1"),
        ("org", "create", PUSHER_ORG, "--owner", PUSHER),
    )
    return ORG


@pytest.fixture(scope="session")
def registry(ferry_server: FerryServer, admin_password: str, conformance_org: str) -> RegistryClient:
    """A client logged in as the bootstrap administrator (all rights in its account)."""
    return RegistryClient(ferry_server.url, "admin", admin_password)
