"""The management API's routes: every module's operations, in one explicit list."""

from __future__ import annotations

from aiohttp import web

from ferry.manage import (
    accessories,
    account,
    audit,
    iam,
    listings_v3,
    login_secrets,
    namespaces,
    org_rules,
    overrides,
    pauses,
    replication,
    repositories,
    retentions,
    sync,
    tags,
    webhooks,
)
from ferry.manage.auth import guard
from ferry.manage.openapi import add_docs
from ferry.manage.operations import Operation

OPERATIONS: list[Operation] = [
    *account.OPERATIONS,
    *iam.OPERATIONS,
    *login_secrets.OPERATIONS,
    *namespaces.OPERATIONS,
    *repositories.OPERATIONS,
    # sync before tags: the order the operations had when importing registered them, so
    # /openapi.json lists its paths as it always has.
    *sync.OPERATIONS,
    *tags.OPERATIONS,
    *listings_v3.OPERATIONS,
    *accessories.OPERATIONS,
    *retentions.OPERATIONS,
    *audit.OPERATIONS,
    *webhooks.OPERATIONS,
    *replication.OPERATIONS,
    *org_rules.OPERATIONS,
    *overrides.OPERATIONS,
    *pauses.OPERATIONS,
]


def add_routes(app: web.Application) -> None:
    for operation in OPERATIONS:
        app.router.add_route(operation.method, operation.path, guard(operation))
    add_docs(app, OPERATIONS)
