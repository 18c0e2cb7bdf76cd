"""The database handle: async sessions for reading and for writing.

SQLite allows one writer at a time. Write transactions there start with BEGIN IMMEDIATE behind a
process-wide lock, so writers queue instead of failing with "database is locked" when a read
transaction tries to upgrade. PostgreSQL needs neither.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ferry.metadata.point_reads import PointReads
from ferry.observability import metrics

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


def _sqlite_engine(url: str, begin: str) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event, not the driver, open transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
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
            self.engine = _sqlite_engine(url, "BEGIN")
            self._write_engine = _sqlite_engine(url, "BEGIN IMMEDIATE")
        else:
            self.engine = create_async_engine(url, pool_size=10, max_overflow=20, hide_parameters=True)
            self._write_engine = self.engine
        for engine in {self.engine, self._write_engine}:
            _instrument(engine)
        self._read_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(self._write_engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
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
        async with self._write_lock, self._write_sessions() as session, session.begin():
            yield session

    async def close(self) -> None:
        self.point.close()
        await self.engine.dispose()
        if self._write_engine is not self.engine:
            await self._write_engine.dispose()
