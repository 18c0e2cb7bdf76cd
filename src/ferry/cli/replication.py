"""`ferry sync status | explain | wait`: per-tag replication state, why, and waiting until visible,
through the region's management API (…/sync_state, …/sync_explain, …/sync_wait)."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Annotated, Any
from urllib.parse import urlencode

import typer
from rich.markup import escape
from rich.table import Table

from ferry.cli.sync import Connection, _call_open, _print_json, _repo_path, _target, connected, console

STATE_STYLE = {
    "in-sync": "green",
    "pending": "yellow",
    "behind": "yellow",
    "conflict": "red",
    "failed": "red",
    "not-synced": "dim",
    "excluded": "dim",
}
To = Annotated[str | None, typer.Option("--to", help="REGION/ORG: only this target.")]
AsJson = Annotated[bool, typer.Option("--json", help="The API's answer as JSON.")]


def _split(reference: str, tag_required: bool) -> tuple[str, str | None]:
    """ORG/REPO[:TAG] → (ORG/REPO, TAG)."""
    name, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        name, tag = reference, ""
    if tag_required and not tag:
        console.print(
            f"[red]error:[/red] expected ORG/REPO:TAG, got {escape(repr(reference))}", soft_wrap=True
        )
        raise typer.Exit(2)
    return name, tag or None


def _query(**values: str | None) -> str:
    kept = {k: v for k, v in values.items() if v is not None}
    return "?" + urlencode(kept) if kept else ""


def _checked_target(to: str | None) -> str | None:
    if to is None:
        return None
    region, namespace = _target(to)
    return f"{region}/{namespace}"


def _short(digest: str | None) -> str:
    return digest.removeprefix("sha256:")[:12] if digest else "-"


def detail(state: dict[str, Any]) -> str:
    """What a state rests on, in a few words."""
    kind = state["state"]
    if kind == "pending":
        phase = state.get("phase") or "queued"
        if phase == "running":
            running = f"running: attempt {state['attempt']}, {state['bytes']} bytes sent"
            if state.get("reason"):  # why the attempt before failed
                running += f"; before: {state['reason']}: {state.get('message')}"
            return running
        if phase == "retrying":
            return f"retrying at {state.get('nextAttemptAt')}: {state.get('reason')}: {state.get('message')}"
        queued = f"queued: {state.get('position') or 0} ahead"
        if state.get("reason"):  # its retry time came: it waits for a slot, after a failure
            queued += f"; before: {state['reason']}: {state.get('message')}"
        return queued
    if kind == "in-sync":
        return f"visible since {state.get('visibleAt')}"
    if kind in ("failed", "conflict", "behind"):
        return f"{state.get('reason') or kind}: {state.get('message')}"
    return state.get("message") or ""


def states_table(states: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for column in ("tag", "target", "state", "digest", "detail"):
        table.add_column(column, overflow="fold")
    for s in states:
        style = STATE_STYLE.get(s["state"], "")
        table.add_row(
            s["tag"], s["target"], f"[{style}]{s['state']}[/{style}]", _short(s["digest"]), escape(detail(s))
        )
    return table


def _get(connection: Connection, path: str) -> Any:
    async def go() -> Any:
        client = connection.client()
        try:
            return await _call_open(client, "GET", path)
        finally:
            await client.close()

    return asyncio.run(go())


@connected
def status_command(
    connection: Connection,
    reference: Annotated[str, typer.Argument(help="ORG/REPO or ORG/REPO:TAG")],
    to: To = None,
    as_json: AsJson = False,
) -> None:
    """Show the replication state of each tag in each sync target."""
    name, tag = _split(reference, tag_required=False)
    path = _repo_path(name) + "/sync_state" + _query(tag=tag, target=_checked_target(to))
    found = _get(connection, path)
    if as_json:
        _print_json(found)
        return
    console.print(states_table(found["tags"], f"replication state of {reference}"))


@connected
def explain_command(
    connection: Connection,
    reference: Annotated[str, typer.Argument(help="ORG/REPO:TAG")],
    to: Annotated[str, typer.Option("--to", help="REGION/ORG of the target.")],
    as_json: AsJson = False,
) -> None:
    """Explain why a tag is or is not in a target, and what happens next."""
    name, tag = _split(reference, tag_required=True)
    path = _repo_path(name) + "/sync_explain" + _query(tag=tag, target=_checked_target(to))
    found = _get(connection, path)
    if as_json:
        _print_json(found)
        return
    state = found["state"]
    console.print(f"[bold]{escape(found['next'])}[/bold]", soft_wrap=True)
    style = STATE_STYLE.get(state["state"], "")
    console.print(f"state: [{style}]{state['state']}[/{style}] ({escape(detail(state))})", soft_wrap=True)
    console.print(f"source digest: {state['digest']}", soft_wrap=True)
    live = found["currentTargetDigest"] or f"unknown ({found['currentTargetError'] or 'no tag there'})"
    if found["currentTargetDigest"] is None and found["currentTargetError"] is None:
        live = "none (the tag is not there)"
    console.print(f"target holds now: {escape(live)}", soft_wrap=True)
    for rule in found["rules"]:
        console.print(
            f"rule: → {rule['remoteRegionId']}/{rule['remoteNamespace']} "
            f"auto={rule['syncAuto']} override={rule['override']}"
        )
    if not found["rules"]:
        console.print("rule: none for this target")
    for job in found["jobs"]:
        console.print(
            f"job {job['id']} ({job['trigger']}): {job['status']}, {job['attempts']} attempt(s), "
            f"reason {job['reason'] or '-'}: {escape(job['message'])}",
            soft_wrap=True,
        )
        for step in job["steps"]:
            console.print(f"    {escape(step)}", soft_wrap=True)


@connected
def wait_command(
    connection: Connection,
    reference: Annotated[str, typer.Argument(help="ORG/REPO:TAG")],
    to: To = None,
    timeout: Annotated[float, typer.Option(min=0, help="Seconds to wait in all.")] = 300,
    as_json: AsJson = False,
) -> None:
    """Wait until a tag is in sync in every target (or the one named); exit 1 with the reason if not."""
    name, tag = _split(reference, tag_required=True)
    target = _checked_target(to)
    deadline = time.monotonic() + timeout

    async def go() -> dict[str, Any]:
        client = connection.client()
        try:
            while True:
                left = max(0, math.ceil(deadline - time.monotonic()))
                query = _query(tag=tag, target=target, timeout=str(min(60, left)))
                found: dict[str, Any] = await _call_open(
                    client, "GET", _repo_path(name) + "/sync_wait" + query
                )
                pending = any(s["state"] == "pending" for s in found["states"])
                if found["done"] or not pending or time.monotonic() >= deadline:
                    return found
        finally:
            await client.close()

    found = asyncio.run(go())
    if as_json:
        _print_json(found)
        raise typer.Exit(0 if found["done"] else 1)
    if found["done"]:
        console.print(f"{reference} is in sync in {', '.join(s['target'] for s in found['states'])}")
        raise typer.Exit(0)
    for s in found["states"]:
        if s["state"] != "in-sync":
            console.print(
                f"[red]not in sync:[/red] {escape(s['target'])}: {s['state']}: {escape(detail(s))}",
                soft_wrap=True,
            )
    console.print(f"see `ferry sync explain {reference} --to TARGET`")
    raise typer.Exit(1)
