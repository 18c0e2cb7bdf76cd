"""Signing in to the IAM subset with a password (`POST /v3/auth/tokens`): the throttled check,
the domain and project the caller names, and the token.

Refusals: identity.errors.PasswordWrong and ProjectUnknown, and identity.throttle.LoginThrottled.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.identity.errors import PasswordWrong, ProjectUnknown
from ferry.identity.iam_tokens import IamTokens, IssuedToken
from ferry.identity.organizations import account_of
from ferry.identity.service import Principal, authenticate_password
from ferry.identity.throttle import LoginThrottle, user_identity
from ferry.metadata.db import Database
from ferry.metadata.models import Account


@dataclass(frozen=True)
class Reference:
    """A domain or project as the caller refers to it: by name, by id, or both (None: not given)."""

    name: str | None
    id: str | None


@dataclass(frozen=True)
class PasswordLogin:
    principal: Principal
    account: Account
    token: IssuedToken
    project_scoped: bool  # the token is scoped to the account's project in this region


async def password_login(
    db: Database,
    throttle: LoginThrottle,
    tokens: IamTokens,
    address: str,
    name: str,
    password: str,
    domain: Reference | None,
    project: Reference | None,
    region: str,
) -> PasswordLogin:
    """`project` names this region (by name) or the account's project (by id)."""

    async def check() -> Principal | None:
        async with db.read() as session:
            return await authenticate_password(session, name, password)

    principal = await throttle.attempt(user_identity(name), address, check)
    if principal is None:
        raise PasswordWrong()
    async with db.read() as session:
        account = await account_of(session, principal.account_id)
    # A wrong domain is refused like a wrong password: nobody learns which account a user is in.
    if domain is not None and not (
        domain.name in (None, account.name) and domain.id in (None, account.domain_id)
    ):
        raise PasswordWrong()
    if project is not None and not (project.name == region or project.id == account.project_id):
        raise ProjectUnknown(project.name or project.id)
    token = tokens.issue(principal, {"project": account.project_id} if project else {})
    return PasswordLogin(principal, account, token, project is not None)
