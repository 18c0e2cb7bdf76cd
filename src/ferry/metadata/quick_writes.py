"""Short write transactions of plain SQL (a blob's link: two INSERTs) that hold the write lock for
well under a millisecond.

A write through the async ORM session on aiosqlite handed each statement to aiosqlite's thread
and waited for the event loop to come round again, so under load a three-statement transaction
held SQLite's one write lock for 10-20 ms (db.py now runs SQLite's calls inline; this path also
skips the ORM session), and every other write of the region queued behind it
(a `many` push and a burst of sync jobs measured 240 ms mean waits for the lock). Here, on
SQLite, the statements run on the event loop's thread on a connection of its own, between
`BEGIN IMMEDIATE` and `COMMIT`, with the same durability (`synchronous=FULL`) and the same
in-process write lock as `Database.write`, and without an ORM session. The connection never
waits for SQLite's lock on the loop: while another process holds it (`ferry serve` with several
processes), `Database.quick_write` sleeps and tries again. PostgreSQL goes through the async
engine, with Core `text()` statements.

Errors come out as SQLAlchemy's (IntegrityError, OperationalError), as from the engine.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import TextClause, exc, make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ferry.metadata.point_reads import is_busy
from ferry.observability import metrics

_STATEMENT = metrics.DB_LATENCY.labels("statement")

# SQLAlchemy's storage format for DateTime on SQLite (naive UTC text), so rows written here
# compare and read back exactly like the ORM's.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


class QuickWrite(Protocol):
    async def execute(self, sql: str, params: Mapping[str, Any]) -> None: ...


class EngineWrite:
    def __init__(self, connection: AsyncConnection, statements: dict[str, TextClause]) -> None:
        self._connection = connection
        self._statements = statements

    async def execute(self, sql: str, params: Mapping[str, Any]) -> None:
        statement = self._statements.get(sql)
        if statement is None:
            statement = self._statements[sql] = text(sql)
        await self._connection.execute(statement, dict(params))


class SqliteWrite:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def execute(self, sql: str, params: Mapping[str, Any]) -> None:
        started = time.perf_counter()
        try:
            run(self._connection, sql, {k: _sqlite_value(v) for k, v in params.items()})
        finally:
            _STATEMENT.observe(time.perf_counter() - started)  # counted like the engine's


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(_SQLITE_DATETIME)
    return value


def run(connection: sqlite3.Connection, sql: str, params: Mapping[str, Any] | None = None) -> None:
    """One statement; sqlite3's errors raised as SQLAlchemy's, as the engine raises them."""
    try:
        connection.execute(sql, params or {}).close()
    except sqlite3.IntegrityError as error:
        raise exc.IntegrityError(sql, None, error) from None
    except sqlite3.OperationalError as error:
        raise exc.OperationalError(sql, None, error) from None


class SqliteWriteConnections:
    """One connection per thread (the event loop's), opened on first use."""

    def __init__(self, url: str) -> None:
        self._path = make_url(url).database
        self._local = threading.local()

    def begin(self, last_try: bool) -> sqlite3.Connection | None:
        """The connection inside a new write transaction; None when another process is writing
        (on the last try, that is an OperationalError too)."""
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE").close()
        except sqlite3.OperationalError as error:
            if not last_try and is_busy(error):
                return None
            raise exc.OperationalError("BEGIN IMMEDIATE", None, error) from None
        return connection

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            assert self._path is not None
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            for pragma in (
                "busy_timeout=0",  # never wait on the loop: Database.quick_write sleeps instead
                "synchronous=FULL",
                "foreign_keys=ON",
                "wal_autocheckpoint=0",  # checkpoints stay with the engine's connections
            ):
                connection.execute(f"PRAGMA {pragma}").close()
            self._local.connection = connection
        return connection

    def close(self) -> None:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
