"""One region in process (a migrated database, a filesystem store, an account with an
organization), for tests of services that need no server: the copier, the queue.

Images are pushed through the real services (uploads, put_manifest with the sync triggers),
so jobs are born exactly as a push makes them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from ferry.identity.caller import Operator
from ferry.identity.service import Principal, create_organization, create_user
from ferry.images import manifests
from ferry.images.manifest_format import OCI_INDEX, OCI_MANIFEST
from ferry.images.repositories import find_repository
from ferry.images.upload_ids import UploadIds
from ferry.images.uploads import Uploads
from ferry.metadata.db import Database
from ferry.metadata.migrate import upgrade
from ferry.metadata.models import JobStatus, Repository, SyncJob, SyncRule
from ferry.names import ImageName
from ferry.storage import FilesystemBlobStore
from ferry.sync.triggers import SyncTriggers, Target, enqueue
from tests.support.images import digest_of

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
ORG, REPO = "org", "app"
PEER = "cn-east-3"


@dataclass(frozen=True)
class Built:
    """A manifest and the blobs it needs."""

    payload: bytes
    media_type: str
    blobs: dict[str, bytes]

    @property
    def digest(self) -> str:
        return digest_of(self.payload)


def descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}


def image(seed: str, layer_sizes: tuple[int, ...] = (64,), subject: Built | None = None) -> Built:
    """An OCI image whose content depends on `seed`; with `subject`, a referrer of it."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layers = [(seed.encode() * (size // max(len(seed), 1) + 1))[:size] for size in layer_sizes]
    document: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
    }
    if subject is not None:
        document["subject"] = descriptor(subject.media_type, subject.payload)
        document["artifactType"] = "application/vnd.example.signature"
    blobs = {digest_of(b): b for b in [config, *layers]}
    return Built(json.dumps(document).encode(), OCI_MANIFEST, blobs)


def index(*children: Built) -> Built:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(child.media_type, child.payload) for child in children],
    }
    return Built(json.dumps(document).encode(), OCI_INDEX, {})


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh database for one test: a SQLite file, or a new database on the test PostgreSQL."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'ferry.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@contextmanager
def counted_statements() -> Iterator[list[str]]:
    """The SQL statements every engine of this process runs meanwhile (reads and writes alike)."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", record)


class World:
    """A region with account acme, admin root and organization `org`."""

    def __init__(self, url: str, root: Path) -> None:
        self.db = Database(url)
        self.store = FilesystemBlobStore(root / "storage")
        self.uploads = Uploads(self.db, self.store, UploadIds("in-process test key"))
        self.events = SyncTriggers()
        self.name = ImageName(ORG, REPO)
        self.admin: Principal | None = None

    async def open(self) -> World:
        await upgrade(self.db)
        async with self.db.write() as session:
            user = await create_user(session, "acme", "root", "root-password-1", is_admin=True)
            self.admin = Principal(user.id, user.name, user.account_id, True)
            await create_organization(session, self.admin, ORG)
        return self

    async def close(self) -> None:
        await self.db.close()

    @property
    def operator(self) -> Operator:
        assert self.admin is not None
        return self.admin.operator

    async def push(self, built: Built, reference: str, *children: Built) -> None:
        """The blobs, the children (for an index), then the manifest under `reference`."""
        for child in children:
            await self.push(child, child.digest)
        for digest, data in built.blobs.items():
            await self.uploads.monolithic(self.name, "root", digest, _chunks(data))
        await manifests.put_manifest(
            self.db, self.events, self.name, reference, built.payload, built.media_type, self.operator
        )

    async def repository(self) -> Repository:
        async with self.db.read() as session:
            found = await find_repository(session, self.name)
            assert found is not None
            return found

    async def add_rule(self, region: str = PEER, namespace: str = ORG, override: bool = False) -> None:
        """An automatic rule, as an administrator makes it (the repository must exist)."""
        repository = await self.repository()
        async with self.db.write() as session:
            session.add(
                SyncRule(
                    repository_id=repository.id,
                    remote_region_id=region,
                    remote_namespace=namespace,
                    sync_auto=True,
                    override=override,
                    creator_id=self.admin.user_id if self.admin else None,
                )
            )

    async def manual_job(self, tag: str, override: bool = False, namespace: str = ORG) -> int:
        repository = await self.repository()
        assert self.admin is not None
        async with self.db.write() as session:
            target = Target(PEER, namespace, override, self.admin.user_id)
            job = await enqueue(session, repository, tag, target, "manual", self.operator)
            assert job is not None
            return job.id

    async def jobs(self, status: str | None = None) -> list[SyncJob]:
        async with self.db.read() as session:
            query = select(SyncJob).order_by(SyncJob.id)
            if status is not None:
                query = query.where(SyncJob.status == status)
            return list(await session.scalars(query))

    async def job(self, job_id: int) -> SyncJob:
        async with self.db.read() as session:
            found = await session.get(SyncJob, job_id)
            assert found is not None
            return found

    async def waiting(self) -> list[SyncJob]:
        return await self.jobs(JobStatus.WAITING)
