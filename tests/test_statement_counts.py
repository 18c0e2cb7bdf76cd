"""List endpoints cost a fixed number of SQL statements, whatever the page size.

The management API's repository and tag lists call these service functions; a query per row
would make a page of 500 cost 500 times more round trips to the database than a page of 1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ferry.images import inventory
from ferry.metadata.models import Blob, Manifest, ManifestReference, Organization, Repository, Tag
from ferry.metadata.statements import insert_ignore
from tests.support.inprocess import ORG, World, counted_statements, database_url, digest_of

MANY = 500


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    region = await World(database_url(request.param, tmp_path, request), tmp_path).open()
    yield region
    await region.close()


async def _organization_id(world: World) -> int:
    async with world.db.read() as session:
        org = await session.scalar(Organization.__table__.select().where(Organization.name == ORG))
        assert org is not None
        return int(org)


async def _fill(world: World, repositories: int, tags_each: int) -> list[int]:
    """Repositories, each with one image (a blob and a manifest) under `tags_each` tags."""
    org_id = await _organization_id(world)
    ids = []
    async with world.db.write() as session:
        for n in range(repositories):
            repository = Repository(organization_id=org_id, name=f"app{n:04d}", creator_name="root")
            session.add(repository)
            await session.flush()
            ids.append(repository.id)
            layer = digest_of(f"layer {n}".encode())
            await insert_ignore(session, Blob, digest=layer, size=100 + n)
            manifest = Manifest(
                repository_id=repository.id,
                digest=digest_of(f"manifest {n}".encode()),
                media_type="application/vnd.oci.image.manifest.v1+json",
                size=10,
                content_size=110 + n,
                payload=b"{}",
            )
            session.add(manifest)
            await session.flush()
            session.add(ManifestReference(manifest_id=manifest.id, digest=layer, is_manifest=False))
            session.add_all(
                Tag(repository_id=repository.id, name=f"v{t:04d}", digest=manifest.digest)
                for t in range(tags_each)
            )
    return ids


async def _repository_page_statements(world: World, limit: int) -> tuple[int, int]:
    org_id = await _organization_id(world)
    with counted_statements() as statements:
        async with world.db.read() as session:
            listings, total = await inventory.list_repositories(
                session, [org_id], None, None, None, 0, limit, "name", False
            )
    assert len(listings) == limit and total == MANY
    return len(statements), listings[-1].figures.num_images


async def test_a_page_of_500_repositories_costs_what_a_page_of_1_does(world: World) -> None:
    await _fill(world, MANY, tags_each=2)
    one, tags_of_one = await _repository_page_statements(world, 1)
    many, tags_of_many = await _repository_page_statements(world, MANY)
    assert one == many, f"{one} statements for 1 repository, {many} for {MANY}"
    assert tags_of_one == tags_of_many == 2
    # And the figures are right: one blob of 100 + n bytes plus a 10-byte manifest each.
    async with world.db.read() as session:
        listings, _ = await inventory.list_repositories(
            session, [await _organization_id(world)], None, None, None, 0, 3, "name", False
        )
    assert [row.figures.size for row in listings] == [110, 111, 112]
    assert [row.tags for row in listings] == [["v0000", "v0001"]] * 3
    assert {row.account.name for row in listings} == {"acme"}


async def test_a_page_of_500_tags_costs_what_a_page_of_1_does(world: World) -> None:
    (repository_id,) = await _fill(world, 1, tags_each=MANY)
    counts = []
    for limit in (1, MANY):
        with counted_statements() as statements:
            async with world.db.read() as session:
                views, total = await inventory.tag_page(session, repository_id, 0, limit, "tag", False, None)
        assert len(views) == limit and total == MANY
        counts.append(len(statements))
    assert counts[0] == counts[1], f"{counts[0]} statements for 1 tag, {counts[1]} for {MANY}"
