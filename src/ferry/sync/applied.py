"""The rules that apply to a repository: its own (SWR's per-repository rules) and those of its
organization (Ferry's organization rules) whose repository filter it passes.

Everything that asks "where does this repository's tag go" asks here: the triggers that record
jobs at a push, the replication state, explain, and the audit. Where a repository rule and an
organization rule name the same target, the repository rule alone applies: it is the more
specific, and SWR's switches on it are what its owner set for that repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.metadata.models import OrgSyncRule, Repository, SyncRule
from ferry.sync.filters import NameFilter, from_json


@dataclass(frozen=True)
class AppliedRule:
    """A rule as it applies to one repository (attribute names as SyncRule's)."""

    repository_id: int
    remote_region_id: str
    remote_namespace: str
    sync_auto: bool
    override: bool
    creator_id: int | None
    # An organization rule's: its id and tag filter (its repository filter was passed already).
    organization_rule_id: int | None = None
    tags: NameFilter = field(default_factory=NameFilter)
    # Deletion sync (an organization rule's, opt-in): sync/deletion.py.
    sync_deletes: bool = False
    delete_grace_seconds: int = 0
    sync_retention_deletes: bool = False
    platforms: tuple[str, ...] = ()  # an index's platforms to copy (sync/platforms.py); (): all
    bandwidth: int | None = None  # bytes per second the rule's copies share (sync/bandwidth.py)

    def copies(self, tag: str) -> bool:
        return self.tags.passes(tag)

    @property
    def scope(self) -> str:
        return "repository" if self.organization_rule_id is None else "organization"


def _of_repository(rule: SyncRule) -> AppliedRule:
    return AppliedRule(
        rule.repository_id,
        rule.remote_region_id,
        rule.remote_namespace,
        rule.sync_auto,
        rule.override,
        rule.creator_id,
    )


async def applied_rules(session: AsyncSession, repository_ids: Sequence[int] | None) -> list[AppliedRule]:
    """Every rule of the repositories (of every repository, for None): repository rules first,
    then organization rules, each group in the order the rules were made."""
    own_query = select(SyncRule).order_by(SyncRule.id)
    org_query = (
        select(OrgSyncRule, Repository.id, Repository.name)
        .join(Repository, Repository.organization_id == OrgSyncRule.organization_id)
        .order_by(OrgSyncRule.id, Repository.id)
    )
    if repository_ids is not None:
        own_query = own_query.where(SyncRule.repository_id.in_(repository_ids))
        org_query = org_query.where(Repository.id.in_(repository_ids))
    applied = [_of_repository(rule) for rule in await session.scalars(own_query)]
    taken = {(a.repository_id, a.remote_region_id, a.remote_namespace) for a in applied}
    for rule, repository_id, name in (await session.execute(org_query)).all():
        rule_filter = from_json(rule.filters)
        key = (repository_id, rule.remote_region_id, rule.remote_namespace)
        if key in taken or not rule_filter.repositories.passes(name):
            continue
        taken.add(key)
        applied.append(
            AppliedRule(
                repository_id,
                rule.remote_region_id,
                rule.remote_namespace,
                sync_auto=True,
                override=rule.override,
                creator_id=rule.creator_id,
                organization_rule_id=rule.id,
                tags=rule_filter.tags,
                sync_deletes=rule.sync_deletes,
                delete_grace_seconds=rule.delete_grace_seconds,
                sync_retention_deletes=rule.sync_retention_deletes,
                platforms=tuple(rule.platforms or ()),
                bandwidth=rule.bandwidth,
            )
        )
    return applied
