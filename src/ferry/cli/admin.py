"""`ferry user|org|repo|key list/delete`, `ferry repo create|update` and `ferry grant`:
administration on a region's data directory (--data or FERRY_DATA_DIR), beside the create
commands in cli/main.py. Services refuse with domain errors; `_run_db` prints the message and
exits 1."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from ferry.cli.main import DataOption, _run_db, _settings, console, key_app, org_app, repo_app, user_app

AUTH_WORDS = {1: "read", 3: "edit", 7: "manage"}
ImageArgument = Annotated[str, typer.Argument(help="ORG/REPO")]


class _GrantGroup(TyperGroup):
    """`ferry grant USER ORG --auth N` (the first form, kept) means `ferry grant add USER ORG`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # Any: typer vendors click's Context
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["add", *args]
        return super().parse_args(ctx, args)


grant_app = typer.Typer(cls=_GrantGroup, help="Grant, list and revoke rights on organizations.")


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _image(name: str) -> Any:
    from ferry.names import invalid_image_name, parse_image_name

    image = parse_image_name(name)
    if image is None:
        _fail(invalid_image_name(name), 2)
    return image


# users


@user_app.command("list")
def user_list(data: DataOption = None) -> None:
    """List users with their ids (SWR's permission calls name users by id) and accounts."""
    from ferry.identity.directory import list_users

    async def work(session: Any) -> list[tuple[str, ...]]:
        return [
            (
                str(e.user.id),
                e.user.name,
                e.account.name,
                e.account.domain_id,
                "yes" if e.user.is_admin else "",
            )
            for e in await list_users(session)
        ]

    table = Table("id", "user", "account", "domain id", "admin", title="users")
    for row in _run_db(_settings(data), work):
        table.add_row(*row)
    console.print(table)


@user_app.command("delete")
def user_delete(name: str, data: DataOption = None) -> None:
    """Delete a user with its access keys and grants (its tokens stop working)."""
    from ferry.identity.directory import delete_user

    async def work(session: Any) -> None:
        await delete_user(session, name)

    _run_db(_settings(data), work)
    console.print(f"deleted user [cyan]{escape(name)}[/cyan]")


# organizations


@org_app.command("list")
def org_list(data: DataOption = None) -> None:
    """List organizations of every account, with how many repositories each holds."""
    from ferry.identity.directory import list_organizations

    async def work(session: Any) -> list[tuple[str, ...]]:
        return [
            (str(e.organization.id), e.organization.name, e.account.name, str(e.repositories))
            for e in await list_organizations(session)
        ]

    table = Table("id", "organization", "account", "repositories", title="organizations")
    for row in _run_db(_settings(data), work):
        table.add_row(*row)
    console.print(table)


@org_app.command("delete")
def org_delete(
    name: str,
    force: Annotated[
        bool, typer.Option(help="Also delete its repositories and their images (else refused, as SWR).")
    ] = False,
    data: DataOption = None,
) -> None:
    """Delete an empty organization (with --force, its repositories first)."""
    from ferry.identity import directory, organizations
    from ferry.identity.errors import OrganizationNotEmpty
    from ferry.identity.service import IdentityError
    from ferry.images.repositories import delete_repository, repositories_in

    async def work(session: Any) -> int:
        principal = directory.account_administrator(await directory.require_organization(session, name))
        held = [repository.name for _, repository in await repositories_in(session, name)]
        if held and not force:
            shown = ", ".join(held[:5]) + (", …" if len(held) > 5 else "")
            raise IdentityError(
                f"organization {name!r} still has {len(held)} repositories ({shown}): delete them "
                f"first, or run `ferry org delete {name} --force` to delete them and their images too"
            )
        for repository in held:
            await delete_repository(session, principal, name, repository)
        try:
            await organizations.delete_organization(session, principal, name)
        except OrganizationNotEmpty:
            raise IdentityError(f"organization {name!r} got a repository meanwhile; try again") from None
        return len(held)

    deleted = _run_db(_settings(data), work)
    console.print(f"deleted organization [cyan]{escape(name)}[/cyan] and {deleted} repositories")


# repositories


@repo_app.command("create")
def repo_create(
    name: ImageArgument,
    public: Annotated[
        bool | None,
        typer.Option("--public/--private", help="Anonymously pullable, or not (new: private)."),
    ] = None,
    data: DataOption = None,
) -> None:
    """Create a repository. An existing one is never changed: it is reported, and the command
    fails when it differs from what was asked (change it with `ferry repo update`)."""
    from ferry.identity import directory
    from ferry.images.repositories import RepositorySettings, create_repository, find_repository

    image = _image(name)

    async def work(session: Any) -> tuple[bool, bool]:
        existing = await find_repository(session, image)
        if existing is not None:
            return False, existing.is_public
        org = await directory.require_organization(session, image.organization)
        settings = RepositorySettings(bool(public))
        principal = directory.account_administrator(org)
        await create_repository(session, principal, image.organization, image.repository, settings)
        return True, bool(public)

    created, is_public = _run_db(_settings(data), work)
    what = "public" if is_public else "private"
    if created:
        console.print(f"created repository [cyan]{name}[/cyan] ({what})")
        return
    if public is not None and public != is_public:
        wanted = "--public" if public else "--private"
        _fail(
            f"repository {name} already exists and is {what}; nothing changed "
            f"(to change it: ferry repo update {name} {wanted})"
        )
    console.print(f"repository [cyan]{name}[/cyan] already exists ({what}); nothing changed")


@repo_app.command("update")
def repo_update(
    name: ImageArgument,
    public: Annotated[bool, typer.Option("--public/--private", help="Anonymously pullable, or not.")],
    data: DataOption = None,
) -> None:
    """Make an existing repository public or private."""
    from ferry.identity import directory
    from ferry.images.repositories import RepositorySettings, update_repository

    image = _image(name)

    async def work(session: Any) -> None:
        principal = directory.account_administrator(
            await directory.require_organization(session, image.organization)
        )
        await update_repository(
            session, principal, image.organization, image.repository, RepositorySettings(public)
        )

    _run_db(_settings(data), work)
    console.print(f"repository [cyan]{name}[/cyan] is {'public' if public else 'private'}")


@repo_app.command("list")
def repo_list(
    organization: Annotated[str | None, typer.Argument(help="Only this organization's.")] = None,
    data: DataOption = None,
) -> None:
    """List repositories with their ids, visibility, tags and size."""
    from ferry.identity import directory
    from ferry.images.inventory import figures_of
    from ferry.images.repositories import repositories_in

    async def work(session: Any) -> list[tuple[str, ...]]:
        if organization is not None:
            await directory.require_organization(session, organization)
        found = await repositories_in(session, organization)
        figures = await figures_of(session, [r.id for _, r in found])
        return [
            (
                str(r.id),
                f"{org.name}/{r.name}",
                "public" if r.is_public else "private",
                str(figures[r.id].num_images),
                f"{figures[r.id].size:,}",
            )
            for org, r in found
        ]

    table = Table("id", "repository", "visibility", "tags", "bytes", title="repositories")
    for row in _run_db(_settings(data), work):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)


@repo_app.command("delete")
def repo_delete(name: ImageArgument, data: DataOption = None) -> None:
    """Delete a repository with its tags and manifests (garbage collection frees the blobs)."""
    from ferry.identity import directory
    from ferry.images.repositories import delete_repository

    image = _image(name)

    async def work(session: Any) -> None:
        principal = directory.account_administrator(
            await directory.require_organization(session, image.organization)
        )
        await delete_repository(session, principal, image.organization, image.repository)

    _run_db(_settings(data), work)
    console.print(f"deleted repository [cyan]{name}[/cyan]")


# access keys


@key_app.command("list")
def key_list(
    user: Annotated[str | None, typer.Argument(help="Only this user's.")] = None,
    data: DataOption = None,
) -> None:
    """List access keys (never their secrets): one user's, or everybody's."""
    from ferry.identity.directory import list_access_keys

    async def work(session: Any) -> list[tuple[str, ...]]:
        return [
            (k.access_key, u.name, "yes" if k.enabled else "no", k.created_at.isoformat())
            for k, u in await list_access_keys(session, user)
        ]

    table = Table("access key", "user", "enabled", "created", title="access keys")
    for row in _run_db(_settings(data), work):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)


# grants


@grant_app.command("add")
def grant_add(
    user: str,
    organization: str,
    auth: Annotated[int, typer.Option(help="1 read, 3 edit, 7 manage.")] = 1,
    data: DataOption = None,
) -> None:
    """Grant USER a right on ORGANIZATION (`ferry grant USER ORG` means the same)."""
    from ferry.identity.service import grant as grant_permission

    async def work(session: Any) -> None:
        await grant_permission(session, user, organization, auth)

    _run_db(_settings(data), work)
    console.print(f"granted {escape(user)} auth {auth} on {escape(organization)}")


@grant_app.command("list")
def grant_list(
    organization: Annotated[str | None, typer.Argument(help="Only this organization's.")] = None,
    data: DataOption = None,
) -> None:
    """List granted rights, with the user ids SWR's permission calls take."""
    from ferry.identity.directory import list_grants

    async def work(session: Any) -> list[tuple[str, ...]]:
        return [
            (g.organization, g.user.name, str(g.user.id), f"{g.auth} ({AUTH_WORDS.get(g.auth, '?')})")
            for g in await list_grants(session, organization)
        ]

    table = Table("organization", "user", "user id", "auth", title="grants")
    for row in _run_db(_settings(data), work):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)


@grant_app.command("revoke")
def grant_revoke(user: str, organization: str, data: DataOption = None) -> None:
    """Take USER's right on ORGANIZATION away."""
    from ferry.identity.directory import revoke

    async def work(session: Any) -> None:
        await revoke(session, user, organization)

    _run_db(_settings(data), work)
    console.print(f"revoked the grant of {escape(user)} on {escape(organization)}")
