"""The whole server on PostgreSQL: a real process pushes and pulls an image through it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from ferry.metadata.db import Database
from ferry.metadata.models import Organization, Repository, Tag
from tests.support.images import OCI_MANIFEST, digest_of, get_manifest, make_image, push_image
from tests.support.registry_client import RegistryClient
from tests.support.server import ADMIN_PASSWORD, FerryServer, free_port


async def tags_in_database(url: str) -> list[tuple[str, str, str]]:
    database = Database(url)
    try:
        async with database.read() as session:
            rows = await session.execute(
                select(Organization.name, Repository.name, Tag.name)
                .select_from(Tag)
                .join(Repository, Repository.id == Tag.repository_id)
                .join(Organization, Organization.id == Repository.organization_id)
                .order_by(Tag.name)
            )
            return [(org, repo, tag) for org, repo, tag in rows]
    finally:
        await database.close()


def test_server_on_postgres_pushes_and_pulls(tmp_path: Path, fresh_postgres_url: str) -> None:
    server = FerryServer(tmp_path / "ferry", free_port(), env={"FERRY_DATABASE_URL": fresh_postgres_url})
    try:
        server.start()
        server.org("pg")
        client = RegistryClient(server.url, "admin", ADMIN_PASSWORD)
        image = make_image("postgres")
        push_image(client, "pg/app", "v1", image)
        # The same blobs again (already linked) and a second tag on the same manifest.
        push_image(client, "pg/app", "v2", image)

        # A chunked upload: start, PATCH, then PUT with the digest.
        chunked = b"chunk one|" * 100 + b"chunk two"
        started = client.post("/v2/pg/app/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        patched = client.patch(location, data=chunked[:500], headers={"Content-Range": "0-499"})
        assert patched.status_code == 202, patched.text
        finished = client.put(
            patched.headers["Location"], params={"digest": digest_of(chunked)}, data=chunked[500:]
        )
        assert finished.status_code == 201, finished.text

        # A fresh client, so nothing is served from what this one pushed.
        puller = RegistryClient(server.url, "admin", ADMIN_PASSWORD)
        for tag in ("v1", "v2"):
            pulled = get_manifest(puller, "pg/app", tag)
            assert pulled.status_code == 200, pulled.text
            assert pulled.headers["Docker-Content-Digest"] == image.digest
            assert pulled.headers["Content-Type"] == OCI_MANIFEST
            assert digest_of(pulled.content) == image.digest
        for digest in [*image.blobs, digest_of(chunked)]:
            blob = puller.get(f"/v2/pg/app/blobs/{digest}")
            assert blob.status_code == 200, blob.text
            assert digest_of(blob.content) == digest
        assert puller.get("/v2/pg/app/tags/list").json() == {"name": "pg/app", "tags": ["v1", "v2"]}
        assert "pg/app" in puller.get("/v2/_catalog").json()["repositories"]

        # The state lives in PostgreSQL, not in an SQLite file, and survives a restart.
        assert not (tmp_path / "ferry" / "ferry.db").exists()
        assert asyncio.run(tags_in_database(fresh_postgres_url)) == [("pg", "app", "v1"), ("pg", "app", "v2")]
        server.stop()
        server.start()
        again = get_manifest(RegistryClient(server.url, "admin", ADMIN_PASSWORD), "pg/app", "v1")
        assert again.headers["Docker-Content-Digest"] == image.digest
    finally:
        server.stop()
