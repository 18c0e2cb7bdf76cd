"""Manifest, tag list, referrers, catalog and base handlers."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from ferry.errors import OCIError
from ferry.identity.caller import Caller
from ferry.identity.service import readable_organization_ids
from ferry.images import manifests
from ferry.images.manifest_format import OCI_INDEX
from ferry.parsing import whole_number
from ferry.registry.auth import requires
from ferry.registry.blobs import image_of
from ferry.state import state


@requires("login")
async def base(request: web.Request, caller: Caller) -> web.Response:
    return web.json_response({})


@requires("pull")
async def get_manifest(request: web.Request, caller: Caller) -> web.Response:
    stored = await manifests.get_manifest(
        state(request).db, image_of(request), request.match_info["reference"]
    )
    headers = {"Docker-Content-Digest": stored.digest, "ETag": f'"{stored.digest}"'}
    return web.Response(body=stored.payload, content_type=stored.media_type, headers=headers)


@requires("push")
async def put_manifest(request: web.Request, caller: Caller) -> web.Response:
    app = state(request)
    payload = await read_whole_body(request, app.settings.max_manifest_bytes, "manifest")
    result = await manifests.put_manifest(
        app.db,
        app.tag_events,
        image_of(request),
        request.match_info["reference"],
        payload,
        request.headers.get("Content-Type"),
        caller.operator,
        # A peer region's sync copy (it names whom it acts for): a digest it replaces is kept.
        kept_as="sync" if caller.acting is not None else None,
    )
    name = request.match_info["name"]
    headers = {
        "Location": f"/v2/{name}/manifests/{result.digest}",
        "Docker-Content-Digest": result.digest,
    }
    if result.subject:
        headers["OCI-Subject"] = result.subject
    return web.Response(status=201, headers=headers)


async def read_whole_body(request: web.Request, limit: int, what: str) -> bytes:
    """The request body to its end, however many TCP segments it came in; 413 past `limit`.

    `StreamReader.read(n)` returns what is buffered, not n bytes: a body that arrives in pieces
    would be cut short, so the body is collected until EOF.
    """
    too_large = OCIError(413, "SIZE_INVALID", f"{what} larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


@requires("delete")
async def delete_manifest(request: web.Request, caller: Caller) -> web.Response:
    app = state(request)
    reference = request.match_info["reference"]
    await manifests.delete_manifest(app.db, app.tag_events, image_of(request), reference, caller.operator)
    return web.Response(status=202)


def _page(request: web.Request) -> tuple[int | None, str | None]:
    raw = request.query.get("n")
    limit = None
    if raw is not None:
        limit = whole_number(raw)
        if limit is None or limit > 100_000:
            raise OCIError(400, "PAGINATION_NUMBER_INVALID", f"invalid n {raw!r}: use 0 to 100000")
    return limit, request.query.get("last") or None


def _next_link(path: str, limit: int | None, last: str) -> dict[str, str]:
    query = urlencode({"n": limit, "last": last} if limit is not None else {"last": last})
    return {"Link": f'<{path}?{query}>; rel="next"'}


@requires("pull")
async def list_tags(request: web.Request, caller: Caller) -> web.Response:
    limit, last = _page(request)
    name = request.match_info["name"]
    tags, more = await manifests.list_tags(state(request).db, image_of(request), limit, last)
    headers = _next_link(f"/v2/{name}/tags/list", limit, tags[-1]) if more and tags else {}
    return web.json_response({"name": name, "tags": tags}, headers=headers)


@requires("pull")
async def list_referrers(request: web.Request, caller: Caller) -> web.Response:
    artifact_type = request.query.get("artifactType")
    body = await manifests.referrers(
        state(request).db, image_of(request), request.match_info["digest"], artifact_type
    )
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return web.Response(body=body, content_type=OCI_INDEX, headers=headers)


@requires("login")
async def catalog(request: web.Request, caller: Caller) -> web.Response:
    limit, last = _page(request)
    app = state(request)
    async with app.db.read() as session:
        org_ids = await readable_organization_ids(session, caller)
        names, more = await manifests.catalog(session, org_ids or [], limit, last)
    headers = _next_link("/v2/_catalog", limit, names[-1]) if more and names else {}
    return web.json_response({"repositories": names}, headers=headers)
