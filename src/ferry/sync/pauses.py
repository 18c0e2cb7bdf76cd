"""Pause and resume: a rule's copies (a repository rule's, or an organization rule's), or every
copy to a peer region. Held jobs stay `waiting` and keep their place (sync/holds.py keeps the
queue from claiming them); a copy already running finishes. Resuming wakes the workers.

A rule is paused by whoever may change it (an administrator of the account); a peer by the
region's operator (`ferry peer pause`, on the region's own database, as `ferry gc`), since it
holds every account's copies.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.service import Principal
from ferry.metadata.models import OrgSyncRule, SyncPause
from ferry.sync.org_rules import OrgRuleUnknown, rule_organization
from ferry.sync.rules import RuleUnknown, SyncTarget, find_rule, rule_repository
from ferry.sync.wakeup import jobs_recorded


@dataclass(frozen=True)
class PauseScope:
    """What a pause holds: every copy to `region` (the rest empty), or from `namespace`
    (`repo_name`, or the whole organization when empty) to `region`/`remote_namespace`."""

    region: str
    remote_namespace: str = ""
    namespace: str = ""
    repo_name: str = ""

    def __str__(self) -> str:
        if not self.remote_namespace:
            return f"every copy to {self.region}"
        source = f"{self.namespace}/{self.repo_name}" if self.repo_name else f"organization {self.namespace}"
        return f"copies from {source} to {self.region}/{self.remote_namespace}"


async def set_paused(session: AsyncSession, scope: PauseScope, paused: bool, by: str) -> bool:
    """Pauses or resumes; False when it already was so."""
    found = await session.scalar(
        select(SyncPause).where(
            SyncPause.remote_region_id == scope.region,
            SyncPause.remote_namespace == scope.remote_namespace,
            SyncPause.namespace == scope.namespace,
            SyncPause.repo_name == scope.repo_name,
        )
    )
    if paused:
        if found is not None:
            return False
        session.add(
            SyncPause(
                remote_region_id=scope.region,
                remote_namespace=scope.remote_namespace,
                namespace=scope.namespace,
                repo_name=scope.repo_name,
                paused_by=by,
            )
        )
        await session.flush()
        return True
    if found is None:
        return False
    await session.execute(delete(SyncPause).where(SyncPause.id == found.id))
    await jobs_recorded(session)  # the held jobs are due: wake the workers at commit
    return True


async def pause_repository_rule(
    session: AsyncSession, principal: Principal, namespace: str, name: str, target: SyncTarget, paused: bool
) -> PauseScope:
    repository = await rule_repository(session, principal, namespace, name)
    if await find_rule(session, repository.id, target.region, target.namespace) is None:
        raise RuleUnknown(target, f"{namespace}/{name}")
    scope = PauseScope(target.region, target.namespace, namespace, name)
    await set_paused(session, scope, paused, principal.name)
    return scope


async def pause_org_rule(
    session: AsyncSession, principal: Principal, namespace: str, rule_id: int, paused: bool
) -> PauseScope:
    organization = await rule_organization(session, principal, namespace)
    rule = await session.get(OrgSyncRule, rule_id)
    if rule is None or rule.organization_id != organization.id:
        raise OrgRuleUnknown(namespace, rule_id)
    scope = PauseScope(rule.remote_region_id, rule.remote_namespace, namespace)
    await set_paused(session, scope, paused, principal.name)
    return scope


async def paused_organization_targets(session: AsyncSession, namespace: str) -> set[tuple[str, str]]:
    """The (region, organization) targets whose copies from the whole organization are paused."""
    rows = await session.execute(
        select(SyncPause.remote_region_id, SyncPause.remote_namespace).where(
            SyncPause.namespace == namespace, SyncPause.repo_name == "", SyncPause.remote_namespace != ""
        )
    )
    return {(region, remote) for region, remote in rows.all()}


async def list_pauses(session: AsyncSession) -> list[SyncPause]:
    return list(await session.scalars(select(SyncPause).order_by(SyncPause.id)))
