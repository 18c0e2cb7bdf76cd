"""`ferry sync org …`: organization rules (every repository of an organization, with filters)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from ferry.cli.sync import Connection, _call, _print_json, _run, _target, connected, console

org_rules_app = typer.Typer(
    help="Organization sync rules: every repository of an organization, also those created later, "
    "filtered by repository and tag patterns (globs with ** and {a,b}, or re:REGEX)."
)

Patterns = Annotated[
    list[str] | None, typer.Option(show_default=False, help="A glob or re:REGEX; repeat for more.")
]


def _rules_path(organization: str) -> str:
    return f"/v2/manage/namespaces/{quote(organization, safe='')}/sync_rules"


def _patterns(part: dict[str, list[str]]) -> str:
    include = ", ".join(part["include"]) or "all"
    exclude = ", ".join(part["exclude"])
    return escape(f"{include}" + (f" except {exclude}" if exclude else ""))


def org_rules_table(found: list[dict[str, Any]], title: str) -> Table:
    table = Table("id", "target", "override", "repositories", "tags", "platforms", "updated", title=title)
    for rule in found:
        table.add_row(
            str(rule["id"]),
            f"{rule['remoteRegionId']}/{rule['remoteNamespace']}",
            str(rule["override"]),
            _patterns(rule["filters"]["repositories"]),
            _patterns(rule["filters"]["tags"]),
            ", ".join(rule.get("platforms") or []) or "all",
            rule["updatedAt"],
        )
    return table


@org_rules_app.command("add")
@connected
def add(
    connection: Connection,
    organization: Annotated[str, typer.Argument(help="ORG whose repositories to sync")],
    to: Annotated[str, typer.Option(help="REGION/ORG to sync to.")],
    repo: Patterns = None,
    exclude_repo: Patterns = None,
    tag: Patterns = None,
    exclude_tag: Patterns = None,
    override: Annotated[bool, typer.Option(help="Replace a different image under the same tag.")] = False,
    existing: Annotated[
        bool, typer.Option("--existing", help="Also copy the tags already there that the filters pass.")
    ] = False,
    sync_deletes: Annotated[
        bool,
        typer.Option(
            "--sync-deletes", help="Delete at the target the tags deleted here (only tags a sync wrote)."
        ),
    ] = False,
    delete_grace: Annotated[
        int, typer.Option(help="Seconds a deletion waits, undoable (`ferry sync undelete`).")
    ] = 3600,
    platform: Annotated[
        list[str] | None,
        typer.Option(show_default=False, help="Only this platform of an index (os/arch[/variant]); repeat."),
    ] = None,
    bandwidth: Annotated[
        str | None, typer.Option(help="Bytes per second the rule's copies share, like 20MiB.")
    ] = None,
    retention_deletes: Annotated[
        bool, typer.Option("--retention-deletes", help="Also retention's deletions (with --sync-deletes).")
    ] = False,
) -> None:
    """Create (or replace) an organization rule: every later push to a repository of ORG that
    the filters pass is copied to REGION/ORG. --repo and --tag include (repeat them), --exclude-…
    leave out; a pattern is a glob (`team/**`, `v{1,2}.*`) or `re:` and a regular expression."""
    region, namespace = _target(to)
    body = {
        "remoteRegionId": region,
        "remoteNamespace": namespace,
        "override": override,
        "syncExisting": existing,
        "syncDeletes": sync_deletes,
        "deleteGraceSeconds": delete_grace,
        "syncRetentionDeletes": retention_deletes,
        "platforms": platform or [],
        "bandwidth": bandwidth,
        "filters": {
            "repositories": {"include": repo or [], "exclude": exclude_repo or []},
            "tags": {"include": tag or [], "exclude": exclude_tag or []},
        },
    }
    rule = _run(_call(connection.client(), "POST", _rules_path(organization), body))
    console.print(org_rules_table([rule], f"organization rule {rule['id']} of {organization}"))
    if existing:
        console.print(f"queued {rule['queuedJobs']} copies of existing tags")
    if sync_deletes:
        also = " and retention's" if retention_deletes else ""
        console.print(f"deletions here{also} reach {to} after {delete_grace} s (only tags a sync wrote)")


@org_rules_app.command("list")
@connected
def list_rules(
    connection: Connection,
    organization: Annotated[str, typer.Argument(help="ORG")],
    as_json: Annotated[bool, typer.Option("--json", help="The rules as JSON.")] = False,
) -> None:
    """List an organization's rules and their filters."""
    found = _run(_call(connection.client(), "GET", _rules_path(organization)))
    if as_json:
        _print_json(found)
        return
    console.print(org_rules_table(found, f"organization rules of {organization}"))


@org_rules_app.command("remove")
@connected
def remove(
    connection: Connection,
    organization: Annotated[str, typer.Argument(help="ORG")],
    rule_id: Annotated[int, typer.Argument(help="The rule's id (`ferry sync org list ORG`).")],
) -> None:
    """Delete an organization rule; its waiting automatic jobs end as cancelled."""
    _run(_call(connection.client(), "DELETE", f"{_rules_path(organization)}/{rule_id}"))
    console.print(f"removed organization rule {rule_id} of {organization}")
