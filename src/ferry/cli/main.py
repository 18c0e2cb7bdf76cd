"""The `ferry` command: serve a region and administer it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import select

from ferry.config import Settings
from ferry.observability.logs import configure_logging

app = typer.Typer(help="Ferry: a container registry with SWR's API and sync between regions.")
user_app = typer.Typer(help="Manage users.")
org_app = typer.Typer(help="Manage organizations.")
repo_app = typer.Typer(help="Manage repositories.")
app.add_typer(user_app, name="user")
app.add_typer(org_app, name="org")
app.add_typer(repo_app, name="repo")
console = Console()
T = TypeVar("T")

DataOption = Annotated[Path | None, typer.Option("--data", help="Data directory (env FERRY_DATA_DIR).")]


def _settings(data: Path | None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data is not None:
        values["data_dir"] = data
    return Settings(**values)


NO_DATA = (
    "error: which region? give --data DIR or set FERRY_DATA_DIR "
    "(or FERRY_DATABASE_URL); nothing was created in ./ferry-data"
)


def _run_db(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Runs `work(session)` in one write transaction on a migrated database.

    Administration needs to be told which region's data it changes: without --data,
    FERRY_DATA_DIR or FERRY_DATABASE_URL it refuses rather than make an empty database in
    ./ferry-data (only `serve` and `dev` have that default)."""
    from ferry.identity.errors import OrganizationError
    from ferry.identity.service import IdentityError
    from ferry.images.errors import ImageError
    from ferry.metadata.db import Database
    from ferry.metadata.migrate import upgrade

    if not {"data_dir", "database_url"} & settings.model_fields_set:
        console.print(NO_DATA, style="red", soft_wrap=True, markup=False)
        raise typer.Exit(2)

    async def go() -> T:
        if not settings.database_url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.resolved_database_url())
        try:
            await upgrade(db)
            async with db.write() as session:
                return await work(session)
        finally:
            await db.close()

    try:
        return asyncio.run(go())
    except (IdentityError, OrganizationError, ImageError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    data: DataOption = None,
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
    region: Annotated[str | None, typer.Option(help="This region's id.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="HTTP server processes sharing the port (SO_REUSEPORT); default one per CPU core "
            "(FERRY_HTTP_WORKERS).",
        ),
    ] = None,
    sync_slots: Annotated[
        int | None,
        typer.Option(
            "--sync-slots", help="Sync job slots in each server process; 0 = API only (FERRY_SYNC_WORKERS)."
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="PEM certificate (chain): serve HTTPS (FERRY_TLS_CERT_FILE)."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="Its PEM key (FERRY_TLS_KEY_FILE).")
    ] = None,
) -> None:
    """Run one region: the registry and management APIs, and its sync workers."""
    from ferry.cli.serving import run_server

    files = {"tls_cert_file": tls_cert and str(tls_cert), "tls_key_file": tls_key and str(tls_key)}
    settings = _serve_settings(data, host=host, port=port, region=region, sync_workers=sync_slots, **files)
    if taken := _port_in_use(settings.host, settings.port):
        console.print(
            f"[red]error:[/red] port {settings.port} on {settings.host} is in use ({taken}); "
            "choose another with --port or FERRY_PORT"
        )
        raise typer.Exit(1)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    generated = _ensure_admin_password(settings)
    configure_logging(settings)
    endpoint = f"{'https' if settings.tls else 'http'}://{settings.host}:{settings.port}"
    processes = workers or settings.http_workers or os.cpu_count() or 1
    admin = f"{settings.admin_user} ({_where_the_password_is(settings, generated)})"
    if settings.log_format == "json":  # nothing but JSON lines in the output
        logging.getLogger("ferry").info(
            "Ferry region %s at %s; data %s; admin %s", settings.region, endpoint, settings.data_dir, admin
        )
    else:
        console.print(f"[bold]Ferry[/bold] region [cyan]{settings.region}[/cyan] at {endpoint}")
        console.print(f"  data:  {settings.data_dir.resolve()}")
        console.print(f"  admin: {admin}")
        insecure = "" if settings.tls else "--tls-verify=false "
        console.print(f"  login: skopeo login {insecure}{settings.host}:{settings.port}")
        console.print(f"  processes: {processes} (--workers)")
    from ferry.storage import StorageUnavailable

    try:
        status = run_server(settings, processes)
    except StorageUnavailable as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    if status:
        raise typer.Exit(status)


def _port_in_use(host: str, port: int) -> str:
    """Why the listen address cannot be bound ("" when it can): one line instead of a traceback.
    A plain bind (no SO_REUSEPORT), so another Ferry on the port counts as taken too."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return ""


def _serve_settings(data: Path | None, **overrides: Any) -> Settings:
    """Settings for `serve`; a TLS pair that is half given or unreadable stops it in one line,
    before any process starts."""
    from pydantic import ValidationError

    from ferry.cli.tls import TLSFileError, server_ssl_context

    try:
        settings = _settings(data, **overrides)
        server_ssl_context(settings)
    except ValidationError as error:
        message = str(error.errors()[0]["msg"]).removeprefix("Value error, ")
        console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
        raise typer.Exit(2) from None
    except TLSFileError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(2) from None
    return settings


def _ensure_admin_password(settings: Settings) -> bool:
    """Keeps a generated bootstrap password in data_dir (mode 0600); True when made just now."""
    path = settings.data_dir / "admin.json"
    if settings.admin_password:
        return False
    if path.exists():
        settings.admin_password = json.loads(path.read_text())["password"]
        return False
    settings.admin_password = secrets.token_urlsafe(12)
    path.touch(mode=0o600)
    path.write_text(json.dumps({"user": settings.admin_user, "password": settings.admin_password}))
    return True


def _where_the_password_is(settings: Settings, generated: bool) -> str:
    """Shown once, on a terminal, when just generated; else only where to find it (stdout is
    often a log file)."""
    if generated and console.is_terminal:
        return f"password {settings.admin_password}, kept in {settings.data_dir / 'admin.json'}"
    if (settings.data_dir / "admin.json").exists():
        return f"password in {settings.data_dir.resolve() / 'admin.json'}"
    return "password from FERRY_ADMIN_PASSWORD"


@app.command()
def worker(
    data: DataOption = None,
    slots: Annotated[int | None, typer.Option(help="Jobs run at once (env FERRY_SYNC_WORKERS).")] = None,
    port: Annotated[
        int | None, typer.Option(help="Serve /healthz, /readyz and /metrics on this port (default: none).")
    ] = None,
) -> None:
    """Run only sync workers for a region (scale-out: beside `ferry serve --sync-slots 0`)."""
    from ferry.region import run_worker

    settings = _settings(data, sync_workers=slots)
    configure_logging(settings)
    from ferry.storage import StorageUnavailable

    try:
        if port is not None:
            from ferry.cli.serving import serve_worker

            serve_worker(settings, port)
            return
        asyncio.run(run_worker(settings))
    except StorageUnavailable as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None


@app.command()
def migrate(data: DataOption = None) -> None:
    """Bring the database schema to the newest revision."""
    settings = _settings(data)

    async def nothing(_session: Any) -> None:
        return None

    _run_db(settings, nothing)
    console.print("schema up to date")


@user_app.command("create")
def user_create(
    name: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    account: Annotated[str, typer.Option(help="Account (domain) the user belongs to.")] = "ferry",
    admin: Annotated[bool, typer.Option(help="Make the user an account administrator.")] = False,
    data: DataOption = None,
) -> None:
    """Create a user."""
    from ferry.identity.service import create_user

    async def work(session: Any) -> None:
        await create_user(session, account, name, password, admin)

    _run_db(_settings(data), work)
    console.print(f"created user [cyan]{name}[/cyan] in account {account}")


@org_app.command("create")
def org_create(
    name: str,
    owner: Annotated[str, typer.Option(help="User creating it (gets manage rights).")] = "admin",
    data: DataOption = None,
) -> None:
    """Create an organization."""
    from ferry.identity.service import IdentityError, Principal, create_organization
    from ferry.metadata.models import User

    async def work(session: Any) -> None:
        user = await session.scalar(select(User).where(User.name == owner))
        if user is None:
            raise IdentityError(f"no user {owner!r}")
        principal = Principal(user.id, user.name, user.account_id, user.is_admin)
        await create_organization(session, principal, name)

    _run_db(_settings(data), work)
    console.print(f"created organization [cyan]{name}[/cyan]")


key_app = typer.Typer(help="Manage access keys (AK/SK) for the management API and docker login.")
app.add_typer(key_app, name="key")


@key_app.command("create")
def key_create(user: str, data: DataOption = None) -> None:
    """Create an access key for USER and print it (the SK is shown only here)."""
    from ferry.identity.access_keys import create_access_key
    from ferry.identity.organizations import account_of
    from ferry.metadata.models import User

    settings = _settings(data)

    async def work(session: Any) -> dict[str, str]:
        ak, sk = await create_access_key(session, user)
        owner = await session.scalar(select(User).where(User.name == user))
        account = await account_of(session, owner.account_id)
        return {"ak": ak, "sk": sk, "project_id": account.project_id, "domain_id": account.domain_id}

    created = _run_db(settings, work)
    console.print_json(json.dumps(created | {"region": settings.region}))


def _key_change(access_key: str, data: Path | None, change: str) -> None:
    from ferry.identity import access_keys

    async def work(session: Any) -> None:
        if change == "delete":
            await access_keys.delete_access_key(session, access_key)
        else:
            await access_keys.set_access_key_enabled(session, access_key, change == "enable")

    _run_db(_settings(data), work)
    console.print(f"access key {access_key}: {change}d")


@key_app.command("disable")
def key_disable(access_key: str, data: DataOption = None) -> None:
    """Disable an access key (signatures with it fail until it is enabled again)."""
    _key_change(access_key, data, "disable")


@key_app.command("enable")
def key_enable(access_key: str, data: DataOption = None) -> None:
    """Enable a disabled access key."""
    _key_change(access_key, data, "enable")


@key_app.command("delete")
def key_delete(access_key: str, data: DataOption = None) -> None:
    """Delete an access key for good."""
    _key_change(access_key, data, "delete")


@user_app.command("passwd")
def user_passwd(
    name: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    data: DataOption = None,
) -> None:
    """Change a user's password; the user's IAM tokens stop working."""
    from ferry.identity.service import change_password

    async def work(session: Any) -> None:
        await change_password(session, name, password)

    _run_db(_settings(data), work)
    console.print(f"password of {name} changed")


@app.command()
def dev(
    regions: Annotated[str, typer.Option(help="Comma-separated region ids.")] = "cn-north-4,cn-east-3",
    base_port: Annotated[int, typer.Option(help="Port of the first region; the rest follow.")] = 5000,
    data: Annotated[Path, typer.Option("--data", help="Parent data directory.")] = Path("./ferry-data"),
    postgres: Annotated[bool, typer.Option(help="Scaled regions on a local PostgreSQL.")] = False,
    s3: Annotated[bool, typer.Option(help="Scaled regions on a local S3 server.")] = False,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls", help="HTTPS, with a local CA it generates (its path is printed and in dev.json)."
        ),
    ] = False,
) -> None:
    """Start a local multi-region Ferry and keep it running.

    With --postgres and/or --s3 each region is scaled out: two API processes behind nginx and
    two `ferry worker` processes, sharing the region's database and bucket.
    """
    from ferry.cli.dev import Scale, print_description, run_until_stopped, start_regions
    from ferry.cli.devservices import ServiceError

    ids = [r.strip() for r in regions.split(",") if r.strip()]
    if len(set(ids)) != len(ids) or not ids:
        console.print("[red]error:[/red] give distinct region ids")
        raise typer.Exit(2)
    try:
        started, services, description = start_regions(ids, base_port, data, Scale(postgres, s3), tls=tls)
    except (RuntimeError, ServiceError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(1) from None
    print_description(console, description, data)
    run_until_stopped(started, services)


def _register_sync() -> None:
    from ferry.cli.org_rules import org_rules_app
    from ferry.cli.overrides import overrides_command, rollback_command, undelete_command
    from ferry.cli.sync import sync_app

    sync_app.add_typer(org_rules_app, name="org")
    sync_app.command("overrides")(overrides_command)
    sync_app.command("rollback")(rollback_command)
    sync_app.command("undelete")(undelete_command)
    from ferry.cli.pauses import pause_command, peer_app, resume_command

    sync_app.command("pause")(pause_command)
    sync_app.command("resume")(resume_command)
    app.add_typer(sync_app, name="sync")
    app.add_typer(peer_app, name="peer")


def _register_admin() -> None:
    """List, delete and grant commands (cli/admin.py), beside the create commands here."""
    from ferry.cli.admin import grant_app

    app.add_typer(grant_app, name="grant")


def _register_webhooks() -> None:
    from ferry.cli.webhooks import webhook_app

    app.add_typer(webhook_app, name="webhook")


def _register_gc() -> None:
    from ferry.cli.gc import register

    register(app)


_register_sync()
_register_webhooks()
_register_admin()
_register_gc()
