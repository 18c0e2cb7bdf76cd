"""`ferry webhook …`: an organization's webhooks and their delivery log, through a region's
management API (connecting as `ferry sync` does: dev.json, or --endpoint --ak --sk, or FERRY_*)."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from ferry.cli.sync import Connection, _call, _run, connected, console

webhook_app = typer.Typer(help="Webhooks: signed events (pushes, syncs, failures) sent to your URLs.")
AsJson = Annotated[bool, typer.Option("--json", help="The answer as JSON.")]


def _hooks(organization: str) -> str:
    return f"/v2/manage/namespaces/{quote(organization, safe='')}/webhooks"


@webhook_app.command("add")
@connected
def add(
    connection: Connection,
    organization: Annotated[str, typer.Argument(help="ORG")],
    url: Annotated[str, typer.Argument(help="http(s) URL that receives the events")],
    event: Annotated[
        list[str] | None, typer.Option("--event", help="An event type to send (repeat it; default: all).")
    ] = None,
    secret: Annotated[
        str | None, typer.Option(help="The signing secret (16+ characters; default: one is made).")
    ] = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
) -> None:
    """Add a webhook; prints its secret, which is never shown again."""
    body: dict[str, Any] = {"url": url, "events": event or [], "description": description}
    if secret is not None:
        body["secret"] = secret
    created = _run(_call(connection.client(), "POST", _hooks(organization), body))
    console.print(f"webhook {created['id']} → {escape(created['url'])}", soft_wrap=True)
    console.print(f"secret (shown once): {created['secret']}", soft_wrap=True, markup=False)


@webhook_app.command("list")
@connected
def list_(
    connection: Connection, organization: Annotated[str, typer.Argument(help="ORG")], as_json: AsJson = False
) -> None:
    """List the organization's webhooks."""
    found = _run(_call(connection.client(), "GET", _hooks(organization))) or []
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    table = Table(title=f"webhooks of {organization}")
    for column in ("id", "url", "events", "enabled", "description"):
        table.add_column(column, overflow="fold")
    for hook in found:
        events = ", ".join(hook["events"]) or "all"
        table.add_row(str(hook["id"]), hook["url"], events, str(hook["enabled"]), hook["description"])
    console.print(table)


@webhook_app.command("remove")
@connected
def remove(
    connection: Connection,
    organization: Annotated[str, typer.Argument(help="ORG")],
    webhook_id: Annotated[int, typer.Argument(help="The webhook's id")],
) -> None:
    """Delete a webhook and its delivery log."""
    _run(_call(connection.client(), "DELETE", f"{_hooks(organization)}/{webhook_id}"))
    console.print(f"removed webhook {webhook_id}")


@webhook_app.command("deliveries")
@connected
def deliveries(
    connection: Connection,
    organization: Annotated[str, typer.Argument(help="ORG")],
    webhook_id: Annotated[int, typer.Argument(help="The webhook's id")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest N deliveries.")] = 20,
    as_json: AsJson = False,
) -> None:
    """The delivery log: each delivery's status and every attempt's answer."""
    path = f"{_hooks(organization)}/{webhook_id}/deliveries?limit={limit}"
    found = _run(_call(connection.client(), "GET", path)) or []
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    table = Table(title=f"deliveries of webhook {webhook_id}")
    for column in ("id", "event", "status", "attempts", "last error", "created"):
        table.add_column(column, overflow="fold")
    for d in found:
        codes = " ".join(str(a["response_code"] or "-") for a in d["attempt_log"]) or "-"
        replay = f" (replay of {d['replay_of']})" if d["replay_of"] else ""
        table.add_row(
            str(d["id"]),
            d["event_type"] + replay,
            d["status"],
            codes,
            d["last_error"],
            d["created_at"],
        )
    console.print(table)


@webhook_app.command("replay")
@connected
def replay(
    connection: Connection,
    organization: Annotated[str, typer.Argument(help="ORG")],
    delivery_id: Annotated[int, typer.Argument(help="The delivery to send again")],
) -> None:
    """Send a delivery's event again (a new delivery with the same body)."""
    path = f"{_hooks(organization)}/deliveries/{delivery_id}/replay"
    answer = _run(_call(connection.client(), "POST", path))
    console.print(f"delivery {answer['id']} replays {delivery_id}")
