"""One garbage collection at a time per region, whatever the number of processes.

PostgreSQL: a session-level advisory lock on a connection held for the run (released when the
connection closes, so a killed process never leaves it taken). SQLite: an exclusive flock on a
file beside the database (every process of a SQLite region runs on the one host).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from ferry.metadata.db import Database

# The region-wide GC lease's advisory key: above 2**60, so no digest lock key (blobs.py) equals it.
GC_LEASE_KEY = 0x7E44_6763_0000_0001


@asynccontextmanager
async def gc_lease(db: Database) -> AsyncIterator[bool]:
    """Yields True while this process holds the lease, False when another one does."""
    if db.is_sqlite:
        async with _file_lease(db) as acquired:
            yield acquired
        return
    async with db.engine.connect() as connection:
        acquired = bool(await connection.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": GC_LEASE_KEY}))
        await connection.commit()
        try:
            yield acquired
        finally:
            if acquired:
                await connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": GC_LEASE_KEY})
                await connection.commit()


@asynccontextmanager
async def _file_lease(db: Database) -> AsyncIterator[bool]:
    database = make_url(db.url).database or "ferry.db"
    fd = os.open(Path(database).with_suffix(".gc-lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
