from __future__ import annotations

from dataclasses import dataclass, field

READ, EDIT, MANAGE = 1, 3, 7

ACTIONS_BY_AUTH = {
    READ: frozenset({"pull"}),
    EDIT: frozenset({"pull", "push", "delete"}),
    MANAGE: frozenset({"pull", "push", "delete"}),
}


@dataclass(frozen=True)
class Operator:
    """Who made a change, as sync records name them (`syncOperatorId`, `syncOperatorName`).

    The parties of one request: a registry `Caller` (from its token) or a management
    `Principal` (from the database); either names its operator through `.operator`.
    """

    id: str
    name: str


@dataclass(frozen=True)
class Caller:
    """The authenticated party of one request. user_id None means anonymous."""

    user_id: int | None
    name: str
    account_id: int | None = None
    is_admin: bool = False
    # Repository name -> actions the registry token granted.
    grants: dict[str, frozenset[str]] = field(default_factory=dict)
    # A peer region's sync names the user it copies for: the caller may then do only what both
    # it and that user may (see identity.service.acting_principal).
    acting: Caller | None = None

    @property
    def anonymous(self) -> bool:
        return self.user_id is None

    @property
    def operator(self) -> Operator:
        return Operator(str(self.user_id or ""), self.name)

    def may(self, repository: str, action: str) -> bool:
        return action in self.grants.get(repository, frozenset())


ANONYMOUS = Caller(user_id=None, name="anonymous")
