"""Statements SQLAlchemy spells differently per database."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_ignore(session: AsyncSession, model: type[Any], **values: Any) -> None:
    """INSERT that does nothing when the row exists, on SQLite and PostgreSQL alike."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    module: Any = postgresql if dialect == "postgresql" else sqlite
    await session.execute(module.insert(model).values(**values).on_conflict_do_nothing())
