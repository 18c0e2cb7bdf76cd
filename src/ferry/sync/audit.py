"""Audit: compare a repository with each target of its rules, and queue the jobs that repair it.

For each rule (or only those to one region) the audit reads the target as the rule's owner
(sync.authorization.rule_actor), paced per peer (sync.pacing): the tag list (pages of a
thousand), then for every tag this sync is responsible for a HEAD of the tag, and, when the tag
is at the source's digest, a HEAD of every child manifest, every blob (config and layers) and
every referrer, each digest once per target and audit; a sampled blob is read back and re-hashed.

Every source tag is compared. One the target lacks is drift only when a job of this sync ever
ran for it: a tag that existed before its rule and was never copied is counted as not synced
(SYNC.md, triggers 3), not repaired into existence. A tag with a job waiting or running is
skipped (counted as pending): the sync is on it.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import select

from ferry.identity.caller import EDIT, READ, Operator
from ferry.identity.service import Principal
from ferry.images.manifest_format import ParsedManifest
from ferry.images.repositories import repository_for
from ferry.metadata.db import Database
from ferry.metadata.models import JobStatus, Repository, SyncJob, Tag
from ferry.names import ImageName
from ferry.observability import metrics
from ferry.storage import BlobStore
from ferry.sync import pacing
from ferry.sync.applied import AppliedRule, applied_rules
from ferry.sync.audit_report import AuditReport, Drift, record
from ferry.sync.authorization import SyncRefused, rule_actor
from ferry.sync.copier import together
from ferry.sync.errors import PeerError
from ferry.sync.peer_client import PeerClient
from ferry.sync.platforms import PlatformSubsetSource
from ferry.sync.queue import ever_copied
from ferry.sync.rules import TargetRegionUnknown
from ferry.sync.source import LocalSource
from ferry.sync.target import OciTarget
from ferry.sync.triggers import Target, enqueue

# Tags audited at once per target: round trips overlap; the token bucket bounds the rate. Two
# keep up with 100 requests a second on loopback, and bound what is still in flight when a live
# job starts (sync.pacing steps aside for it): with 8, live push-to-visible during a 500-tag
# audit was 1.26x its baseline, with 2 it was 1.03x, the audit as fast (bench/sync_audit.py).
CONCURRENCY = 2
# How often (in tags) a long audit calls its heartbeat (the reconciler renews its claim).
HEARTBEAT_TAGS = 100
Heartbeat = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class AuditOptions:
    region: str | None = None  # only the rules to this region
    verify_sample: float = 0.0  # fraction of present blobs read back and re-hashed
    rate: float = 100.0  # requests a second to one peer (shared by every audit of the process)
    trigger: str = "api"


@dataclass(frozen=True)
class Repair:
    """Who repair jobs act for: `actor_id` None means each rule's owner (the reconciler)."""

    operator: Operator
    actor_id: int | None


class TargetAudit:
    """One rule's target: what it holds against what the source says it should."""

    def __init__(
        self,
        report: AuditReport,
        source: LocalSource,
        target: OciTarget,
        name: str,
        options: AuditOptions,
        heartbeat: Heartbeat | None,
    ) -> None:
        self.report = report
        self.source = source
        self.target = target
        self.name = name  # REGION/ORG
        self.options = options
        self.heartbeat = heartbeat
        self.manifests: set[str] = set()  # digests asked about (each once per audit)
        self.blobs: set[str] = set()
        self.walked: set[str] = set()  # manifests whose blobs and children were looked at
        self.subjects: set[str] = set()  # manifests whose referrers were looked at
        self.done = 0

    def _drift(self, kind: str, tag: str, digest: str, detail: str) -> None:
        self.report.found(Drift(kind, tag, self.name, digest, detail))

    async def run(self, rule: AppliedRule, tags: dict[str, str], synced: set[str], pending: set[str]) -> None:
        """`synced`: the tags a job of this sync ever ran for; `pending`: those with one unfinished."""
        present: set[str] = set()
        async for page in self.target.tag_pages():
            present.update(page)
        todo = iter(sorted(tags))

        async def worker() -> None:
            for tag in todo:
                if tag in pending:
                    self.report.pending += 1
                elif tag not in present and tag not in synced:
                    self.report.not_synced += 1
                else:
                    await self._tag(rule, tag, tags[tag], tag in present)

        # A failure (the peer went away) stops the other workers too, and is raised as itself.
        async with together() as group:
            for _ in range(CONCURRENCY):
                group.create_task(worker())

    async def _tag(self, rule: AppliedRule, tag: str, digest: str, listed: bool) -> None:
        self.report.tags_checked += 1
        self.done += 1
        if self.heartbeat is not None and self.done % HEARTBEAT_TAGS == 0:
            await self.heartbeat()
        where = self.target.describe(tag)
        current = await self.target.manifest_digest(tag) if listed else None
        if current is None:
            self._drift("missing_tag", tag, digest, f"{where} is missing; the source has {digest}")
        elif current != digest:
            if rule.override or await self._ours(rule, tag, current):
                detail = f"{where} is at {current}, the source at {digest}"
                self._drift("digest_mismatch", tag, digest, detail)
            else:
                detail = (
                    f"{where} holds {current}, which this sync never wrote, and override is off "
                    f"(the source has {digest})"
                )
                self._drift("conflict", tag, digest, detail)
        else:
            await self._content(tag, digest)

    async def _ours(self, rule: AppliedRule, tag: str, digest: str) -> bool:
        async with self.source.db.read() as session:
            return await ever_copied(
                session,
                self.report.namespace,
                self.report.repository,
                rule.remote_region_id,
                rule.remote_namespace,
                tag,
                digest,
            )

    async def _content(self, tag: str, digest: str) -> None:
        """Every child manifest, blob and referrer under a tag the target shows at our digest."""
        self.manifests.add(digest)  # its tag resolved to it
        tree: list[str] = []
        await self._walk(tag, digest, tree)
        await self._referrers(tag, tree)

    async def _walk(self, tag: str, digest: str, tree: list[str]) -> None:
        """A present manifest's blobs and children (each source manifest read once per audit)."""
        if digest in self.walked:
            return
        self.walked.add(digest)
        tree.append(digest)
        parsed = (await self.source.manifest(digest)).parsed
        await self._blobs(tag, parsed)
        for child in parsed.children:
            if await self._manifest(tag, child.digest, "missing_manifest"):
                await self._walk(tag, child.digest, tree)

    async def _manifest(self, tag: str, digest: str, kind: str) -> bool:
        """Asks for a manifest once per audit; False (and drift) when the target lacks it."""
        if digest in self.manifests:
            return True
        self.manifests.add(digest)
        if await self.target.manifest_digest(digest) == digest:
            return True
        what = "referrer" if kind == "missing_referrer" else "manifest"
        self._drift(kind, tag, digest, f"{what} {digest} of {self.target.describe(tag)} is missing")
        return False

    async def _blobs(self, tag: str, parsed: ParsedManifest) -> None:
        for blob in parsed.blobs:
            if blob.foreign or blob.digest in self.blobs:
                continue
            self.blobs.add(blob.digest)
            if not await self.target.has_blob(blob.digest):
                detail = f"blob {blob.digest} of {self.target.describe(tag)} is missing"
                self._drift("missing_blob", tag, blob.digest, detail)
            elif self.options.verify_sample and random.random() < self.options.verify_sample:
                actual = await self.target.blob_sha256(blob.digest)
                if actual != blob.digest:
                    detail = f"blob {blob.digest} of {self.target.describe(tag)} reads back as {actual}"
                    self._drift("corrupt_blob", tag, blob.digest, detail)

    async def _referrers(self, tag: str, subjects: list[str]) -> None:
        """Referrers of the tag's manifests, and theirs in turn, as the copier copies them."""
        todo = list(subjects)
        while todo:
            subject = todo.pop()
            if subject in self.subjects:
                continue
            self.subjects.add(subject)
            for referrer in await self.source.referrers(subject):
                if await self._manifest(tag, referrer, "missing_referrer") and referrer not in self.walked:
                    self.walked.add(referrer)
                    await self._blobs(tag, (await self.source.manifest(referrer)).parsed)
                todo.append(referrer)


async def _job_tags(db: Database, repository_id: int, rule: AppliedRule) -> tuple[set[str], set[str]]:
    """Tags with any job to the rule's target, and those with one waiting or running."""
    where = (
        (SyncJob.repository_id == repository_id)
        & (SyncJob.remote_region_id == rule.remote_region_id)
        & (SyncJob.remote_namespace == rule.remote_namespace)
    )
    unfinished = SyncJob.status.in_([JobStatus.WAITING, JobStatus.RUNNING])
    async with db.read() as session:
        synced = set(await session.scalars(select(SyncJob.tag).where(where).distinct()))
        pending = set(await session.scalars(select(SyncJob.tag).where(where & unfinished).distinct()))
    return synced, pending


async def audit_repository(
    db: Database,
    store: BlobStore,
    peers: Mapping[str, PeerClient],
    repository: Repository,
    namespace: str,
    options: AuditOptions,
    heartbeat: Heartbeat | None = None,
) -> tuple[AuditReport, list[AppliedRule]]:
    """Audits the repository against each of its rules' targets; returns the report and the
    rules audited (a repair needs them)."""
    report = AuditReport(namespace, repository.name, options.region, options.trigger)
    async with db.read() as session:
        found = await applied_rules(session, [repository.id])
        rules = [r for r in found if options.region in (None, r.remote_region_id)]
        rows = await session.execute(select(Tag.name, Tag.digest).where(Tag.repository_id == repository.id))
        tags = {name: digest for name, digest in rows}
    source = LocalSource(db, store, repository.id, f"{namespace}/{repository.name}")
    for rule in rules:
        copied = {tag: digest for tag, digest in tags.items() if rule.copies(tag)}
        await _audit_rule(db, peers, report, source, rule, copied, options, heartbeat)
    return report, rules


async def _audit_rule(
    db: Database,
    peers: Mapping[str, PeerClient],
    report: AuditReport,
    source: LocalSource,
    rule: AppliedRule,
    tags: dict[str, str],
    options: AuditOptions,
    heartbeat: Heartbeat | None,
) -> None:
    name = f"{rule.remote_region_id}/{rule.remote_namespace}"
    report.targets.append(name)
    client = peers.get(rule.remote_region_id)
    if client is None:
        report.errors.append(f"{name}: region {rule.remote_region_id} is not a peer")
        return
    try:
        actor = await rule_actor(db, rule, ImageName(report.namespace, report.repository))
    except SyncRefused as refused:
        report.errors.append(f"{name}: {refused}")
        return
    bucket = pacing.bucket_for(client.peer.id, options.rate)

    async def paced() -> None:
        await bucket.acquire()
        report.requests += 1
        metrics.AUDIT_REQUESTS.labels(name).inc()

    target = OciTarget(client, f"{rule.remote_namespace}/{report.repository}", actor, paced)
    if rule.platforms:
        # The target should hold each index's subset: that is what is audited.
        source = PlatformSubsetSource(source, rule.platforms)
        tags = await _subset_tags(source, tags)
    synced, pending = await _job_tags(db, source.repository_id, rule)
    audit = TargetAudit(report, source, target, name, options, heartbeat)
    try:
        await audit.run(rule, tags, synced, pending)
    except PeerError as error:
        report.errors.append(f"{name}: audit stopped: {error}")


async def _subset_tags(source: PlatformSubsetSource, tags: dict[str, str]) -> dict[str, str]:
    """Tag → the digest a subset rule's target should hold (an index none of whose platforms the
    rule copies is not expected there)."""
    expected: dict[str, str] = {}
    for tag in tags:
        try:
            digest = await source.tag_digest(tag)
        except PeerError:
            continue
        if digest is not None:
            expected[tag] = digest
    return expected


async def queue_repairs(
    db: Database, repository_id: int, report: AuditReport, rules: list[AppliedRule], repair: Repair
) -> None:
    """One job with trigger "repair" per (tag, target) with repairable drift (sync.triggers
    coalesces it with a job already waiting); sets `report.repaired`."""
    by_target = {f"{r.remote_region_id}/{r.remote_namespace}": r for r in rules}
    wanted = [d for d in report.drift if d.repairable and d.target in by_target]
    if not wanted:
        return
    async with db.write() as session:
        repository = await session.get(Repository, repository_id)
        if repository is None:
            return
        queued: set[tuple[str, str]] = set()
        for drift in wanted:
            if (drift.tag, drift.target) in queued:
                continue
            queued.add((drift.tag, drift.target))
            rule = by_target[drift.target]
            actor_id = repair.actor_id if repair.actor_id is not None else rule.creator_id
            copy = Target(rule.remote_region_id, rule.remote_namespace, rule.override, actor_id)
            await enqueue(session, repository, drift.tag, copy, "repair", repair.operator)
    report.repaired = len(wanted)


async def audit_and_repair(
    db: Database,
    store: BlobStore,
    peers: Mapping[str, PeerClient],
    repository: Repository,
    namespace: str,
    options: AuditOptions,
    repair: Repair | None,
    heartbeat: Heartbeat | None = None,
) -> AuditReport:
    """An audit, its repairs when asked, and its audit_runs record."""
    report, rules = await audit_repository(db, store, peers, repository, namespace, options, heartbeat)
    if repair is not None:
        await queue_repairs(db, repository.id, report, rules, repair)
    await record(db, report)
    return report


async def requested_audit(
    db: Database,
    store: BlobStore,
    peers: Mapping[str, PeerClient],
    principal: Principal,
    namespace: str,
    name: str,
    options: AuditOptions,
    repair: bool,
) -> AuditReport:
    """An audit someone asked for: reading the repository suffices; repairing needs what a
    manual sync needs (edit rights on the source), and the repair jobs act for the caller."""
    if options.region is not None and options.region not in peers:
        raise TargetRegionUnknown(options.region, list(peers))
    async with db.read() as session:
        _, repository = await repository_for(session, principal, namespace, name, EDIT if repair else READ)
    fix = Repair(principal.operator, principal.user_id) if repair else None
    return await audit_and_repair(db, store, peers, repository, namespace, options, fix)
