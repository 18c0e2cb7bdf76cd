"""A platform subset: an organization rule that copies only some platforms of an index.

The target then gets another index than the source's: the same document with only the
`manifests` entries of the wanted platforms (and the buildx attestations that describe them),
and two annotations saying where it came from. Its digest differs from the source index's, so:
- the copied children keep their digests (and their signatures, which are copied);
- a signature of the source index signs a digest the target does not have, and is not copied;
- `ferry sync status` counts the tag in sync when the target holds the subset of the source's
  current index, and the audit expects that subset.
A single-platform image (no index) is copied as it is. A platform is `os/architecture`, which
any variant matches, or `os/architecture/variant`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from ferry.images.manifest_format import INDEX_TYPES
from ferry.sync.errors import PeerError, RuleError
from ferry.sync.source import LocalSource, SourceManifest

SUBSET_ANNOTATION = "io.ferry.sync.platforms"
SOURCE_ANNOTATION = "io.ferry.sync.source-digest"
# buildx attestation manifests: platform unknown/unknown, naming the image they describe.
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
NO_PLATFORM = "no_platform"
MAX_PLATFORMS = 16


class PlatformInvalid(RuleError):
    """A platform Ferry cannot read."""


def parse_platforms(values: Sequence[str]) -> tuple[str, ...]:
    if len(values) > MAX_PLATFORMS:
        raise PlatformInvalid(f"platforms may list at most {MAX_PLATFORMS}")
    parsed = []
    for i, value in enumerate(values):
        parts = value.strip().lower().split("/")
        if not 2 <= len(parts) <= 3 or not all(p and p.replace("_", "").isalnum() for p in parts):
            raise PlatformInvalid(
                f"platforms[{i}] must be os/architecture[/variant], like linux/amd64, not {value!r}"
            )
        parsed.append("/".join(parts))
    return tuple(dict.fromkeys(parsed))


def _matches(platform: Any, wanted: Sequence[str]) -> bool:
    if not isinstance(platform, dict):
        return False
    os_, arch, variant = platform.get("os"), platform.get("architecture"), platform.get("variant")
    for one in wanted:
        parts = one.split("/")
        if parts[0] == os_ and parts[1] == arch and (len(parts) == 2 or parts[2] == variant):
            return True
    return False


def subset_payload(payload: bytes, source_digest: str, wanted: Sequence[str]) -> bytes:
    """The index with only the wanted platforms' entries; PeerError (final) when none is there."""
    document = json.loads(payload)
    entries = [e for e in document.get("manifests") or [] if isinstance(e, dict)]
    kept = [e for e in entries if _matches(e.get("platform"), wanted)]
    if not kept:
        found = sorted({_name(e.get("platform")) for e in entries} - {""})
        raise PeerError(
            f"no platform of the index matches {', '.join(wanted)} (it has {', '.join(found) or 'none'})",
            retryable=False,
            cause=NO_PLATFORM,
        )
    digests = {e.get("digest") for e in kept}
    attestations = [
        e
        for e in entries
        if (e.get("annotations") or {}).get(REFERENCE_TYPE) == "attestation-manifest"
        and (e.get("annotations") or {}).get(REFERENCE_DIGEST) in digests
    ]
    document["manifests"] = [e for e in entries if e in kept or e in attestations]
    annotations = dict(document.get("annotations") or {})
    annotations[SUBSET_ANNOTATION] = ",".join(wanted)
    annotations[SOURCE_ANNOTATION] = source_digest
    document["annotations"] = annotations
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _name(platform: Any) -> str:
    if not isinstance(platform, dict) or platform.get("os") in (None, "unknown"):
        return ""
    parts = [platform.get("os"), platform.get("architecture"), platform.get("variant")]
    return "/".join(str(p) for p in parts if p)


def subset_digest(manifest: SourceManifest, wanted: Sequence[str]) -> str:
    """The digest the target's tag should have for this source manifest under the subset."""
    if not wanted or manifest.media_type not in INDEX_TYPES:
        return manifest.digest
    payload = subset_payload(manifest.payload, manifest.digest, wanted)
    return "sha256:" + hashlib.sha256(payload).hexdigest()


class PlatformSubsetSource(LocalSource):
    """The source as a subset rule sees it: a tag on an index resolves to the subset index."""

    def __init__(self, inner: LocalSource, wanted: Sequence[str]) -> None:
        super().__init__(inner.db, inner.store, inner.repository_id, inner.name)
        self.wanted = tuple(wanted)
        self._subsets: dict[str, SourceManifest] = {}
        self.source_digest: str | None = None  # the source tag's own digest, once asked

    async def tag_digest(self, tag: str) -> str | None:
        digest = await super().tag_digest(tag)
        self.source_digest = digest
        if digest is None:
            return None
        manifest = await super().manifest(digest)
        if manifest.media_type not in INDEX_TYPES:
            return digest
        payload = subset_payload(manifest.payload, digest, self.wanted)
        subset = SourceManifest("sha256:" + hashlib.sha256(payload).hexdigest(), payload, manifest.media_type)
        self._subsets[subset.digest] = subset
        return subset.digest

    async def manifest(self, digest: str) -> SourceManifest:
        # LocalSource.tree walks through this, so a subset's tree is its kept children's.
        return self._subsets.get(digest) or await super().manifest(digest)

    async def referrers(self, subject: str) -> list[str]:
        # Nothing refers to a subset index; the source index's signatures sign another digest.
        return [] if subject in self._subsets else await super().referrers(subject)
