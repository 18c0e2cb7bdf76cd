"""What a management caller may do in an organization, checked before any change."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ferry.errors import SWRError, organization_not_found, repository_not_found, swr_forbidden
from ferry.identity.caller import EDIT, MANAGE, READ
from ferry.identity.organizations import VisibleOrganization, visible_organization
from ferry.identity.service import Principal
from ferry.images.inventory import repository_in
from ferry.metadata.models import Repository

__all__ = ["EDIT", "MANAGE", "READ", "organization_for", "repository_for"]


async def organization_for(
    session: AsyncSession, principal: Principal, name: str, needs: int
) -> VisibleOrganization:
    """404 when the caller cannot see the organization, 403 when it can but may not act."""
    visible = await visible_organization(session, principal, name)
    if visible is None:
        raise organization_not_found(name)
    if visible.auth < needs:
        raise swr_forbidden(_refusal(needs, name))
    return visible


async def repository_for(
    session: AsyncSession, principal: Principal, namespace: str, name: str, needs: int
) -> tuple[VisibleOrganization, Repository]:
    visible = await organization_for(session, principal, namespace, needs)
    repository = await repository_in(session, visible.organization.id, name)
    if repository is None:
        raise repository_not_found(f"{namespace}/{name}")
    return visible, repository


def _refusal(needs: int, organization: str) -> str:
    word = {READ: "read", EDIT: "edit", MANAGE: "manage"}[needs]
    return f"Insufficient permissions: this needs {word} permission on organization '{organization}'"


def conflict(code: str, message: str) -> SWRError:
    return SWRError(409, code, message)
