"""The token endpoint's reads as single indexed statements (metadata/point_reads.py says why):
a password sign-in's user and what a principal may do to an image name. The rule itself is
service.actions_on, shared with the session-based allowed_actions."""

from __future__ import annotations

from ferry.identity.passwords import verify_password
from ferry.identity.service import Principal, actions_on
from ferry.metadata.db import Database
from ferry.names import ImageName

_USER_BY_NAME = "SELECT id, name, account_id, is_admin, password_hash FROM users WHERE name = :name"

_RIGHTS = """
    SELECT o.account_id,
        (SELECT p.auth FROM permissions p WHERE p.organization_id = o.id AND p.user_id = :user_id),
        (SELECT r.is_public FROM repositories r WHERE r.organization_id = o.id AND r.name = :repo)
    FROM organizations o WHERE o.name = :org"""


async def password_principal(db: Database, username: str, password: str) -> Principal | None:
    """The user whose name and password these are, else None."""
    row = await db.point.one(_USER_BY_NAME, {"name": username})
    if row is None:
        return None
    user_id, name, account_id, is_admin, password_hash = row
    if not await verify_password(password_hash, password):
        return None
    return Principal(int(user_id), str(name), int(account_id), bool(is_admin))


async def allowed_actions_now(db: Database, principal: Principal | None, image: ImageName) -> frozenset[str]:
    """What the principal may do to the image name (service.allowed_actions, in one statement)."""
    params = {
        "org": image.organization,
        "repo": image.repository,
        "user_id": principal.user_id if principal else -1,
    }
    row = await db.point.one(_RIGHTS, params)
    if row is None:
        return frozenset()  # no organization of that name: nothing, for anybody (see allowed_actions)
    account_id, permission, is_public = row
    return actions_on(principal, int(account_id), permission, bool(is_public))
