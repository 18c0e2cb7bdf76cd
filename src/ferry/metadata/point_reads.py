"""Single indexed SELECTs for the registry's hot reads, without a session or a thread hop.

A HEAD of a blob or a GET of a manifest is one indexed lookup. Through an async ORM session on
aiosqlite it cost 1.7-2.7 ms of CPU (the session, then a hand-off to aiosqlite's thread per
call); the same SQL through the standard library's sqlite3 takes microseconds. So on SQLite the
statement runs right here, on the event loop's thread, on a connection of that thread's own:
an indexed read of a WAL database never waits for the writer (readers see the last commit), so
it does not block the loop for longer than the lookup. Each statement is its own read
transaction (autocommit), and sees every commit made before it started, from this process or
another: no cache, so nothing can be stale.

Should SQLite answer busy (recovery after a crash, an exclusive lock held by a maintenance
tool), the statement runs again through the async engine, which waits. PostgreSQL always goes
through the async engine's connection pool (asyncpg is async already), with Core `text()`
statements and no ORM.

The SQL is plain text with `:name` parameters, which both sqlite3 and SQLAlchemy understand.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import TextClause, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ferry.observability import metrics

Row = Sequence[Any]
_STATEMENT = metrics.DB_LATENCY.labels("statement")
_READ = metrics.DB_LATENCY.labels("read")
# How long a point read on the loop waits for a lock before handing over to the async engine.
_BUSY_MILLISECONDS = 20


def is_busy(error: BaseException | None) -> bool:
    """Whether SQLite refused because another connection holds a lock it needs."""
    message = str(error)
    return "locked" in message or "busy" in message


class PointReads:
    def __init__(self, url: str, engine: AsyncEngine) -> None:
        self.engine = engine
        self._path = make_url(url).database if url.startswith("sqlite") else None
        self._local = threading.local()
        self._statements: dict[str, TextClause] = {}

    async def one(self, sql: str, params: Mapping[str, Any]) -> Row | None:
        """The first row of the statement's answer, or None."""
        rows = await self._run(sql, params, first=True)
        return rows[0] if rows else None

    async def all(self, sql: str, params: Mapping[str, Any]) -> list[Row]:
        return await self._run(sql, params, first=False)

    async def _run(self, sql: str, params: Mapping[str, Any], first: bool) -> list[Row]:
        started = time.perf_counter()
        try:
            if self._path is not None:
                rows = self._on_this_thread(sql, params, first)
                if rows is not None:
                    return rows
            return await self._through_engine(sql, params, first)
        finally:
            elapsed = time.perf_counter() - started
            _STATEMENT.observe(elapsed)
            _READ.observe(elapsed)

    def _on_this_thread(self, sql: str, params: Mapping[str, Any], first: bool) -> list[Row] | None:
        """The rows (a `first` statement selects one row at most), or None when SQLite is busy
        (then the engine, which waits, runs it)."""
        try:
            cursor = self._connection().execute(sql, params)
            try:
                # Read to the end and close: a statement left half-read would hold its read
                # transaction (and keep checkpoints from finishing) until the next one.
                rows = cursor.fetchall()
            finally:
                cursor.close()
            return rows[:1] if first else rows
        except sqlite3.OperationalError as error:
            if is_busy(error):
                metrics.DB_ERRORS.labels("point", "busy").inc()
                return None
            raise

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            assert self._path is not None
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout={_BUSY_MILLISECONDS}")
            connection.execute("PRAGMA query_only=ON")
            self._local.connection = connection
        return connection

    async def _through_engine(self, sql: str, params: Mapping[str, Any], first: bool) -> list[Row]:
        statement = self._statements.get(sql)
        if statement is None:
            statement = self._statements[sql] = text(sql)
        async with self.engine.connect() as connection:
            result = await connection.execute(statement, dict(params))
            if first:
                row = result.first()
                return [tuple(row)] if row is not None else []
            return [tuple(row) for row in result.all()]

    def close(self) -> None:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
