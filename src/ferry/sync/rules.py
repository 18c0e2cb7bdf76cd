"""Sync rules and manual syncs: the service behind the six sync operations."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import Operator
from ferry.metadata.models import Repository, SyncJob, SyncRule, Tag, utcnow
from ferry.sync.triggers import Target, enqueue


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
    session: AsyncSession, namespace: str, repo_name: str, offset: int, limit: int, descending: bool
) -> tuple[list[SyncJob], int]:
    where = (SyncJob.namespace == namespace) & (SyncJob.repo_name == repo_name)
    total = await session.scalar(select(func.count()).select_from(SyncJob).where(where))
    order = SyncJob.id.desc() if descending else SyncJob.id.asc()
    rows = await session.scalars(select(SyncJob).where(where).order_by(order).offset(offset).limit(limit))
    return list(rows), int(total or 0)
