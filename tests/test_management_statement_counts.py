"""Every list of the management API costs a fixed number of SQL statements, however long it is.

In process: the real application (aiohttp's test server, the real handlers, auth and services)
on a SQLite database built by the real migrations. Every statement any engine runs while one
request is served is counted. A list of 1 and a list of 500 must cost the same, so the cost of a
page never grows with its rows (no query per row). tests/test_statement_counts.py checks the
repository and tag service functions on both databases; this checks what the handlers really do.

The caller is a user who is no administrator and holds a read permission on every organization:
the case where organization rights are looked up one by one would show.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from ferry.app import create_app
from ferry.config import Settings
from ferry.identity.caller import READ
from ferry.identity.service import create_user
from ferry.metadata.db import Database
from ferry.metadata.models import (
    Account,
    Blob,
    Manifest,
    ManifestReference,
    Organization,
    Permission,
    Repository,
    SyncJob,
    SyncRule,
    Tag,
    User,
)
from ferry.state import STATE
from tests.support.inprocess import counted_statements

MANY = 500
PASSWORD = "reader-password-1"
FIRST = "org0000"
REPOS = f"/v2/manage/namespaces/{FIRST}/repos/app"


@dataclass(frozen=True)
class Listing:
    """One list endpoint: its path for `n` rows and how many rows an answer holds."""

    name: str
    path: str  # "{n}" is the page size

    def url(self, n: int) -> str:
        return self.path.replace("{n}", str(n))


LISTINGS = [
    Listing("namespaces", "/v2/manage/namespaces"),
    Listing("repositories", "/v2/manage/repos?filter=limit::{n}|offset::0"),
    Listing("tags", REPOS + "/tags?limit={n}&offset=0"),
    Listing("sync rules", REPOS + "/sync_repo"),
    Listing("sync jobs", REPOS + "/sync_job?filter=limit::{n}|offset::0"),
    Listing("overview", "/v2/manage/overview"),
]


def rows_in(name: str, body: Any) -> int:
    if name == "namespaces":
        return len(body["namespaces"])
    if name == "overview":
        return int(body["repo_num"])
    return len(body)


async def _reader(db: Database) -> None:
    async with db.write() as session:
        await create_user(session, "acme", "reader", PASSWORD)


async def grow(db: Database, count: int) -> None:
    """`count` organizations, each with the reader's read permission and a repository `app`
    holding one image under one tag; the first repository also gets `count` tags, sync rules
    and sync jobs in all."""
    async with db.write() as session:
        user = await session.scalar(select(User).where(User.name == "reader"))
        account = await session.get(Account, user.account_id) if user else None
        assert user is not None and account is not None
        have = int(await session.scalar(select(func.count()).select_from(Organization)) or 0)
        for n in range(have, count):
            org = Organization(account_id=account.id, name=f"org{n:04d}", creator_name="reader")
            session.add(org)
            await session.flush()
            session.add(Permission(organization_id=org.id, user_id=user.id, auth=READ))
            repository = Repository(organization_id=org.id, name="app", creator_name="reader")
            session.add(repository)
            await session.flush()
            layer, manifest_digest = f"sha256:{n:064x}", f"sha256:{n + 10_000:064x}"
            session.add(Blob(digest=layer, size=100 + n))
            manifest = Manifest(
                repository_id=repository.id,
                digest=manifest_digest,
                media_type="application/vnd.oci.image.manifest.v1+json",
                size=10,
                content_size=110 + n,
                payload=b"{}",
            )
            session.add(manifest)
            await session.flush()
            session.add(ManifestReference(manifest_id=manifest.id, digest=layer, is_manifest=False))
            session.add(Tag(repository_id=repository.id, name="v0000", digest=manifest_digest))
        first = await session.scalar(
            select(Repository)
            .join(Organization, Organization.id == Repository.organization_id)
            .where(Organization.name == FIRST)
        )
        assert first is not None
        digest = await session.scalar(select(Manifest.digest).where(Manifest.repository_id == first.id))
        assert digest is not None
        tags = int(await session.scalar(select(func.count()).where(Tag.repository_id == first.id)) or 0)
        session.add_all(
            Tag(repository_id=first.id, name=f"v{t:04d}", digest=digest) for t in range(tags, count)
        )
        rules = int(await session.scalar(select(func.count()).where(SyncRule.repository_id == first.id)) or 0)
        session.add_all(
            SyncRule(repository_id=first.id, remote_region_id="cn-east-3", remote_namespace=f"t{r:04d}")
            for r in range(rules, count)
        )
        jobs = int(await session.scalar(select(func.count()).select_from(SyncJob)) or 0)
        session.add_all(
            SyncJob(
                repository_id=first.id,
                account_id=account.id,
                namespace=FIRST,
                repo_name="app",
                remote_region_id="cn-east-3",
                remote_namespace=FIRST,
                tag=f"v{j:04d}",
                trigger="manual",
                status="success",
            )
            for j in range(jobs, count)
        )


@pytest.fixture(scope="module")
async def costs(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, dict[int, int]]]:
    """Statements per list endpoint, for 1 row and for MANY rows."""
    data: Path = tmp_path_factory.mktemp("counts")
    # No background loops: their polls would be counted with the listing.
    settings = Settings(data_dir=data, admin_password="admin-pass-123", sync_workers=0, webhook_slots=0)
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        db = client.app[STATE].db
        await _reader(db)
        login = {"user": {"name": "reader", "password": PASSWORD}}
        response = await client.post(
            "/v3/auth/tokens", json={"auth": {"identity": {"methods": ["password"], "password": login}}}
        )
        assert response.status == 201, await response.text()
        headers = {"X-Auth-Token": response.headers["X-Subject-Token"]}
        result: dict[str, dict[int, int]] = {listing.name: {} for listing in LISTINGS}
        overview: dict[int, Any] = {}
        for size in (1, MANY):
            await grow(db, size)
            for listing in LISTINGS:
                with counted_statements() as statements:
                    response = await client.get(listing.url(size), headers=headers)
                    body = await response.json()
                assert response.status == 200, body
                assert rows_in(listing.name, body) == size, (listing.name, body)
                result[listing.name][size] = len(statements)
                if listing.name == "overview":
                    overview[size] = body
        # The overview sums in SQL what it once summed row by row: each repository holds one
        # blob of 100 + n bytes and a 10-byte manifest; the first holds every tag, the rest one.
        for size in (1, MANY):
            assert overview[size]["store_space"] == sum(110 + n for n in range(size))
            assert overview[size]["image_num"] == size + (size - 1)
            assert overview[size]["namspace_num"] == size
        yield result
    finally:
        await client.close()


@pytest.mark.parametrize("name", [listing.name for listing in LISTINGS])
def test_a_list_of_500_costs_what_a_list_of_1_does(costs: dict[str, dict[int, int]], name: str) -> None:
    one, many = costs[name][1], costs[name][MANY]
    print(f"{name}: {one} statements for 1, {many} for {MANY}")
    assert one == many, f"{name}: {one} statements for 1 row, {many} for {MANY}"
