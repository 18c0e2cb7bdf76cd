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


async def insert_or_update(
    session: AsyncSession, model: type[Any], keys: list[str], update: list[str], **values: Any
) -> None:
    """INSERT, or on a conflict on `keys` set the `update` columns to the new values: one
    statement where a read-then-write would take two (SQLite and PostgreSQL alike)."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(model).values(**values)
    changes = {column: statement.excluded[column] for column in update}
    await session.execute(statement.on_conflict_do_update(index_elements=keys, set_=changes))
