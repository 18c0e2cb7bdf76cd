"""`ferry sync pause|resume` (a rule's copies, through the management API, as its administrator)
and `ferry peer pause|resume|list` (every copy to a peer: the region operator's, on the
region's database like `ferry gc`)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from ferry.cli.main import DataOption, _run_db, _settings
from ferry.cli.sync import Connection, _call, _call_open, _repo_path, _run, _target, connected, console

peer_app = typer.Typer(help="Pause and resume every sync copy to a peer region (on this region's data).")
To = Annotated[str, typer.Option(help="REGION/ORG: the rule's target.")]
PeerRegion = Annotated[str, typer.Argument(help="The peer region id")]


def _rule_call(connection: Connection, name: str, to: str, action: str) -> dict[str, Any]:
    """A repository rule's pause or resume; for ORG alone, the organization rule to that target."""
    region, namespace = _target(to)
    body = {"remoteRegionId": region, "remoteNamespace": namespace}
    if "/" in name:
        return dict(_run(_call(connection.client(), "POST", f"{_repo_path(name)}/sync_repo/{action}", body)))

    async def go() -> dict[str, Any]:
        client = connection.client()
        try:
            rules_path = f"/v2/manage/namespaces/{quote(name, safe='')}/sync_rules"
            found = await _call_open(client, "GET", rules_path) or []
            rule = next(
                (r for r in found if (r["remoteRegionId"], r["remoteNamespace"]) == (region, namespace)), None
            )
            if rule is None:
                console.print(f"[red]error:[/red] organization {escape(name)} has no rule to {escape(to)}")
                raise typer.Exit(1)
            return dict(await _call_open(client, "POST", f"{rules_path}/{rule['id']}/{action}"))
        finally:
            await client.close()

    return _run(go())


@connected
def pause_command(
    connection: Connection,
    name: Annotated[str, typer.Argument(help="ORG/REPO (its rule), or ORG (its organization rule)")],
    to: To,
) -> None:
    """Hold a rule's copies: waiting ones stay queued (their tags show as paused), a running one
    finishes, new pushes still queue theirs. `ferry sync resume` lets them go."""
    answer = _rule_call(connection, name, to, "pause")
    console.print(f"paused {answer['scope']}")


@connected
def resume_command(
    connection: Connection,
    name: Annotated[str, typer.Argument(help="ORG/REPO (its rule), or ORG (its organization rule)")],
    to: To,
) -> None:
    """Let a paused rule's copies go again, at once."""
    answer = _rule_call(connection, name, to, "resume")
    console.print(f"resumed {answer['scope']}")


def _set_peer(region: str, paused: bool, data: Any) -> None:
    from ferry.sync.pauses import PauseScope, set_paused

    settings = _settings(data)
    if settings.peer(region) is None and paused:
        known = ", ".join(p.id for p in settings.peer_regions()) or "none configured"
        console.print(f"[red]error:[/red] {escape(region)} is not a peer of this region (peers: {known})")
        raise typer.Exit(2)

    async def work(session: Any) -> bool:
        return await set_paused(session, PauseScope(region), paused, "operator")

    changed = _run_db(settings, work)
    word = "paused" if paused else "resumed"
    console.print(
        f"{word} every copy to {region}" if changed else f"every copy to {region} was already {word}"
    )


@peer_app.command("pause")
def peer_pause(
    region: Annotated[str, typer.Argument(help="The peer region id")], data: DataOption = None
) -> None:
    """Hold every copy to a peer region (all accounts' rules, manual syncs and repairs)."""
    _set_peer(region, True, data)


@peer_app.command("resume")
def peer_resume(
    region: Annotated[str, typer.Argument(help="The peer region id")], data: DataOption = None
) -> None:
    """Let every copy to a paused peer go again (the workers see it within a poll, 1 s)."""
    _set_peer(region, False, data)


@peer_app.command("list")
def peer_list(data: DataOption = None) -> None:
    """The peer regions, and every pause in force (peers and rules)."""
    from ferry.sync.pauses import list_pauses

    settings = _settings(data)

    async def work(session: Any) -> list[tuple[str, ...]]:
        return [
            (
                p.remote_region_id + (f"/{p.remote_namespace}" if p.remote_namespace else ""),
                (f"{p.namespace}/{p.repo_name}" if p.repo_name else p.namespace) or "(every source)",
                p.paused_by,
                p.paused_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            for p in await list_pauses(session)
        ]

    rows = _run_db(settings, work)
    console.print("peers: " + (", ".join(p.id for p in settings.peer_regions()) or "none configured"))
    table = Table("paused target", "source", "by", "since", title="pauses")
    for row in rows:
        table.add_row(*row)
    console.print(table)
