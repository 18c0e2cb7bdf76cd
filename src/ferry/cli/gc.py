"""`ferry gc [--dry-run]`: garbage collection of one region, reporting what it frees."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ferry.config import Settings

console = Console()
LABELS = {"manifest": "manifests", "blob": "blobs", "upload": "uploads", "orphan": "orphan files"}


def register(app: typer.Typer) -> None:
    app.command("gc")(gc)


def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")
    ] = False,
    data: Annotated[Path | None, typer.Option("--data", help="Data directory (env FERRY_DATA_DIR).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every item and the totals as JSON.")] = False,
) -> None:
    """Delete manifests nothing keeps, blobs no manifest references, expired uploads and orphan
    files (settings: FERRY_GC_GRACE_SECONDS, FERRY_GC_KEEP_UNTAGGED, FERRY_UPLOAD_EXPIRY_SECONDS)."""
    from ferry.cli.main import NO_DATA
    from ferry.images.gc import GcBusy

    settings = Settings(data_dir=data) if data is not None else Settings()
    if not {"data_dir", "database_url"} & settings.model_fields_set:
        console.print(NO_DATA, style="red", soft_wrap=True, markup=False)
        raise typer.Exit(2)
    try:
        asyncio.run(_run(settings, dry_run, as_json))
    except GcBusy as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(1) from None


async def _run(settings: Settings, dry_run: bool, as_json: bool) -> None:
    from ferry.images.gc import GarbageCollector
    from ferry.images.gcschedule import gc_policy
    from ferry.metadata.db import Database
    from ferry.metadata.migrate import upgrade
    from ferry.storage import open_store

    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url())
    try:
        await upgrade(db)
        collector = GarbageCollector(db, open_store(settings), gc_policy(settings))
        items: list[dict[str, Any]] = []
        with _progress(as_json) as progress:
            tasks: dict[str, Any] = {}

            def on_progress(phase: str, done: int) -> None:
                if phase not in tasks:
                    tasks[phase] = progress.add_task(phase, total=None)
                progress.update(tasks[phase], completed=done, description=f"{phase}: {done} examined")

            def on_item(kind: str, name: str, size: int) -> None:
                if as_json:
                    items.append({"kind": kind, "name": name, "size": size})
                else:
                    console.print(f"{kind:8} {escape(name)}  {size} bytes", soft_wrap=True)

            report = await collector.run(dry_run, on_item, on_progress)
    finally:
        await db.close()
    if as_json:
        totals = {k: {"count": report.counts[k], "bytes": report.bytes[k]} for k in report.counts}
        body = {"dry_run": dry_run, "items": items, "totals": totals, "seconds": round(report.seconds, 3)}
        print(json.dumps(body))
        return
    _print_totals(report)


def _progress(quiet: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=quiet,
    )


def _print_totals(report: Any) -> None:
    title = "gc dry run: would delete" if report.dry_run else "gc freed"
    table = Table(title=title)
    table.add_column("kind")
    table.add_column("count", justify="right")
    table.add_column("bytes", justify="right")
    for kind, label in LABELS.items():
        table.add_row(label, str(report.counts[kind]), str(report.bytes[kind]))
    table.add_row("total", str(report.total_count), str(report.total_bytes), style="bold")
    console.print(table)
    console.print(f"{report.seconds:.1f} s")
