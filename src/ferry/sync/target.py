"""Where a copy writes: any OCI registry, here through the peer client.

Harbor's split: this is the destination adapter. Each method is one registry operation; a
refusal leaves as PeerError (retryable or not) or UploadPositionLost, never as a status code.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ferry.images.manifest_format import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from ferry.sync.authorization import check_target
from ferry.sync.bandwidth import Lane
from ferry.sync.errors import PeerError, UploadPositionLost
from ferry.sync.peer_client import Actor, PeerClient, PeerResponse, error_text

# Every manifest type a copy can carry, so the target answers with the stored digest.
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
# Tags asked for per page of the tag list (an audit's first look at a target).
TAG_PAGE = 1000
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
# How long a blob the target confirmed (HEAD 200, upload, mount) is taken as present there
# without asking again, and how many such answers are kept per peer (the oldest go first).
KNOWN_BLOB_SECONDS = 300.0
KNOWN_BLOBS_KEPT = 50_000


class KnownBlobs:
    """Blobs a peer confirmed it holds, per repository, for KNOWN_BLOB_SECONDS: the next job of
    the repository (the second image of a base, the next build) does not HEAD them again, and
    one of another repository knows a mount will find them.

    An answer can go stale (the target collected the blob since); the manifest push then fails
    for a missing blob, and OciTarget forgets the repository and has the job retried."""

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._where: dict[str, set[str]] = {}  # digest -> repositories in _seen

    def has(self, repository: str, digest: str) -> bool:
        seen = self._seen.get((repository, digest))
        return seen is not None and time.monotonic() - seen < KNOWN_BLOB_SECONDS

    def elsewhere(self, repository: str, digest: str) -> bool:
        """Whether another repository of the peer confirmed the blob recently."""
        return any(other != repository and self.has(other, digest) for other in self._where.get(digest, ()))

    def add(self, repository: str, digest: str) -> None:
        self._seen[(repository, digest)] = time.monotonic()
        self._seen.move_to_end((repository, digest))
        self._where.setdefault(digest, set()).add(repository)
        while len(self._seen) > KNOWN_BLOBS_KEPT:
            self._drop(*self._seen.popitem(last=False)[0])

    def forget(self, repository: str) -> None:
        for key in [key for key in self._seen if key[0] == repository]:
            del self._seen[key]
            self._drop(*key)

    def _drop(self, repository: str, digest: str) -> None:
        where = self._where.get(digest)
        if where is not None:
            where.discard(repository)
            if not where:
                del self._where[digest]


@dataclass(frozen=True)
class UploadStart:
    """A mount that worked (`location` None), or an upload session to send the bytes to."""

    location: str | None


class Target(Protocol):
    """One repository of another registry, as a copy writes it."""

    def describe(self, reference: str) -> str:
        """`repository:reference in region`, for messages."""
        ...

    async def authorize(self) -> None:
        """Raises SyncRefused unless the copy may push here."""
        ...

    async def manifest_digest(self, reference: str) -> str | None:
        """The digest a tag or digest resolves to there, None when it does not."""
        ...

    async def has_blob(self, digest: str) -> bool: ...

    async def start_upload(self, mount: str) -> UploadStart:
        """Mounts blob `mount` from another repository there, else opens an upload session."""
        ...

    async def upload_offset(self, location: str) -> int | None:
        """How many bytes the session holds; None when the session is gone."""
        ...

    async def abort_upload(self, location: str) -> None:
        """Deletes the upload session (a cancelled copy leaves nothing at the target)."""
        ...

    def may_mount(self, digest: str) -> bool:
        """Whether the target is known to hold the blob in another repository (a mount would
        find it); a small blob not known so is sent whole instead of asking."""
        ...

    async def push_blob(self, digest: str, body: AsyncIterable[bytes], size: int) -> str | None:
        """The whole blob in one request (OCI's single POST); None when the target stored it,
        else the upload session it opened instead (a registry that ignores the body)."""
        ...

    async def upload_chunk(self, location: str, chunks: AsyncIterable[bytes], start: int, end: int) -> str:
        """Sends bytes [start, end); returns the session's next location."""
        ...

    async def finish_upload(
        self, location: str, digest: str, body: AsyncIterable[bytes] | None, size: int
    ) -> None: ...

    async def put_manifest(self, reference: str, payload: bytes, media_type: str) -> str | None:
        """Stores the manifest under `reference`; the digest the target says it stored (its
        Docker-Content-Digest), None when it does not say."""
        ...

    async def delete_tag(self, tag: str) -> bool:
        """Deletes the tag there (the manifest stays for its garbage collection); False when it
        was not there."""
        ...


def refused(what: str, response: PeerResponse) -> PeerError:
    return PeerError(
        f"{what}: {response.status} {error_text(response.body)}", retryable=False, status=response.status
    )


class OciTarget:
    """A repository at a peer region, written with the rights of the job's actor.

    `before_call`, when given, is awaited before each registry request (an audit paces and
    counts its requests with it)."""

    def __init__(
        self,
        client: PeerClient,
        repository: str,
        actor: Actor,
        before_call: Callable[[], Awaitable[None]] | None = None,
        known: KnownBlobs | None = None,
        lane: Lane | None = None,
    ) -> None:
        self.client = client
        self.repository = repository
        self.actor = actor
        self.before_call = before_call
        self.lane = lane or Lane()  # whose bandwidth share its uploads are (sync/bandwidth.py)
        # Blobs the peer confirmed recently (None: ask about every blob, as audits and repairs do).
        self.known = known
        self._trusted = False  # a blob was taken as present from `known`, without asking

    def describe(self, reference: str) -> str:
        return f"{self.repository}:{reference} in {self.client.peer.id}"

    async def authorize(self) -> None:
        namespace, _, name = self.repository.partition("/")
        await check_target(self.client, self.actor, namespace, name)

    async def _call(
        self,
        method: str,
        url: str,
        *,
        data: bytes | AsyncIterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        slow_answer: bool = False,
    ) -> PeerResponse:
        if self.before_call is not None:
            await self.before_call()
        return await self.client.registry(
            method,
            url,
            self.repository,
            data=data,
            headers=headers,
            actor=self.actor,
            slow_answer=slow_answer,
            lane=self.lane,
        )

    async def manifest_digest(self, reference: str) -> str | None:
        path = f"/v2/{self.repository}/manifests/{reference}"
        response = await self._call("HEAD", path, headers={"Accept": MANIFEST_ACCEPT})
        if response.status == 404:
            return None
        if response.status != 200:
            raise refused(f"checking {self.repository}:{reference}", response)
        return response.headers.get("Docker-Content-Digest")

    async def has_blob(self, digest: str) -> bool:
        if self.known is not None and self.known.has(self.repository, digest):
            self._trusted = True
            return True
        response = await self._call("HEAD", f"/v2/{self.repository}/blobs/{digest}")
        if response.status == 200:
            self._confirmed(digest)
        return response.status == 200

    def _confirmed(self, digest: str) -> None:
        if self.known is not None:
            self.known.add(self.repository, digest)

    async def start_upload(self, mount: str) -> UploadStart:
        response = await self._call("POST", f"/v2/{self.repository}/blobs/uploads/?mount={mount}")
        if response.status == 201:
            self._confirmed(mount)
            return UploadStart(None)
        if response.status != 202 or "Location" not in response.headers:
            raise refused(f"starting the upload of {mount}", response)
        return UploadStart(response.headers["Location"])

    def may_mount(self, digest: str) -> bool:
        return self.known is not None and self.known.elsewhere(self.repository, digest)

    async def push_blob(self, digest: str, body: AsyncIterable[bytes], size: int) -> str | None:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        path = f"/v2/{self.repository}/blobs/uploads/?digest={digest}"
        response = await self._call("POST", path, data=body, headers=headers)
        if response.status == 201:
            self._confirmed(digest)
            return None
        if response.status != 202 or "Location" not in response.headers:
            raise refused(f"uploading {digest}", response)
        return response.headers["Location"]

    async def delete_tag(self, tag: str) -> bool:
        response = await self._call("DELETE", f"/v2/{self.repository}/manifests/{tag}")
        if response.status == 404:
            return False
        if response.status not in (200, 202):
            raise refused(f"deleting {self.repository}:{tag}", response)
        return True

    async def abort_upload(self, location: str) -> None:
        response = await self._call("DELETE", location)
        if response.status not in (204, 404):  # 404: the session is gone already
            raise refused(f"deleting the upload session {location}", response)

    async def upload_offset(self, location: str) -> int | None:
        response = await self._call("GET", location)
        if response.status != 204:
            return None
        _, _, end = response.headers.get("Range", "0-0").partition("-")
        return int(end) + 1 if end.isdigit() and int(end) > 0 else 0

    async def upload_chunk(self, location: str, chunks: AsyncIterable[bytes], start: int, end: int) -> str:
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{end - 1}",
            "Content-Length": str(end - start),
        }
        response = await self._call("PATCH", location, data=chunks, headers=headers)
        if response.status == 416:
            raise UploadPositionLost(location)
        if response.status != 202:
            raise refused(f"uploading bytes {start}-{end - 1}", response)
        return response.headers.get("Location", location)

    async def finish_upload(
        self, location: str, digest: str, body: AsyncIterable[bytes] | None, size: int
    ) -> None:
        separator = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        # The peer verifies the whole blob's digest and makes it durable before it answers.
        response = await self._call(
            "PUT", f"{location}{separator}digest={digest}", data=body, headers=headers, slow_answer=True
        )
        if response.status != 201:
            raise refused(f"finishing the upload of {digest}", response)
        self._confirmed(digest)

    async def put_manifest(self, reference: str, payload: bytes, media_type: str) -> str | None:
        path = f"/v2/{self.repository}/manifests/{reference}"
        response = await self._call("PUT", path, data=payload, headers={"Content-Type": media_type})
        if response.status != 201:
            if self._trusted and self.known is not None and b"BLOB_UNKNOWN" in response.body:
                # A blob taken as present from an earlier answer is gone: ask again next time.
                self.known.forget(self.repository)
                self._trusted = False
                raise PeerError(
                    f"pushing manifest {self.repository}:{reference}: a blob confirmed earlier is "
                    f"gone ({error_text(response.body)}); asking about every blob again",
                    retryable=True,
                    retry_after=0,
                    status=response.status,
                    cause="stale_blobs",
                )
            raise refused(f"pushing manifest {self.repository}:{reference}", response)
        return response.headers.get("Docker-Content-Digest")

    # What an audit reads (sync/audit.py)

    async def tag_pages(self) -> AsyncIterator[list[str]]:
        """The repository's tags there, a page at a time (none when the repository is missing)."""
        url: str | None = f"/v2/{self.repository}/tags/list?n={TAG_PAGE}"
        while url is not None:
            response = await self._call("GET", url)
            if response.status == 404:
                return
            if response.status != 200:
                raise refused(f"listing the tags of {self.repository}", response)
            tags = [str(t) for t in (response.json() or {}).get("tags") or []]
            yield tags
            found = _NEXT.search(response.headers.get("Link", ""))
            url = found.group(1) if found and tags else None

    async def blob_sha256(self, digest: str) -> str | None:
        """The digest of the blob's bytes as the target serves them (streamed and hashed, never
        held whole); None when the target does not serve it."""
        if self.before_call is not None:
            await self.before_call()
        hasher = hashlib.sha256()
        path = f"/v2/{self.repository}/blobs/{digest}"
        status = await self.client.read_into(path, self.repository, hasher.update, actor=self.actor)
        return "sha256:" + hasher.hexdigest() if status == 200 else None
