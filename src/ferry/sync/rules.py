"""Sync rules and manual syncs: the service behind the six sync operations.

Who may sync what is sync/authorization.py's rule; refusals are RuleError (here),
SyncRefused (the target region's answer) and identity's and images' errors for the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import EDIT, MANAGE, READ, Operator
from ferry.identity.errors import PermissionMissing
from ferry.identity.organizations import account_of
from ferry.identity.service import Principal
from ferry.images.repositories import repository_for
from ferry.metadata.db import Database
from ferry.metadata.models import Account, JobStatus, Repository, SyncJob, SyncRule, Tag, utcnow
from ferry.names import ORGANIZATION_RULE, is_organization
from ferry.sync import reasons
from ferry.sync.authorization import actor_of, check_target, may_configure_rules
from ferry.sync.errors import PeerError, RuleError
from ferry.sync.peer_client import Actor, PeerClient
from ferry.sync.queue import cancel_jobs
from ferry.sync.triggers import Target, enqueue


class TargetRegionUnknown(RuleError):
    def __init__(self, region: str, valid: list[str]) -> None:
        names = ", ".join(valid) or "none configured"
        super().__init__(f"invalid remoteRegionId {region!r}: valid target regions are {names}")
        self.region = region


class TargetNamespaceInvalid(RuleError):
    def __init__(self, namespace: str) -> None:
        super().__init__(f"invalid remoteNamespace {namespace!r}: {ORGANIZATION_RULE}")
        self.namespace = namespace


class TargetUnchecked(RuleError):
    """The target region could not say whether the copy may write there."""

    def __init__(self, region: str, reason: PeerError) -> None:
        super().__init__(
            f"cannot check the target organization in region {region}: {reason}; "
            f"check that {region} is up and the peer credential configured for it"
        )
        self.region = region


class RuleUnknown(RuleError):
    def __init__(self, target: SyncTarget, source: str) -> None:
        super().__init__(f"no sync rule to {target.region}/{target.namespace} on {source}")


@dataclass(frozen=True)
class SyncTarget:
    """The (target region, target organization) pair that names a rule or a copy."""

    region: str
    namespace: str


def peer_for(peers: Mapping[str, PeerClient], target: SyncTarget) -> PeerClient:
    if target.region not in peers:
        raise TargetRegionUnknown(target.region, list(peers))
    if not is_organization(target.namespace):
        raise TargetNamespaceInvalid(target.namespace)
    return peers[target.region]


async def rule_repository(
    session: AsyncSession, principal: Principal, namespace: str, name: str
) -> Repository:
    """The source repository, when the caller may configure automatic sync on it (SWR: only the
    account's administrators)."""
    visible, repository = await repository_for(session, principal, namespace, name, MANAGE)
    if not may_configure_rules(principal, visible.organization):
        raise PermissionMissing(
            f"Insufficient permissions: only administrators of the account owning organization "
            f"'{namespace}' may configure automatic sync"
        )
    return repository


async def ask_target(
    client: PeerClient, actor: Actor, target: SyncTarget, repository: str, unreachable_ok: bool
) -> None:
    """The target region must let the caller push there (SyncRefused otherwise).

    Unreachable: a rule is not stored (TargetUnchecked), a manual sync queues its jobs, which
    check again when they run.
    """
    try:
        await check_target(client, actor, target.namespace, repository)
    except PeerError as error:
        if not (unreachable_ok and error.retryable):
            raise TargetUnchecked(target.region, error) from None


async def create_rule(
    db: Database,
    peers: Mapping[str, PeerClient],
    principal: Principal,
    namespace: str,
    name: str,
    target: SyncTarget,
    sync_auto: bool,
    override: bool,
) -> SyncRule:
    client = peer_for(peers, target)
    async with db.read() as session:
        await rule_repository(session, principal, namespace, name)
        actor = await actor_of(session, principal)
    # The target region is asked outside any transaction, so a slow peer holds no writer; the
    # write checks the caller's rights again, as they may have changed meanwhile.
    await ask_target(client, actor, target, name, unreachable_ok=False)
    async with db.write() as session:
        repository = await rule_repository(session, principal, namespace, name)
        return await upsert_rule(
            session, repository, target.region, target.namespace, sync_auto, override, principal.user_id
        )


async def delete_rule(
    session: AsyncSession, principal: Principal, namespace: str, name: str, target: SyncTarget
) -> None:
    repository = await rule_repository(session, principal, namespace, name)
    rule = await find_rule(session, repository.id, target.region, target.namespace)
    if rule is None:
        raise RuleUnknown(target, f"{namespace}/{name}")
    await session.delete(rule)
    await _cancel_waiting_auto_jobs(session, repository.id, target, principal.name)


async def _cancel_waiting_auto_jobs(
    session: AsyncSession, repository_id: int, target: SyncTarget, deleted_by: str
) -> None:
    """The rule's waiting jobs end as `cancel`, saying why (they would copy for a rule that no
    longer exists); one already copying finishes its copy. Manual syncs are nobody's rule."""
    message = (
        f"cancelled: the sync rule to {target.region}/{target.namespace} was deleted by "
        f"{deleted_by} before this job ran; nothing copied"
    )
    await cancel_jobs(
        session,
        SyncJob.repository_id == repository_id,
        SyncJob.remote_region_id == target.region,
        SyncJob.remote_namespace == target.namespace,
        SyncJob.trigger == "auto",
        SyncJob.status == JobStatus.WAITING,
        reason=reasons.RULE_DELETED,
        message=message,
    )


async def list_rules(
    session: AsyncSession, principal: Principal, namespace: str, name: str
) -> tuple[list[SyncRule], Account]:
    """The repository's rules, and the account that owns it (whose domain each row names)."""
    visible, repository = await repository_for(session, principal, namespace, name, READ)
    return await rules_of(session, repository.id), await account_of(session, visible.organization.account_id)


async def sync_now(
    db: Database,
    peers: Mapping[str, PeerClient],
    principal: Principal,
    namespace: str,
    name: str,
    tags: list[str],
    target: SyncTarget,
    override: bool,
) -> list[str]:
    """Queues one manual job per existing tag; returns the tags that do not exist."""
    client = peer_for(peers, target)
    async with db.read() as session:
        await repository_for(session, principal, namespace, name, EDIT)
        actor = await actor_of(session, principal)
    await ask_target(client, actor, target, name, unreachable_ok=True)
    copy = Target(target.region, target.namespace, override, principal.user_id)
    async with db.write() as session:
        _, repository = await repository_for(session, principal, namespace, name, EDIT)
        return await manual_sync(session, repository, tags, copy, principal.operator)


@dataclass(frozen=True)
class JobFilter:
    """Which sync records a listing keeps: any of `statuses` (all when empty), created at or
    after `since` (any time when None)."""

    statuses: frozenset[str] = frozenset()
    since: datetime | None = None


@dataclass(frozen=True)
class JobPage:
    jobs: list[SyncJob]
    total: int
    account: Account  # the source repository's, whose domain each row names


async def list_jobs(
    session: AsyncSession,
    principal: Principal,
    namespace: str,
    name: str,
    offset: int,
    limit: int,
    descending: bool,
    kept: JobFilter = JobFilter(),
) -> JobPage:
    visible, _ = await repository_for(session, principal, namespace, name, READ)
    account = await account_of(session, visible.organization.account_id)
    jobs, total = await job_page(session, namespace, name, offset, limit, descending, kept)
    return JobPage(jobs, total, account)


async def upsert_rule(
    session: AsyncSession,
    repository: Repository,
    region: str,
    namespace: str,
    sync_auto: bool,
    override: bool,
    creator_id: int,
) -> SyncRule:
    """Idempotent: a second create for the same target updates the rule (SWR-API.md 8.1)."""
    rule = await find_rule(session, repository.id, region, namespace)
    if rule is None:
        rule = SyncRule(
            repository_id=repository.id,
            remote_region_id=region,
            remote_namespace=namespace,
            sync_auto=sync_auto,
            override=override,
            creator_id=creator_id,
        )
        session.add(rule)
    else:
        rule.sync_auto, rule.override, rule.updated_at = sync_auto, override, utcnow()
    await session.flush()
    return rule


async def find_rule(
    session: AsyncSession, repository_id: int, region: str, namespace: str
) -> SyncRule | None:
    return await session.scalar(
        select(SyncRule).where(
            SyncRule.repository_id == repository_id,
            SyncRule.remote_region_id == region,
            SyncRule.remote_namespace == namespace,
        )
    )


async def rules_of(session: AsyncSession, repository_id: int) -> list[SyncRule]:
    query = select(SyncRule).where(SyncRule.repository_id == repository_id).order_by(SyncRule.id)
    return list(await session.scalars(query))


async def manual_sync(
    session: AsyncSession, repository: Repository, tags: list[str], target: Target, operator: Operator
) -> list[str]:
    """One job per existing tag; returns the tags that do not exist (the failed list)."""
    existing = set(
        await session.scalars(select(Tag.name).where(Tag.repository_id == repository.id, Tag.name.in_(tags)))
    )
    failed = [t for t in dict.fromkeys(tags) if t not in existing]
    for tag in dict.fromkeys(tags):
        if tag in existing:
            await enqueue(session, repository, tag, target, "manual", operator)
    return failed


async def job_page(
    session: AsyncSession,
    namespace: str,
    repo_name: str,
    offset: int,
    limit: int,
    descending: bool,
    kept: JobFilter = JobFilter(),
) -> tuple[list[SyncJob], int]:
    where = (SyncJob.namespace == namespace) & (SyncJob.repo_name == repo_name)
    if kept.statuses:
        where &= SyncJob.status.in_(sorted(kept.statuses))
    if kept.since is not None:
        where &= SyncJob.created_at >= kept.since
    total = await session.scalar(select(func.count()).select_from(SyncJob).where(where))
    order = SyncJob.id.desc() if descending else SyncJob.id.asc()
    rows = await session.scalars(select(SyncJob).where(where).order_by(order).offset(offset).limit(limit))
    return list(rows), int(total or 0)
