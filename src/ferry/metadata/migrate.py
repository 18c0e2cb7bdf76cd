"""Schema migrations with Alembic, configured in code so no alembic.ini has to be found."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ferry.metadata.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x46455252  # "FERR"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


async def upgrade(database: Database) -> None:
    """Brings the schema to the newest revision, on the database's own engine."""

    def _upgrade(connection: object) -> None:
        config = alembic_config(database.url)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with database.schema_transaction() as connection:
        if not database.is_sqlite:
            # Several processes may start at once; PostgreSQL's DDL is transactional, so the
            # first migrates and the rest find the schema current.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await connection.run_sync(_upgrade)


def head_revision(url: str) -> str | None:
    """The newest revision the code ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


async def current_revision(database: Database) -> str | None:
    """The revision the database is at (None before the first migration).

    Read from Alembic's own table, without Alembic, which logs each time it is asked.
    """
    async with database.read() as session:
        try:
            return await session.scalar(text("SELECT version_num FROM alembic_version"))
        except DBAPIError:
            return None  # no table yet
