"""`ferry sync …`: rules, manual syncs and sync records, through a region's management API."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast, get_type_hints
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape

from ferry.cli.records import (
    JobProgress,
    OptionInvalid,
    jobs_filter,
    jobs_view,
    parse_since,
    parse_statuses,
    rules_table,
)

if TYPE_CHECKING:
    from ferry.sync.peer_client import PeerClient

sync_app = typer.Typer(help="Sync images between regions: rules, manual syncs, records.")
console = Console()

Endpoint = Annotated[str | None, typer.Option(envvar="FERRY_ENDPOINT", help="Region endpoint URL.")]
AccessKey = Annotated[str | None, typer.Option("--ak", envvar="FERRY_AK", help="Access key.")]
SecretKey = Annotated[str | None, typer.Option("--sk", envvar="FERRY_SK", help="Secret key.")]
Region = Annotated[str | None, typer.Option(help="Region id in dev.json (default: the first).")]
DevFile = Annotated[Path, typer.Option("--dev", help="dev.json written by `ferry dev`.")]


@dataclass(frozen=True)
class Connection:
    """Which region a `ferry sync` command talks to, from the options every one of them takes."""

    endpoint: str | None
    ak: str | None
    sk: str | None
    region: str | None
    dev: Path

    def client(self) -> PeerClient:
        return _connect(self.endpoint, self.ak, self.sk, self.region, self.dev)


CONNECTION_OPTIONS = [
    ("endpoint", Endpoint, None),
    ("ak", AccessKey, None),
    ("sk", SecretKey, None),
    ("region", Region, None),
    ("dev", DevFile, Path("ferry-data/dev.json")),
]
Command = TypeVar("Command", bound=Callable[..., Any])


def connected(command: Command) -> Command:
    """Gives a command the connection options and hands it a `connection` built from them."""
    hints = get_type_hints(command, include_extras=True)  # Typer reads the signature's own annotations
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in inspect.signature(command).parameters.values()
        if p.name != "connection"
    ]
    options = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, annotation, default in CONNECTION_OPTIONS
    ]

    @functools.wraps(command)
    def with_connection(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name, _, _ in CONNECTION_OPTIONS}
        return command(*args, connection=Connection(**values), **kwargs)

    with_connection.__signature__ = inspect.Signature(own + options)  # type: ignore[attr-defined]
    return cast(Command, with_connection)


def _connect(
    endpoint: str | None, ak: str | None, sk: str | None, region: str | None, dev: Path
) -> PeerClient:
    """A client for the region: explicit endpoint and keys, or what `ferry dev` described."""
    # Imported here: every `ferry` command loads this module, few of them talk to a region.
    from pydantic import SecretStr

    from ferry.config import Peer
    from ferry.sync.peer_client import PeerClient

    described: dict[str, Any] = json.loads(dev.read_text()) if dev.exists() else {}
    regions = described.get("regions", [])
    chosen = next((r for r in regions if r["id"] == region), regions[0] if regions else None)
    endpoint = endpoint or (chosen["endpoint"] if chosen else None)
    ak = ak or described.get("admin", {}).get("ak")
    sk = sk or described.get("admin", {}).get("sk")
    if not endpoint or not ak or not sk:
        console.print("[red]error:[/red] give --endpoint, --ak and --sk (or run `ferry dev` for a dev.json)")
        raise typer.Exit(2)
    # `ferry dev --tls` regions present certificates of its own CA (another endpoint: the system's
    # trust, which SSL_CERT_FILE can point elsewhere).
    ca_file = str(described.get("ca_file", "")) if endpoint.startswith("https://") else ""
    return PeerClient(
        Peer(
            id=region or (chosen["id"] if chosen else "local"),
            url=endpoint,
            ak=ak,
            sk=SecretStr(sk),
            ca_file=ca_file,
        )
    )


def _repo_path(name: str) -> str:
    organization, sep, repository = name.partition("/")
    if not sep:
        console.print(f"[red]error:[/red] expected ORG/REPO, got {escape(repr(name))}", soft_wrap=True)
        raise typer.Exit(2)
    repository = quote(repository.replace("/", "$"), safe="")
    return f"/v2/manage/namespaces/{quote(organization, safe='')}/repos/{repository}"


def _target(value: str) -> tuple[str, str]:
    region, sep, namespace = value.partition("/")
    if not sep or not region or not namespace:
        console.print(f"[red]error:[/red] --to wants REGION/ORG, got {escape(repr(value))}", soft_wrap=True)
        raise typer.Exit(2)
    return region, namespace


async def _call(client: PeerClient, method: str, path: str, body: Any = None) -> Any:
    """One call, then the client is closed."""
    try:
        return await _call_open(client, method, path, body)
    finally:
        await client.close()


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def _repositories_of(client: PeerClient, organization: str) -> list[str]:
    """Every repository of the organization, through SWR's repository list (pages of 1000)."""
    names: list[str] = []
    while True:
        query = f"namespace={quote(organization, safe='')}&limit=1000&offset={len(names)}"
        found = await _call_open(client, "GET", f"/v2/manage/repos?{query}") or []
        names += [item["name"] for item in found]
        if len(found) < 1000:
            return names


async def _each_repository(client: PeerClient, name: str, suffix: str) -> list[dict[str, Any]]:
    """GET `suffix` of the repository ORG/REPO, or of every repository of ORG, joined."""
    organization, sep, _ = name.partition("/")
    targets = [name] if sep else [f"{organization}/{r}" for r in await _repositories_of(client, name)]
    found: list[dict[str, Any]] = []
    for target in targets:
        found += await _call_open(client, "GET", _repo_path(target) + suffix) or []
    return found


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


@sync_app.command("rules")
@connected
def rules(
    connection: Connection,
    name: Annotated[str, typer.Argument(help="ORG/REPO, or ORG for all of its repositories")],
    as_json: Annotated[bool, typer.Option("--json", help="The rules as JSON.")] = False,
) -> None:
    """List the automatic sync rules of a repository, or of every repository of an organization."""

    async def go() -> list[dict[str, Any]]:
        client = connection.client()
        try:
            return await _each_repository(client, name, "/sync_repo")
        finally:
            await client.close()

    found = _run(go())
    if as_json:
        _print_json(found)
        return
    console.print(rules_table(found, f"sync rules of {name}", with_repository="/" not in name))


@sync_app.command("add")
@connected
def add(
    connection: Connection,
    name: Annotated[str, typer.Argument(help="ORG/REPO")],
    to: Annotated[str, typer.Option(help="REGION/ORG to sync to.")],
    auto: Annotated[bool, typer.Option("--auto/--no-auto", help="Sync every later push.")] = True,
    override: Annotated[bool, typer.Option(help="Replace a different image under the same tag.")] = False,
) -> None:
    """Create (or update) an automatic sync rule."""
    target_region, namespace = _target(to)
    body = {
        "remoteRegionId": target_region,
        "remoteNamespace": namespace,
        "syncAuto": auto,
        "override": override,
    }
    _run(_call(connection.client(), "POST", _repo_path(name) + "/sync_repo", body))
    console.print(f"rule {name} → {to} (auto={auto}, override={override})")


@sync_app.command("remove")
@connected
def remove(
    connection: Connection,
    name: Annotated[str, typer.Argument(help="ORG/REPO")],
    to: Annotated[str, typer.Option(help="REGION/ORG of the rule.")],
) -> None:
    """Delete an automatic sync rule."""
    target_region, namespace = _target(to)
    body = {"remoteRegionId": target_region, "remoteNamespace": namespace}
    _run(_call(connection.client(), "DELETE", _repo_path(name) + "/sync_repo", body))
    console.print(f"removed rule {name} → {to}")


@sync_app.command("cancel")
@connected
def cancel(
    connection: Connection,
    name: Annotated[str, typer.Argument(help="ORG/REPO")],
    job: Annotated[int | None, typer.Argument(help="The job's id (`ferry sync jobs ORG/REPO`).")] = None,
    to: Annotated[
        str | None, typer.Option(help="REGION/ORG: every unfinished job of the repository to it instead.")
    ] = None,
) -> None:
    """Cancel a waiting or running sync job, or with --to every one of the repository to a
    target. A running copy stops within seconds, and the upload sessions it held at the target
    are deleted; the records end as `cancel`."""
    if (job is None) == (to is None):
        console.print("[red]error:[/red] give a job id or --to REGION/ORG, not both")
        raise typer.Exit(2)
    if to is not None:
        region, namespace = _target(to)
        body = {"remoteRegionId": region, "remoteNamespace": namespace}
        done = _run(_call(connection.client(), "POST", _repo_path(name) + "/sync_job/cancel", body))
        console.print(f"cancelled {done['cancelled']} job(s) of {name} → {to}")
        return
    ended = _run(_call(connection.client(), "POST", _repo_path(name) + f"/sync_job/{job}/cancel"))
    console.print(f"job {job} of {name}: {ended['status']}: {escape(ended['message'])}", soft_wrap=True)


@sync_app.command("jobs")
@connected
def jobs(
    connection: Connection,
    name: Annotated[str, typer.Argument(help="ORG/REPO, or ORG for all of its repositories")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest N records.")] = 20,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="Only these statuses (repeat it, or a comma list: failed,timeout)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only records created since: 10m, 2h, 1d, or an ISO time.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The whole records as JSON.")] = False,
) -> None:
    """Show the newest sync records of a repository, or of every repository of an organization:
    status, attempts, bytes, duration and the whole message."""
    from ferry.metadata.models import JobStatus

    try:
        statuses = parse_statuses(status or [], [s.value for s in JobStatus])
        moment = parse_since(since) if since else None
    except OptionInvalid as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(2) from None

    async def go() -> list[dict[str, Any]]:
        client = connection.client()
        try:
            found = await _each_repository(client, name, "/sync_job?" + jobs_filter(limit, statuses, moment))
        finally:
            await client.close()
        return sorted(found, key=lambda j: j["id"], reverse=True)[:limit]

    found = _run(go())
    if as_json:
        _print_json(found)
        return
    console.print(jobs_view(console, found, f"sync records of {name}", with_repository="/" not in name))


@sync_app.command("now")
@connected
def now(
    connection: Connection,
    name: Annotated[str, typer.Argument(help="ORG/REPO")],
    tags: Annotated[list[str], typer.Argument(help="Tags to copy.")],
    to: Annotated[str, typer.Option(help="REGION/ORG to copy to.")],
    override: Annotated[bool, typer.Option(help="Replace a different image under the same tag.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to follow the jobs.")] = 600,
) -> None:
    """Copy existing tags now and follow the jobs until they end."""
    target_region, namespace = _target(to)
    path = _repo_path(name)
    records = path + "/sync_job?filter=limit%3A%3A200%7Coffset%3A%3A0"

    from ferry.metadata.models import FINAL_STATUSES, JobStatus

    async def go() -> int:
        client = connection.client()
        before = {j["id"] for j in (await _call_open(client, "GET", records) or [])}
        body = {
            "imageTag": tags,
            "override": override,
            "remoteNamespace": namespace,
            "remoteRegionId": target_region,
        }
        failed = await _call_open(client, "POST", path + "/sync_images", body) or []
        for tag in failed:
            console.print(f"[red]not synced:[/red] {name}:{tag} does not exist")
        wanted = set(tags) - set(failed)
        deadline = time.monotonic() + timeout
        ours: list[dict[str, Any]] = []
        with JobProgress(console, sorted(wanted), to, FINAL_STATUSES) as progress:
            while wanted and time.monotonic() < deadline:
                found = await _call_open(client, "GET", records) or []
                ours = [
                    j
                    for j in found
                    if j["id"] not in before
                    and j["tag"] in wanted
                    and j["remoteRegionId"] == target_region
                    and j["remoteNamespace"] == namespace
                ]
                progress.show(ours)
                if (
                    ours
                    and all(j["status"] in FINAL_STATUSES for j in ours)
                    and {j["tag"] for j in ours} >= wanted
                ):
                    break
                await asyncio.sleep(0.25)
        if ours:
            console.print(jobs_view(console, ours, f"synced {name} → {to}"))
        await client.close()
        bad = [j for j in ours if j["status"] not in (JobStatus.SUCCESS, JobStatus.EXISTED)]
        return 1 if failed or bad or not wanted <= {j["tag"] for j in ours} else 0

    raise typer.Exit(asyncio.run(go()))


async def _call_open(client: PeerClient, method: str, path: str, body: Any = None) -> Any:
    """Like _call, but keeps the client open for more calls."""
    from ferry.sync.peer_client import PeerError

    try:
        response = await client.manage(method, path, body)
    except PeerError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(1) from None
    document = response.json() if response.body else None
    if response.status >= 400:
        message = (
            document.get("error_msg")
            if isinstance(document, dict)
            else response.body.decode(errors="replace")
        )
        console.print(f"[red]error {response.status}:[/red] {escape(str(message))}", soft_wrap=True)
        raise typer.Exit(1)
    return document


# Commands in modules of their own, registered here (they import this module's helpers).
from ferry.cli.audit import audit_command  # noqa: E402

sync_app.command("audit")(audit_command)
from ferry.cli.replication import explain_command, status_command, wait_command  # noqa: E402

sync_app.command("status")(status_command)
sync_app.command("explain")(explain_command)
sync_app.command("wait")(wait_command)
