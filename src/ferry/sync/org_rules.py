"""Organization rules: automatic sync of every repository of an organization that passes the
rule's filters, also of repositories created later by their first push (Ferry's extension; the
six SWR sync operations do not see them).

Who may: as for SWR's rules, an administrator of the account that owns the organization; the
target region must let that user push to the target organization. Each job checks both again
when it runs (sync/authorization.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import MANAGE, READ
from ferry.identity.errors import PermissionMissing
from ferry.identity.organizations import require_organization
from ferry.identity.service import Principal
from ferry.metadata.db import Database
from ferry.metadata.models import (
    JobStatus,
    Organization,
    OrgSyncRule,
    Repository,
    SyncJob,
    SyncRule,
    Tag,
    utcnow,
)
from ferry.sync import reasons
from ferry.sync.authorization import actor_of, may_configure_rules
from ferry.sync.filters import RuleFilter
from ferry.sync.peer_client import PeerClient
from ferry.sync.queue import cancel_jobs
from ferry.sync.rules import RuleError, SyncTarget, ask_target, peer_for
from ferry.sync.triggers import Target, enqueue

# The target region is asked whether the rule's owner may push "ORG/<this>": rights there are
# the organization's, whatever the repository.
PROBE_REPOSITORY = "sync-rule-check"


@dataclass(frozen=True)
class DeletionSync:
    """Opt-in: tags deleted here are deleted at the target after `grace_seconds`, only where the
    target's tag holds what a sync from here wrote; retention's deletions only with `retention`."""

    enabled: bool = False
    grace_seconds: int = 3600
    retention: bool = False


class OrgRuleUnknown(RuleError):
    def __init__(self, namespace: str, rule_id: int) -> None:
        super().__init__(f"no organization sync rule {rule_id} in organization {namespace}")


async def rule_organization(session: AsyncSession, principal: Principal, namespace: str) -> Organization:
    organization = (await require_organization(session, principal, namespace, MANAGE)).organization
    if not may_configure_rules(principal, organization):
        raise PermissionMissing(
            f"Insufficient permissions: only administrators of the account owning organization "
            f"'{namespace}' may configure automatic sync"
        )
    return organization


async def create_org_rule(
    db: Database,
    peers: Mapping[str, PeerClient],
    principal: Principal,
    namespace: str,
    target: SyncTarget,
    override: bool,
    rule_filter: RuleFilter,
    sync_existing: bool,
    deletes: DeletionSync | None = None,
    platforms: tuple[str, ...] = (),
    bandwidth: int | None = None,
) -> tuple[OrgSyncRule, int]:
    """The stored rule (a second create for the same target replaces its switches and filters),
    and how many jobs `sync_existing` queued for the tags already there."""
    client = peer_for(peers, target)
    async with db.read() as session:
        await rule_organization(session, principal, namespace)
        actor = await actor_of(session, principal)
    await ask_target(client, actor, target, PROBE_REPOSITORY, unreachable_ok=False)
    async with db.write() as session:
        organization = await rule_organization(session, principal, namespace)
        rule = await session.scalar(
            select(OrgSyncRule).where(
                OrgSyncRule.organization_id == organization.id,
                OrgSyncRule.remote_region_id == target.region,
                OrgSyncRule.remote_namespace == target.namespace,
            )
        )
        if rule is None:
            rule = OrgSyncRule(
                organization_id=organization.id,
                remote_region_id=target.region,
                remote_namespace=target.namespace,
            )
            session.add(rule)
        rule.override, rule.filters, rule.creator_id = override, rule_filter.as_json(), principal.user_id
        deletes = deletes or DeletionSync()
        rule.sync_deletes, rule.delete_grace_seconds = deletes.enabled, deletes.grace_seconds
        rule.sync_retention_deletes = deletes.retention
        rule.platforms, rule.bandwidth = list(platforms), bandwidth
        rule.updated_at = utcnow()
        await session.flush()
        queued = (
            await _sync_existing(session, organization, rule, rule_filter, principal) if sync_existing else 0
        )
        return rule, queued


async def _sync_existing(
    session: AsyncSession,
    organization: Organization,
    rule: OrgSyncRule,
    rule_filter: RuleFilter,
    principal: Principal,
) -> int:
    """A manual job (the caller's rights) for every tag of the organization the filters pass."""
    copy = Target(
        rule.remote_region_id,
        rule.remote_namespace,
        rule.override,
        principal.user_id,
        tuple(rule.platforms),
        rule.id,
        rule.bandwidth,
    )
    rows = await session.execute(
        select(Repository, Tag.name)
        .join(Tag, Tag.repository_id == Repository.id)
        .where(Repository.organization_id == organization.id)
        .order_by(Repository.id, Tag.name)
    )
    queued = 0
    for repository, tag in rows.all():
        if rule_filter.copies(repository.name, tag):
            if await enqueue(session, repository, tag, copy, "manual", principal.operator) is not None:
                queued += 1
    return queued


async def list_org_rules(session: AsyncSession, principal: Principal, namespace: str) -> list[OrgSyncRule]:
    organization = (await require_organization(session, principal, namespace, READ)).organization
    query = select(OrgSyncRule).where(OrgSyncRule.organization_id == organization.id).order_by(OrgSyncRule.id)
    return list(await session.scalars(query))


async def delete_org_rule(session: AsyncSession, principal: Principal, namespace: str, rule_id: int) -> None:
    """The rule goes; its waiting automatic jobs end as cancelled (those a repository rule to the
    same target also calls for stay)."""
    organization = await rule_organization(session, principal, namespace)
    rule = await session.get(OrgSyncRule, rule_id)
    if rule is None or rule.organization_id != organization.id:
        raise OrgRuleUnknown(namespace, rule_id)
    await session.delete(rule)
    own_rule = (
        select(SyncRule.id)
        .where(
            SyncRule.repository_id == SyncJob.repository_id,
            SyncRule.remote_region_id == rule.remote_region_id,
            SyncRule.remote_namespace == rule.remote_namespace,
            SyncRule.sync_auto.is_(True),
        )
        .exists()
    )
    in_organization = select(Repository.id).where(Repository.organization_id == organization.id)
    await cancel_jobs(
        session,
        SyncJob.repository_id.in_(in_organization),
        SyncJob.remote_region_id == rule.remote_region_id,
        SyncJob.remote_namespace == rule.remote_namespace,
        SyncJob.trigger == "auto",
        SyncJob.status == JobStatus.WAITING,
        ~own_rule,
        reason=reasons.RULE_DELETED,
        message=(
            f"cancelled: the organization sync rule to {rule.remote_region_id}/{rule.remote_namespace} "
            f"was deleted by {principal.name} before this job ran; nothing copied"
        ),
    )
