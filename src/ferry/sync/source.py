"""What a copy reads: one repository of this region, through the images queries.

Harbor's split: this is the source adapter. It knows nothing of peers or HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from ferry.images import blobs, manifests
from ferry.images.errors import ManifestUnknown
from ferry.images.manifest_format import ParsedManifest, parse_manifest
from ferry.metadata.db import Database
from ferry.storage import BlobStore
from ferry.sync.errors import PeerError


@dataclass(frozen=True)
class SourceManifest:
    digest: str
    payload: bytes
    media_type: str

    @property
    def parsed(self) -> ParsedManifest:
        return parse_manifest(self.payload, self.media_type)


class LocalSource:
    """One repository of this region, as a copy reads it."""

    def __init__(self, db: Database, store: BlobStore, repository_id: int, name: str) -> None:
        self.name = name  # org/repo, for messages
        self.db = db
        self.store = store
        self.repository_id = repository_id

    async def tag_digest(self, tag: str) -> str | None:
        """The tag's current digest: a copy always takes the newest state."""
        async with self.db.read() as session:
            return await manifests.tag_digest(session, self.repository_id, tag)

    async def manifest(self, digest: str) -> SourceManifest:
        try:
            async with self.db.read() as session:
                found = await manifests.resolve(session, self.repository_id, digest)
                return SourceManifest(found.digest, found.payload, found.media_type)
        except ManifestUnknown:
            raise PeerError(f"manifest {digest} vanished from the source", retryable=False) from None

    async def tree(self, digest: str) -> list[str]:
        """The digest and, for an index, every child manifest's digest (depth first)."""
        result = [digest]
        for child in (await self.manifest(digest)).parsed.children:
            result += await self.tree(child.digest)
        return result

    async def referrers(self, subject: str) -> list[str]:
        async with self.db.read() as session:
            found = await manifests.referrer_manifests(session, self.repository_id, subject)
            return [manifest.digest for manifest in found]

    async def blob_size(self, digest: str) -> int:
        async with self.db.read() as session:
            size = await blobs.linked_size(session, self.repository_id, digest)
        if size is None:
            raise PeerError(f"blob {digest} vanished from the source", retryable=False)
        return size

    def read_blob(self, digest: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return self.store.read(digest, start, end)
