"""Ferry's logs: one setup for every process (`serve`, `worker`), text or JSON lines on stderr,
and the context each line carries (the request or the sync job it belongs to).

The standard library, not structlog: every library Ferry runs on (aiohttp, asyncio, SQLAlchemy)
already logs through `logging`, so one handler with a filter and a formatter puts their lines in
the same format and context as Ferry's own, with nothing to bridge and no dependency to add.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol

REQUEST_ID: ContextVar[str | None] = ContextVar("ferry_request_id", default=None)
JOB_ID: ContextVar[int | None] = ContextVar("ferry_job_id", default=None)
# An incoming X-Request-Id is kept only when short and plain; anything else gets a fresh id.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# user:password@ in any URL a message or traceback mentions (a peer URL may carry them).
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")
ACCESS_LOGGER = "ferry.access"


class LogSettings(Protocol):
    """The part of ferry.config.Settings that logging reads (this package imports no settings)."""

    @property
    def log_format(self) -> str: ...

    @property
    def log_level(self) -> str: ...


def request_id_from(header: str | None) -> str:
    """The caller's X-Request-Id when it is safe to echo and log; else a new one."""
    if header and _SAFE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """Every line logged inside carries `request_id`."""
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


@contextmanager
def job_context(job_id: int) -> Iterator[None]:
    """Every line logged inside carries `job_id`."""
    token = JOB_ID.set(job_id)
    try:
        yield
    finally:
        JOB_ID.reset(token)


def redact(text: str) -> str:
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)


class ContextFilter(logging.Filter):
    """Adds `request_id` and `job_id` (from the context, unless the call gave them) and removes
    credentials from URLs in the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = record.__dict__
        if context.get("request_id") is None:
            context["request_id"] = REQUEST_ID.get()
        if context.get("job_id") is None:
            context["job_id"] = JOB_ID.get()
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """`2026-12-03T00:01:02.123Z INFO ferry.sync job=12 message`."""

    def format(self, record: logging.LogRecord) -> str:
        context, request_id, job_id = "", record.__dict__.get("request_id"), record.__dict__.get("job_id")
        message = record.getMessage()
        if request_id:
            context = f"request_id={request_id} "
        elif job_id is not None and f"job={job_id} " not in message:  # job lines name it already
            context = f"job={job_id} "
        line = f"{_timestamp(record)} {record.levelname} {record.name} {context}{message}"
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context, the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "job_id"):
            if getattr(record, key, None) is not None:
                entry[key] = getattr(record, key)
        entry |= getattr(record, "fields", None) or {}
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(settings: LogSettings) -> None:
    """Replaces whatever logging setup there was with Ferry's: one stderr handler, the format
    and level the settings ask for. Safe to call more than once."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # SQL statements carry parameters (password hashes, secret keys): never below WARNING.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    logging.captureWarnings(True)  # warnings as log lines, so JSON output stays JSON


def log_event(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """A line whose fields JSON output keeps as keys of their own (text shows the message)."""
    logger.log(level, message, extra={"fields": fields, **_context_of(fields)})


def _context_of(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: fields[key] for key in ("request_id", "job_id") if fields.get(key) is not None}


def log_access(
    *,
    method: str,
    route: str,
    path: str,
    status: int,
    seconds: float,
    bytes_in: int,
    bytes_out: int,
    request_id: str,
    caller: str,
    peer: str,
) -> None:
    """One request's access line. The path goes without its query string, which may hold secrets."""
    duration_ms = round(seconds * 1000, 1)
    message = (
        f"{method} {route} {status} {duration_ms}ms in={bytes_in} out={bytes_out} "
        f"caller={caller} peer={peer} path={path}"
    )
    log_event(
        logging.getLogger(ACCESS_LOGGER),
        logging.INFO,
        message,
        method=method,
        route=route,
        path=path,
        status=status,
        duration_ms=duration_ms,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        request_id=request_id,
        caller=caller,
        peer=peer,
    )
