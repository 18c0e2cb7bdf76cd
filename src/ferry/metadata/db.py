"""The database handle: async sessions for reading and for writing.

SQLite allows one writer at a time. Write transactions there start with BEGIN IMMEDIATE behind a
process-wide lock, so writers queue instead of failing with "database is locked" when a read
transaction tries to upgrade; a BEGIN that finds another process writing sleeps and tries again.
SQLite's calls run on the event loop's thread (`_InlineSqlite`), without aiosqlite's hand-off.
PostgreSQL needs none of this.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
from sqlalchemy import TextClause, event, make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ferry.metadata.point_reads import PointReads, is_busy
from ferry.metadata.quick_writes import EngineWrite, QuickWrite, SqliteWrite, SqliteWriteConnections
from ferry.metadata.quick_writes import run as run_sqlite
from ferry.observability import metrics

# A read waits this long for a lock (in WAL only a recovery or a maintenance tool holds one).
READ_BUSY_MILLISECONDS = 30_000
# A write waits this long for another process's write transaction before it fails.
WRITE_BUSY_SECONDS = 30.0

STARTED = "ferry.statement_started"


def _instrument(engine: AsyncEngine) -> None:
    """Statement latency and errors, from SQLAlchemy's cursor events."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before(conn: Any, *_args: Any) -> None:
        conn.info.setdefault(STARTED, []).append(time.perf_counter())

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _after(conn: Any, *_args: Any) -> None:
        started = conn.info[STARTED].pop()
        metrics.DB_LATENCY.labels("statement").observe(time.perf_counter() - started)

    @event.listens_for(engine.sync_engine, "handle_error")
    def _error(context: Any) -> None:
        started = context.connection.info.get(STARTED) if context.connection is not None else None
        if started:
            started.pop()
        error = context.original_exception
        metrics.DB_ERRORS.labels("statement", type(error).__name__).inc()


@asynccontextmanager
async def _timed_transaction(kind: str) -> AsyncIterator[None]:
    """A transaction's whole time, waiting for SQLite's writer included; its failures by type."""
    started = time.perf_counter()
    try:
        yield
    except SQLAlchemyError as error:
        metrics.DB_ERRORS.labels(kind, type(error).__name__).inc()
        raise
    finally:
        metrics.DB_LATENCY.labels(kind).observe(time.perf_counter() - started)


class _WriterBusy(Exception):
    """Another process holds SQLite's write lock: try BEGIN IMMEDIATE again shortly."""


async def _wait_for_other_writer(pause: float) -> float:
    """Sleeps while another process holds SQLite's write lock; the next, longer pause."""
    metrics.DB_ERRORS.labels("write", "busy").inc()
    await asyncio.sleep(pause)
    return min(pause * 2, 0.05)


class DatabaseFull(Exception):
    """The database cannot grow: its disk or quota is full. The transaction was rolled back."""


def _is_full(error: DBAPIError) -> bool:
    original = error.orig
    if getattr(original, "sqlstate", None) == "53100":  # PostgreSQL disk_full
        return True
    code = getattr(original, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF == 13) or "database or disk is full" in str(original)


@asynccontextmanager
async def _full_is_reported() -> AsyncIterator[None]:
    try:
        yield
    except DBAPIError as error:
        if _is_full(error):
            raise DatabaseFull("the database has no space left") from None
        raise


class _InlineSqlite(aiosqlite.Connection):
    """aiosqlite's connection, with each call run right here on the event loop's thread instead
    of handed to the connection's own thread and awaited.

    The hand-off cost more than the work: a statement of an indexed read or write takes tens of
    microseconds in SQLite, the round trip through aiosqlite's thread ~1 ms of CPU and, worse,
    one turn of a busy event loop, during which a write transaction kept SQLite's one write
    lock (a push's transaction of 13 statements held it 10-40 ms under load, and every other
    write of the region queued behind it). Nothing here waits for a lock on the loop: readers of
    a WAL database never wait for the writer, and the write engine's connections do not wait at
    all (busy_timeout 0; `Database._write_transaction` retries a busy BEGIN asynchronously).
    """

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


def _sqlite_engine(url: str, begin: str, busy_milliseconds: int) -> AsyncEngine:
    path = make_url(url).database or ""

    async def connect() -> aiosqlite.Connection:
        def connector() -> sqlite3.Connection:
            return sqlite3.connect(path, timeout=busy_milliseconds / 1000, check_same_thread=False)

        return await _InlineSqlite(connector, 64)

    engine = create_async_engine(url, async_creator=connect, hide_parameters=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event, not the driver, open transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_milliseconds}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """Statement parameters never appear in errors or logs: they carry password hashes and SKs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, "BEGIN", READ_BUSY_MILLISECONDS)
            self._write_engine = _sqlite_engine(url, "BEGIN IMMEDIATE", 0)
        else:
            self.engine = create_async_engine(url, pool_size=10, max_overflow=20, hide_parameters=True)
            self._write_engine = self.engine
        for engine in {self.engine, self._write_engine}:
            _instrument(engine)
        self._read_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(self._write_engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._quick = SqliteWriteConnections(url) if self.is_sqlite else None
        self._quick_statements: dict[str, TextClause] = {}
        # The registry's hot reads: one indexed statement each, no session (point_reads.py).
        self.point = PointReads(url, self.engine)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with _timed_transaction("read"), self._read_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A transaction that commits on success and rolls back on any exception.

        A full disk rolls it back whole and raises DatabaseFull.
        """
        async with _timed_transaction("write"), _full_is_reported(), self._write_transaction() as session:
            yield session

    @asynccontextmanager
    async def _write_transaction(self) -> AsyncIterator[AsyncSession]:
        if self._write_lock is None:
            async with self._write_sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock:
            # BEGIN IMMEDIATE, taken eagerly: busy means another process is writing, and this
            # one waits for it here, asleep, never on the loop inside SQLite.
            deadline = time.monotonic() + WRITE_BUSY_SECONDS
            pause = 0.001
            while True:
                async with self._write_sessions() as session:
                    try:
                        async with session.begin():
                            try:
                                await session.connection()
                            except OperationalError as error:
                                if not is_busy(error.orig) or time.monotonic() > deadline:
                                    raise
                                raise _WriterBusy from None
                            yield session
                            return
                    except _WriterBusy:
                        pass
                pause = await _wait_for_other_writer(pause)

    @asynccontextmanager
    async def quick_write(self) -> AsyncIterator[QuickWrite]:
        """A write transaction of plain SQL statements (quick_writes.py): commits on success,
        rolls back on any exception, DatabaseFull when the disk is full, like `write`."""
        async with _timed_transaction("write"), _full_is_reported():
            if self._write_lock is None or self._quick is None:
                async with self._write_engine.begin() as engine_connection:
                    yield EngineWrite(engine_connection, self._quick_statements)
                return
            async with self._write_lock:
                deadline = time.monotonic() + WRITE_BUSY_SECONDS
                pause = 0.001
                # None: another process is writing; wait for it asleep, not on the loop.
                while (sqlite := self._quick.begin(time.monotonic() > deadline)) is None:
                    pause = await _wait_for_other_writer(pause)
                try:
                    yield SqliteWrite(sqlite)
                    run_sqlite(sqlite, "COMMIT")
                except BaseException:
                    if sqlite.in_transaction:
                        sqlite.execute("ROLLBACK").close()
                    raise

    @asynccontextmanager
    async def schema_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction for migrations: on SQLite through an engine of its own whose
        connection waits in SQLite for other processes' writers (startup, nothing else runs)."""
        if not self.is_sqlite:
            async with self._write_engine.begin() as connection:
                yield connection
            return
        engine = _sqlite_engine(self.url, "BEGIN IMMEDIATE", READ_BUSY_MILLISECONDS)
        try:
            async with engine.begin() as connection:
                yield connection
        finally:
            await engine.dispose()

    async def close(self) -> None:
        self.point.close()
        if self._quick is not None:
            self._quick.close()
        await self.engine.dispose()
        if self._write_engine is not self.engine:
            await self._write_engine.dispose()
