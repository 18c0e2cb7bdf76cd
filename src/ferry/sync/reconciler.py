"""The background reconciler (FERRY_AUDIT_INTERVAL_SECONDS > 0): audits every repository with
sync rules and queues the repairs, so a target that lost a tag or a blob, or was restored from
an old backup, heals by itself.

Every serving process runs the loop; one of them runs a round at a time. The round is claimed by
a conditional UPDATE of `schedule_claims.claimed_at` (due when it is an interval old); the owner
moves it after every repository (and every hundred tags), so the claim stays fresh while it
works, and the next round is due one interval after this one ends. A round goes through the
repositories in name order from where the last one stopped (its last audit_runs row), so a
region too big for one process lifetime is still audited end to end.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import delete, select, update

from ferry.config import Settings
from ferry.identity.caller import Operator
from ferry.images.periodic import Periodic
from ferry.metadata.db import Database
from ferry.metadata.models import Organization, OrgSyncRule, Repository, SyncRule, utcnow
from ferry.metadata.outbox_models import AuditRun, ScheduleClaim
from ferry.metadata.statements import insert_ignore
from ferry.storage import BlobStore
from ferry.sync.audit import AuditOptions, Repair, audit_and_repair
from ferry.sync.peer_client import PeerClient

log = logging.getLogger("ferry.sync.reconciler")
CLAIM = "sync-reconciler"
# Repair jobs the reconciler queues name it as their operator; they copy as each rule's owner.
OPERATOR = Operator("", "reconciler")
# How often each process looks whether a round is due: the interval, at most a minute.
MAX_LOOK_SECONDS = 60.0
KEEP_RUNS = timedelta(days=7)


class Reconciler:
    def __init__(
        self, settings: Settings, db: Database, store: BlobStore, peers: Mapping[str, PeerClient]
    ) -> None:
        self.db = db
        self.store = store
        self.peers = peers
        self.interval = timedelta(seconds=settings.audit_interval_seconds)
        self.options = AuditOptions(
            verify_sample=settings.audit_verify_sample, rate=settings.audit_rate, trigger="reconciler"
        )
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def claim(self) -> bool:
        """True when this process takes the round that is due (nobody else can at the same time)."""
        now = utcnow()
        # Most looks find the round not due: a read, so they cost no turn at SQLite's writer.
        async with self.db.read() as session:
            claimed = await session.scalar(
                select(ScheduleClaim.claimed_at).where(ScheduleClaim.name == CLAIM)
            )
        if claimed is not None and claimed > now - self.interval:
            return False
        async with self.db.write() as session:
            # Created as just run: the first round comes one interval after the reconciler is
            # first switched on, not at once in every process that starts.
            await insert_ignore(session, ScheduleClaim, name=CLAIM, owner="", claimed_at=now)
            result = await session.execute(
                update(ScheduleClaim)
                .where(ScheduleClaim.name == CLAIM, ScheduleClaim.claimed_at <= now - self.interval)
                .values(owner=self.owner, claimed_at=now)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def renew(self) -> None:
        async with self.db.write() as session:
            await session.execute(
                update(ScheduleClaim)
                .where(ScheduleClaim.name == CLAIM, ScheduleClaim.owner == self.owner)
                .values(claimed_at=utcnow())
            )

    async def round(self) -> None:
        if not await self.claim():
            return
        todo = await self._repositories()
        audited = drift = 0
        for namespace, repository in todo:
            report = await audit_and_repair(
                self.db,
                self.store,
                self.peers,
                repository,
                namespace,
                self.options,
                Repair(OPERATOR, None),
                self.renew,
            )
            audited, drift = audited + 1, drift + len(report.drift)
            await self.renew()
        if drift:
            log.info("reconciler: %d repositories audited, %d drift found, repairs queued", audited, drift)
        await self._forget_old_runs()

    async def _forget_old_runs(self) -> None:
        """The reconciler writes a row per repository per round: keep a week of them."""
        async with self.db.write() as session:
            await session.execute(
                delete(AuditRun).where(
                    AuditRun.trigger == "reconciler", AuditRun.started_at < utcnow() - KEEP_RUNS
                )
            )

    async def _repositories(self) -> list[tuple[str, Repository]]:
        """Repositories with rules, in name order, from after the last one a round audited."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(Organization.name, Repository)
                .join(Repository, Repository.organization_id == Organization.id)
                .where(
                    select(SyncRule.id).where(SyncRule.repository_id == Repository.id).exists()
                    | select(OrgSyncRule.id).where(OrgSyncRule.organization_id == Organization.id).exists()
                )
                .order_by(Organization.name, Repository.name)
            )
            found = [(namespace, repository) for namespace, repository in rows]
            last = (
                await session.execute(
                    select(AuditRun.namespace, AuditRun.repo_name)
                    .where(AuditRun.trigger == "reconciler")
                    .order_by(AuditRun.id.desc())
                    .limit(1)
                )
            ).first()
        if last is None:
            return found
        after = [(n, r) for n, r in found if (n, r.name) > (last[0] or "", last[1] or "")]
        return after or found


def reconciler_schedule(
    settings: Settings, db: Database, store: BlobStore, peers: Mapping[str, PeerClient]
) -> Periodic:
    """The loop `ferry serve` starts; it does nothing when the interval is 0."""
    reconciler = Reconciler(settings, db, store, peers)
    look = min(settings.audit_interval_seconds, MAX_LOOK_SECONDS)
    return Periodic("reconciler", look, reconciler.round, log)
