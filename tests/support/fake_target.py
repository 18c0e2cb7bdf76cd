"""An in-memory OCI registry behind the copier's Target interface, with failures on demand.

It behaves as a conformant registry does: a manifest is accepted only when everything it
references is there, an upload session holds the bytes acknowledged so far, a chunk that does
not start where the session ends is refused with UploadPositionLost (the 416 of the protocol).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field

from ferry.sync.authorization import SyncRefused
from ferry.sync.errors import PeerError, UploadPositionLost
from ferry.sync.target import UploadStart


def server_error(status: int = 503, retry_after: float | None = None) -> PeerError:
    return PeerError(f"region fake answered {status}", retryable=True, retry_after=retry_after, status=status)


def dropped() -> PeerError:
    return PeerError("region fake unreachable: ServerDisconnectedError", retryable=True)


def rejected(status: int = 400) -> PeerError:
    return PeerError(f"pushing manifest: {status} manifest invalid", retryable=False, status=status)


@dataclass
class Fault:
    """Raised by the `when`-th call (1-based, counting from when it was added) of an operation."""

    error: BaseException
    when: int = 1
    # Runs just before the error is raised (e.g. the target loses bytes it held).
    before: Callable[[], None] | None = None


@dataclass
class FakeTarget:
    region: str = "cn-east-3"
    repository: str = "org/app"
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    # Blobs another repository of the target holds, which a mount finds.
    mountable: dict[str, bytes] = field(default_factory=dict)
    # Every call, in order: (operation, argument).
    calls: list[tuple[str, str]] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    refuse: str | None = None
    # Called after each manifest PUT (e.g. someone moves the tag right after the copy).
    after_put: Callable[[str], None] | None = None

    def fail(
        self, operation: str, error: BaseException, when: int = 1, before: Callable[[], None] | None = None
    ) -> None:
        start = self.counts.get(operation, 0)
        self.faults.setdefault(operation, []).append(Fault(error, start + when, before))

    def _enter(self, operation: str, argument: str) -> None:
        self.calls.append((operation, argument))
        self.counts[operation] = self.counts.get(operation, 0) + 1
        for fault in list(self.faults.get(operation, [])):
            if fault.when == self.counts[operation]:
                self.faults[operation].remove(fault)
                if fault.before:
                    fault.before()
                raise fault.error

    def of(self, operation: str) -> list[str]:
        return [argument for name, argument in self.calls if name == operation]

    # The Target interface

    def describe(self, reference: str) -> str:
        return f"{self.repository}:{reference} in {self.region}"

    async def authorize(self) -> None:
        self._enter("authorize", self.repository)
        if self.refuse:
            raise SyncRefused(self.refuse)

    async def manifest_digest(self, reference: str) -> str | None:
        self._enter("manifest_digest", reference)
        if reference.startswith("sha256:"):
            return reference if reference in self.manifests else None
        return self.tags.get(reference)

    async def has_blob(self, digest: str) -> bool:
        self._enter("has_blob", digest)
        return digest in self.blobs

    async def abort_upload(self, location: str) -> None:
        self._enter("abort_upload", location)
        self.uploads.pop(location, None)

    async def start_upload(self, mount: str) -> UploadStart:
        self._enter("start_upload", mount)
        if mount in self.mountable:
            self.blobs[mount] = self.mountable[mount]
            return UploadStart(None)
        # Numbered by the count of sessions ever opened: sessions of concurrent copies overlap.
        location = f"/v2/{self.repository}/blobs/uploads/{self.counts['start_upload']}"
        self.uploads[location] = bytearray()
        return UploadStart(location)

    def may_mount(self, digest: str) -> bool:
        return digest in self.mountable

    async def push_blob(self, digest: str, body: AsyncIterable[bytes], size: int) -> str | None:
        self._enter("push_blob", digest)
        held = bytearray()
        async for chunk in body:
            held += chunk
        if "sha256:" + hashlib.sha256(held).hexdigest() != digest:
            raise PeerError(f"uploading {digest}: 400 digest invalid", retryable=False)
        self.blobs[digest] = bytes(held)
        return None

    async def upload_offset(self, location: str) -> int | None:
        self._enter("upload_offset", location)
        held = self.uploads.get(location)
        return None if held is None else len(held)

    async def upload_chunk(self, location: str, chunks: AsyncIterable[bytes], start: int, end: int) -> str:
        self._enter("upload_chunk", f"{start}-{end}")
        held = self._session(location)
        if start != len(held):
            raise UploadPositionLost(location)
        async for chunk in chunks:
            held += chunk
        return location

    async def finish_upload(
        self, location: str, digest: str, body: AsyncIterable[bytes] | None, size: int
    ) -> None:
        self._enter("finish_upload", digest)
        held = self._session(location)
        if body is not None:
            async for chunk in body:
                held += chunk
        if "sha256:" + hashlib.sha256(held).hexdigest() != digest:
            raise PeerError(f"finishing the upload of {digest}: 400 digest invalid", retryable=False)
        self.blobs[digest] = bytes(held)
        del self.uploads[location]

    async def put_manifest(self, reference: str, payload: bytes, media_type: str) -> None:
        self._enter("put_manifest", reference)
        document = json.loads(payload)
        wanted = [d["digest"] for d in [document.get("config"), *document.get("layers", [])] if d]
        missing = [d for d in wanted if d not in self.blobs]
        missing += [d["digest"] for d in document.get("manifests", []) if d["digest"] not in self.manifests]
        if missing:
            raise PeerError(f"pushing manifest: 400 unknown blob {missing[0]}", retryable=False, status=400)
        digest = "sha256:" + hashlib.sha256(payload).hexdigest()
        self.manifests[digest] = payload
        if not reference.startswith("sha256:"):
            self.tags[reference] = digest
        if self.after_put:
            self.after_put(reference)

    def _session(self, location: str) -> bytearray:
        held = self.uploads.get(location)
        if held is None:
            raise PeerError(f"upload {location}: 404 blob upload unknown", retryable=False, status=404)
        return held
