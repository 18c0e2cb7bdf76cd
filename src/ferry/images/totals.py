"""What the registry holds, in three numbers, for /metrics: one query."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from ferry.metadata.db import Database
from ferry.metadata.models import Blob, Repository, Tag


@dataclass(frozen=True)
class ContentTotals:
    repositories: int
    tags: int
    blob_bytes: int


async def content_totals(db: Database) -> ContentTotals:
    query = select(
        select(func.count()).select_from(Repository).scalar_subquery(),
        select(func.count()).select_from(Tag).scalar_subquery(),
        select(func.coalesce(func.sum(Blob.size), 0)).scalar_subquery(),
    )
    async with db.read() as session:
        repositories, tags, blob_bytes = (await session.execute(query)).one()
    return ContentTotals(int(repositories), int(tags), int(blob_bytes))
