"""`ferry sync overrides | rollback`: what sync copies replaced under a tag in a region, and
putting it back (the region's …/tags/{tag}/overrides and …/rollback)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.table import Table

from ferry.cli.replication import _split
from ferry.cli.sync import Connection, _call, _print_json, _repo_path, _run, connected, console

In = Annotated[
    str | None,
    typer.Option("--in", help="The region whose tag it is (a region id of dev.json; default: --region)."),
]


def _in_region(connection: Connection, region: str | None) -> Connection:
    return dataclasses.replace(connection, region=region) if region else connection


def overrides_table(found: list[dict[str, Any]], title: str) -> Table:
    table = Table("id", "when", "kind", "replaced", "by", "by whom", title=title)
    for record in found:
        table.add_row(
            str(record["id"]),
            record["replacedAt"],
            record["kind"],
            record["previousDigest"],
            record["digest"],
            record["operatorName"],
        )
    return table


@connected
def overrides_command(
    connection: Connection,
    reference: Annotated[str, typer.Argument(help="ORG/REPO:TAG")],
    in_region: In = None,
    as_json: Annotated[bool, typer.Option("--json", help="The records as JSON.")] = False,
) -> None:
    """Show each image a sync copy replaced under the tag in a region, and each rollback."""
    name, tag = _split(reference, tag_required=True)
    path = f"{_repo_path(name)}/tags/{tag}/overrides"
    found = _run(_call(_in_region(connection, in_region).client(), "GET", path))
    if as_json:
        _print_json(found)
        return
    console.print(overrides_table(found, f"overrides of {reference}"))


@connected
def rollback_command(
    connection: Connection,
    reference: Annotated[str, typer.Argument(help="ORG/REPO:TAG")],
    in_region: In = None,
    digest: Annotated[
        str | None,
        typer.Option(help="A digest of the tag's history (default: what the last override replaced)."),
    ] = None,
) -> None:
    """Point the tag back at the image the last sync override replaced in that region. A second
    rollback undoes the first; the move is a push as any other (rules and webhooks see it)."""
    name, tag = _split(reference, tag_required=True)
    body = {"digest": digest} if digest else None
    path = f"{_repo_path(name)}/tags/{tag}/rollback"
    record = _run(_call(_in_region(connection, in_region).client(), "POST", path, body))
    console.print(f"{reference}: {record['previousDigest']} → {record['digest']} (rolled back)")


@connected
def undelete_command(
    connection: Connection,
    reference: Annotated[str, typer.Argument(help="ORG/REPO:TAG")],
) -> None:
    """Undo a tag's deletion before deletion sync reaches the targets: the waiting deletions are
    cancelled and the tag points here again at its image, if that is still stored."""
    name, tag = _split(reference, tag_required=True)
    done = _run(_call(connection.client(), "POST", f"{_repo_path(name)}/tags/{tag}/undelete"))
    restored = (
        f"{reference} → {done['restoredDigest']} again"
        if done["restoredDigest"]
        else "the tag stays deleted here"
    )
    console.print(f"cancelled {done['cancelled']} deletion(s) at the targets; {restored}")
