from __future__ import annotations

from aiohttp import web

# Importing the handler modules registers their operations.
from ferry.manage import account, iam, namespaces, repositories, sync, tags  # noqa: F401
from ferry.manage.openapi import add_docs
from ferry.manage.operations import add_operations


def add_routes(app: web.Application) -> None:
    add_operations(app)
    add_docs(app)
