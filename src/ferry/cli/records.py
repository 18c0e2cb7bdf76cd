"""How `ferry sync` shows sync records and rules: tables that wrap (never cut) the message, the
duration of each job, and the `--since` / `--status` options turned into the API's filter."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {"success": "green", "existed": "cyan", "failed": "red", "timeout": "red", "cancel": "yellow"}
_AGO = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class OptionInvalid(ValueError):
    """An option value the command cannot use; the message says what is expected."""


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """`10m`, `2h`, `1d`, `1w` ago, or an ISO 8601 time (UTC when it names no offset)."""
    moment = now or datetime.now(UTC)
    ago = _AGO.match(value.strip())
    try:
        if ago:
            return moment - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
        parsed = datetime.fromisoformat(value.strip())
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise OptionInvalid(
            f"--since {value!r}: use an age like 10m, 2h, 1d or an ISO time like 2026-12-02T10:00:00Z"
        ) from None


def parse_statuses(values: list[str], known: list[str]) -> list[str]:
    """`--status failed --status timeout` or `--status failed,timeout`."""
    statuses = [s.strip() for value in values for s in value.split(",") if s.strip()]
    unknown = [s for s in statuses if s not in known]
    if unknown:
        raise OptionInvalid(f"--status {unknown[0]!r}: use {', '.join(known)}")
    return list(dict.fromkeys(statuses))


def jobs_filter(limit: int, statuses: list[str], since: datetime | None) -> str:
    """The `filter` query value of SWR's sync record listing, with Ferry's status and since keys."""
    parts = [f"limit::{limit}", "offset::0"]
    if statuses:
        parts.append("status::" + ",".join(statuses))
    if since is not None:
        parts.append("since::" + since.astimezone(UTC).isoformat())
    return "filter=" + quote("|".join(parts), safe="")


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _span(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def duration(job: dict[str, Any], now: datetime | None = None) -> str:
    """started → finished; for a job still running, how long it has run so far."""
    started, finished = _moment(job.get("startedAt")), _moment(job.get("finishedAt"))
    if started is None:
        return "-"
    if finished is None:
        return f"{_span(((now or datetime.now(UTC)) - started).total_seconds())} so far"
    return _span((finished - started).total_seconds())


def styled_status(status: str) -> str:
    style = STATUS_STYLE.get(status, "")
    return f"[{style}]{status}[/{style}]" if style else status


# Below this many columns the table would squeeze the message into a sliver (Rich then crops
# rows): each record becomes a line of figures with its message wrapped beneath it.
TABLE_MIN_WIDTH = 140


def _job_cells(job: dict[str, Any], with_repository: bool) -> list[str | Text]:
    # Text, not markup: a message may hold brackets ("['pull']") that Rich would eat.
    cells: list[str | Text] = [str(job["id"])]
    cells += [Text(job["repoName"])] if with_repository else []
    cells += [Text(job["tag"]), Text(f"{job['remoteRegionId']}/{job['remoteNamespace']}")]
    cells += [styled_status(job["status"]), str(job.get("attempts", "")), f"{job.get('bytes', 0):,}"]
    return [*cells, job["createdAt"], duration(job)]


def jobs_table(jobs: list[dict[str, Any]], title: str, with_repository: bool = False) -> Table:
    """One row per record; the message column takes the room that is left and wraps."""
    table = Table(title=title)
    headers = ["id", *(["repository"] if with_repository else []), "tag", "target", "status"]
    for header in [*headers, "tries", "bytes", "created", "duration"]:
        right = header in ("tries", "bytes")
        table.add_column(header, no_wrap=True, justify="right" if right else "left")
    table.add_column("message", overflow="fold", ratio=1)
    for job in jobs:
        table.add_row(*_job_cells(job, with_repository), Text(job.get("message", "")))
    return table


def jobs_blocks(jobs: list[dict[str, Any]], title: str, with_repository: bool = False) -> Group:
    """For a narrow terminal: each record's figures on one line, its whole message below."""
    parts: list[RenderableType] = [Text(title, style="bold")]
    for job in jobs:
        where = f"{job['repoName']}:" if with_repository else ""
        line = Text.assemble(
            (f"{job['id']}  ", "bold"),
            f"{where}{job['tag']} → {job['remoteRegionId']}/{job['remoteNamespace']}  ",
            (job["status"], STATUS_STYLE.get(job["status"], "")),
            f"  tries {job.get('attempts', '')}  {job.get('bytes', 0):,} bytes",
            f"  created {job['createdAt']}  took {duration(job)}",
        )
        parts += [line, Padding(Text(job.get("message", "")), (0, 0, 0, 4))]
    return Group(*parts)


def jobs_view(
    console: Console, jobs: list[dict[str, Any]], title: str, with_repository: bool = False
) -> RenderableType:
    if console.width >= TABLE_MIN_WIDTH:
        return jobs_table(jobs, title, with_repository)
    return jobs_blocks(jobs, title, with_repository)


def rules_table(found: list[dict[str, Any]], title: str, with_repository: bool = False) -> Table:
    headers = ["id", *(["repository"] if with_repository else [])]
    headers += ["target region", "target org", "auto", "override", "updated"]
    table = Table(*headers, title=title)
    for rule in found:
        table.add_row(
            str(rule["id"]),
            *([rule["repoName"]] if with_repository else []),
            rule["remoteRegionId"],
            rule["remoteNamespace"],
            str(rule["syncAuto"]),
            str(rule["override"]),
            rule["updatedAt"],
        )
    return table


class JobProgress:
    """`ferry sync now`'s bars: one per tag (waiting, a pulse while running, full when final)
    and one for all the tags."""

    def __init__(self, console: Console, tags: list[str], target: str, final: frozenset[str]) -> None:
        self.final = final
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TextColumn("{task.fields[sent]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.overall = self.progress.add_task(
            f"{len(tags)} tag(s) → {target}", total=len(tags), status="", sent=""
        )
        self.tasks = {
            tag: self.progress.add_task(f"  {tag}", total=1, status="waiting", sent="") for tag in tags
        }

    def __enter__(self) -> JobProgress:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()

    def show(self, jobs: list[dict[str, Any]]) -> None:
        done = 0
        for job in jobs:
            task = self.tasks.get(job["tag"])
            if task is None:
                continue
            final = job["status"] in self.final
            done += final
            self.progress.update(
                task,
                total=1 if final or job["status"] == "waiting" else None,
                completed=1 if final else 0,
                status=styled_status(job["status"]),
                sent=f"{job.get('bytes', 0):,} bytes",
            )
        self.progress.update(self.overall, completed=done)
