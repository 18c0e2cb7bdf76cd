"""The OpenAPI document of the management API, built from the operation table's models."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter
from pydantic.json_schema import models_json_schema

from ferry import __version__
from ferry.manage.operations import Operation, json_response
from ferry.manage.schemas import ErrorBody

_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")


def _schema(model: Any, defs: dict[str, Any]) -> dict[str, Any]:
    schema = TypeAdapter(model).json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
    defs.update(schema.pop("$defs", {}))
    return schema


def _operation(op: Operation, defs: dict[str, Any]) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(op.path)
    ] + [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in op.query]
    error = {
        "description": "error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    success: dict[str, Any] = {"description": "success"}
    if op.response is not None:
        success["content"] = {"application/json": {"schema": _schema(op.response, defs)}}
    doc: dict[str, Any] = {
        "operationId": op.handler.__name__,
        "summary": op.summary,
        "tags": list(op.tags),
        "parameters": params,
        "responses": {str(op.status): success, "400": error, "401": error, "404": error},
    }
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(op.body, defs)}},
        }
    if not op.public:
        doc["security"] = [{"akskSignature": []}, {"authToken": []}]
    return doc


def build_document(operations: list[Operation]) -> dict[str, Any]:
    _, top = models_json_schema([(ErrorBody, "serialization")], ref_template="#/components/schemas/{model}")
    defs: dict[str, Any] = dict(top.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        path = _PARAM.sub(r"{\1}", op.path)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op, defs)
    return {
        "openapi": "3.0.3",
        "info": {"title": "Ferry SWR management API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {
                "akskSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "SDK-HMAC-SHA256 signature with X-Sdk-Date",
                },
                "authToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
            },
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(request.app[DOCUMENT])


async def docs(request: web.Request) -> web.Response:
    """A readable list of operations with their schemas, served without any external assets."""
    document = request.app[DOCUMENT]
    rows = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            rows.append(
                f"<tr><td><b>{method.upper()}</b></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op['summary'])}</td>"
                f"<td><pre>{html.escape(json.dumps(body, indent=1)) if body else ''}</pre></td></tr>"
            )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Ferry management API</title>"
        "<style>body{font-family:sans-serif}td{vertical-align:top;padding:4px;border-bottom:1px solid #ddd}"
        "pre{margin:0;font-size:11px}</style></head><body><h1>Ferry management API</h1>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>"
        f"<table>{''.join(rows)}</table></body></html>"
    )
    return web.Response(text=page, content_type="text/html")


DOCUMENT = web.AppKey("openapi", dict)


def add_docs(app: web.Application, operations: list[Operation]) -> None:
    app[DOCUMENT] = build_document(operations)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs)
