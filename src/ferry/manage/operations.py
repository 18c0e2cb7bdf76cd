"""Management operations as data: each module lists its own (`OPERATIONS`), and manage/routes.py
builds the router and the OpenAPI document from the same list.

An operation names its method, path, request body model and response model, and whether it is
public. The same pydantic models validate requests and describe them in /openapi.json.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from ferry.errors import swr_bad_request
from ferry.identity.service import Principal
from ferry.names import (
    invalid_organization,
    invalid_repository,
    invalid_tag,
    is_organization,
    is_repository,
    is_tag,
)
from ferry.parsing import JSONRefused, load_json, whole_number

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M")
# An endpoint that needs a signed-in caller receives it (manage.auth.guard authenticates).
Endpoint = Callable[[web.Request, Principal], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class SignedIn:
    """Only a signed-in caller (AK/SK signature or IAM token) may call; the endpoint receives it."""

    endpoint: Endpoint


@dataclass(frozen=True)
class Public:
    """Anyone may call: version discovery, and the IAM token endpoint, which is how one signs in."""

    handler: Handler


@dataclass(frozen=True)
class Operation:
    """One route of the management API: who may call it, and what /openapi.json says of it."""

    method: str
    path: str
    access: SignedIn | Public
    summary: str
    status: int = 200
    body: Any = None
    response: Any = None
    query: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())

    @property
    def public(self) -> bool:
        return isinstance(self.access, Public)

    @property
    def handler(self) -> Handler | Endpoint:
        """The function as written (its name is the operationId)."""
        return self.access.handler if isinstance(self.access, Public) else self.access.endpoint


def authenticated(
    endpoint: Endpoint,
    method: str,
    path: str,
    summary: str,
    *,
    status: int = 200,
    body: Any = None,
    response: Any = None,
    query: tuple[str, ...] = (),
    tag: str = "",
) -> Operation:
    """An operation only a signed-in caller may call; its endpoint receives the principal."""
    tags = (tag,) if tag else ()
    return Operation(method, path, SignedIn(endpoint), summary, status, body, response, query, tags)


def public(
    handler: Handler,
    method: str,
    path: str,
    summary: str,
    *,
    status: int = 200,
    body: Any = None,
    response: Any = None,
    tag: str = "",
) -> Operation:
    """An operation anyone may call (version discovery, the IAM token endpoint)."""
    tags = (tag,) if tag else ()
    return Operation(method, path, Public(handler), summary, status, body, response, tags=tags)


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The request body validated by `model`; 400 in SWR's format otherwise."""
    raw = await request.read()
    try:
        data = load_json(raw or b"null")
    except JSONRefused as refused:
        raise swr_bad_request(f"request body is {refused}", "SVCSTG.SWR.4001018") from None
    try:
        value: M = TypeAdapter(model).validate_python(data)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "body"
        raise swr_bad_request(f"invalid parameter {where}: {problem['msg']}") from None
    return value


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True, mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(by_alias=True, mode="json") if isinstance(v, BaseModel) else v for v in value]
    return web.Response(
        status=status, text=json.dumps(value), content_type="application/json", headers=headers
    )


def namespace_param(request: web.Request) -> str:
    name = request.match_info["namespace"]
    if not is_organization(name):
        raise swr_bad_request(invalid_organization(name), "SVCSTG.SWR.4001028")
    return name


def repository_param(request: web.Request) -> str:
    """Repository names travel with '/' as '$' (or percent-encoded)."""
    name = unquote(request.match_info["repository"]).replace("$", "/")
    if not is_repository(name):
        raise swr_bad_request(invalid_repository(name), "SVCSTG.SWR.4009011")
    return name


def tag_param(request: web.Request) -> str:
    tag = request.match_info["tag"]
    if not is_tag(tag):
        raise swr_bad_request(invalid_tag(tag), "SVCSTG.SWR.4009021")
    return tag


def id_param(request: web.Request, name: str) -> int:
    """A numeric id in the path (`{retention_id}`, `{webhook_id}`, `{rule_id}`, …)."""
    raw = request.match_info[name]
    value = whole_number(raw)
    if value is None:
        raise swr_bad_request(f"{name} must be a whole number, not {raw!r}", "SVCSTG.SWR.4001025")
    return value


def query_number(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """A whole number from `low` to `high` in the query (`default` when absent)."""
    raw = request.query.get(name, str(default))
    value = whole_number(raw)
    if value is None or not low <= value <= high:
        raise swr_bad_request(
            f"{name} must be a whole number from {low} to {high}, not {raw!r}", "SVCSTG.SWR.4000056"
        )
    return value


def parse_filter(request: web.Request) -> dict[str, str] | None:
    """SWR's `filter=k1::v1|k2::v2` query parameter; None when absent."""
    raw = request.query.get("filter")
    if raw is None:
        return None
    result: dict[str, str] = {}
    for part in raw.split("|"):
        if not part:
            continue
        key, sep, value = part.partition("::")
        if not sep or not key:
            raise swr_bad_request(f"invalid filter {raw!r}: use key::value|key::value", "SVCSTG.SWR.4001035")
        result[key] = value
    return result


def page(values: dict[str, str], default_limit: int = 100, max_limit: int = 1000) -> tuple[int, int]:
    """offset and limit from a filter or query; both or neither must be given."""
    offset_raw, limit_raw = values.get("offset"), values.get("limit")
    if (offset_raw is None) != (limit_raw is None):
        raise swr_bad_request("limit and offset must be given together", "SVCSTG.SWR.4001035")
    if offset_raw is None or limit_raw is None:
        return 0, default_limit
    offset, limit = whole_number(offset_raw), whole_number(limit_raw)
    if offset is None or limit is None:
        raise swr_bad_request("limit and offset must be non-negative integers", "SVCSTG.SWR.4000056")
    if not 1 <= limit <= max_limit:
        raise swr_bad_request(f"limit must be 1 to {max_limit}", "SVCSTG.SWR.4000056")
    return offset, limit


def content_range(offset: int, count: int, total: int) -> dict[str, str]:
    return {"Content-Range": f"{offset}-{count}/{total}"}
