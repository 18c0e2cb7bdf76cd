"""The account administrator a fresh region starts with."""

from __future__ import annotations

from sqlalchemy import select, text

from ferry.config import Settings
from ferry.identity.access_keys import add_access_key
from ferry.identity.service import create_user, ensure_account
from ferry.metadata.db import Database
from ferry.metadata.models import User

BOOTSTRAP_LOCK = 0x46455242  # "FERB"


async def bootstrap_admin(db: Database, settings: Settings) -> None:
    """Creates the admin (and its fixed AK/SK and project id, when configured) if missing."""
    if not settings.admin_password:
        return
    async with db.write() as session:
        if not db.is_sqlite:
            # API processes of one region start together; one creates the admin, the rest find it.
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": BOOTSTRAP_LOCK})
        account = await ensure_account(session, settings.admin_account)
        if settings.admin_project_id and account.project_id != settings.admin_project_id:
            account.project_id = settings.admin_project_id
        if not await session.scalar(select(User.id).where(User.name == settings.admin_user)):
            await create_user(
                session, settings.admin_account, settings.admin_user, settings.admin_password, True
            )
        if settings.admin_access_key and settings.admin_secret_key:
            await add_access_key(
                session, settings.admin_user, settings.admin_access_key, settings.admin_secret_key
            )
