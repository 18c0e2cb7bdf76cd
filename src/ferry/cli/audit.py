"""`ferry sync audit ORG[/REPO]`: drift between sources and sync targets, through POST …/sync_audit.

Exit code 0 only when every audited repository is free of drift and every target could be
audited; 1 otherwise (2: a usage error).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ferry.cli.sync import (
    Connection,
    _call_open,
    _print_json,
    _repo_path,
    _repositories_of,
    _run,
    connected,
    console,
)

if TYPE_CHECKING:
    from ferry.sync.peer_client import PeerClient


async def _audit_all(client: PeerClient, name: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    organization, sep, _ = name.partition("/")
    names = [name] if sep else [f"{organization}/{r}" for r in await _repositories_of(client, name)]
    audits = []
    for repository in names:
        answer = await _call_open(client, "POST", _repo_path(repository) + "/sync_audit", body)
        if "error_msg" in answer:  # a long audit that failed after its answer had begun
            console.print(f"[red]error:[/red] {escape(repository)}: {escape(str(answer['error_msg']))}")
            raise typer.Exit(1)
        audits.append(answer)
    return audits


def drift_table(audits: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for column in ("repository", "tag", "target", "kind", "digest", "detail"):
        table.add_column(column, overflow="fold")
    for audit in audits:
        for item in audit["drift"]:
            style = "yellow" if item["kind"] == "conflict" else "red"
            table.add_row(
                escape(audit["repository"]),
                escape(item["tag"]),
                escape(item["target"]),
                f"[{style}]{item['kind']}[/{style}]",
                escape(item["digest"][:19]),
                escape(item["detail"]),
            )
    return table


def summary(audits: list[dict[str, Any]], repair: bool) -> str:
    tags = sum(a["tagsChecked"] for a in audits)
    requests = sum(a["requests"] for a in audits)
    drift = sum(len(a["drift"]) for a in audits)
    pending = sum(a["pending"] for a in audits)
    line = f"{len(audits)} repositories, {tags} tags checked, {requests} requests, {drift} drift"
    if pending:
        line += f", {pending} tags skipped (a sync job is on them)"
    if not_synced := sum(a.get("notSynced", 0) for a in audits):
        line += f", {not_synced} tags never synced (not drift)"
    if repair:
        line += f", {sum(a['repaired'] for a in audits)} repaired by queued jobs"
    return line


def audit(
    connection: Connection,
    name: Annotated[str, typer.Argument(help="ORG/REPO, or ORG for each of its repositories")],
    to: Annotated[str | None, typer.Option("--to", help="Only the rules to this REGION.")] = None,
    repair: Annotated[bool, typer.Option("--repair", help="Queue the jobs that repair the drift.")] = False,
    verify_sample: Annotated[
        float,
        typer.Option("--verify-sample", min=0.0, max=1.0, help="Fraction of blobs to read back and re-hash."),
    ] = 0.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="The audits as JSON (a list, one per repository).")
    ] = False,
) -> None:
    """Compare repositories with the targets of their sync rules: tags and digests, every child
    manifest, blob and referrer. Exit code 0 only when there is no drift."""
    body: dict[str, Any] = {"repair": repair, "verifySample": verify_sample}
    if to:
        body["remoteRegionId"] = to

    async def go() -> list[dict[str, Any]]:
        client = connection.client()
        try:
            return await _audit_all(client, name, body)
        finally:
            await client.close()

    audits = _run(go())
    if as_json:
        _print_json(audits)
    else:
        if any(a["drift"] for a in audits):
            console.print(drift_table(audits, f"drift of {name}"))
        for audit_ in audits:
            for error in audit_["errors"]:
                console.print(f"[red]not audited:[/red] {escape(audit_['repository'])}: {escape(error)}")
        console.print(summary(audits, repair))
    clean = all(not a["drift"] and not a["errors"] for a in audits)
    raise typer.Exit(0 if clean else 1)


# `ferry sync audit`, registered on sync_app by cli/sync.py.
audit_command: Callable[..., None] = connected(audit)
