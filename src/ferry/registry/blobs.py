"""Blob and upload handlers."""

from __future__ import annotations

from aiohttp import web

from ferry.errors import OCIError
from ferry.identity.caller import Caller
from ferry.images import blobs
from ferry.images.digests import require_digest
from ferry.images.errors import BlobUnknown
from ferry.names import ImageName, parse_image_name
from ferry.registry.auth import requires
from ferry.registry.downloads import serve_blob
from ferry.state import state


def image_of(request: web.Request) -> ImageName:
    image = parse_image_name(request.match_info["name"])
    assert image is not None  # the auth middleware rejected invalid names
    return image


def _upload_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
    }


def _blob_created(name: str, digest: str) -> web.Response:
    headers = {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest}
    return web.Response(status=201, headers=headers)


@requires("pull")
async def get_blob(request: web.Request, caller: Caller) -> web.StreamResponse:
    app = state(request)
    digest = require_digest(request.match_info["digest"])
    size = await blobs.blob_size(app.db, image_of(request), digest)
    if request.method == "HEAD" and await app.store.stat(digest) is None:
        # The row says the repository has it, but the bytes are gone from the store (deleted by
        # hand, a lost disk): a HEAD that said 200 would make every client and sync skip the
        # upload that restores them. A stat is cheap on a filesystem, one request on S3.
        raise BlobUnknown(digest)
    return await serve_blob(request, app.store, digest, size)


@requires("delete")
async def delete_blob(request: web.Request, caller: Caller) -> web.Response:
    digest = require_digest(request.match_info["digest"])
    await blobs.delete_blob(state(request).db, image_of(request), digest)
    return web.Response(status=202, headers={"Docker-Content-Digest": digest})


@requires("push")
async def start_upload(request: web.Request, caller: Caller) -> web.Response:
    app = state(request)
    image, name = image_of(request), request.match_info["name"]
    if "mount" in request.query:
        digest = require_digest(request.query["mount"])
        if await _mount(request, caller, image, digest):
            return _blob_created(name, digest)
    elif "digest" in request.query:
        digest = request.query["digest"]
        body = request.content.iter_any()
        await app.uploads.monolithic(image, caller.name, digest, body)
        return _blob_created(name, digest)
    upload_id = await app.uploads.start(image, caller.name)
    return web.Response(status=202, headers=_upload_headers(name, upload_id, 0))


async def _mount(request: web.Request, caller: Caller, image: ImageName, digest: str) -> bool:
    """Links a blob the caller can already read elsewhere; False means upload it instead.

    Only bytes still in the store are mounted: a blob whose file is gone is uploaded again,
    which places its bytes (sync's repair relies on it)."""
    app = state(request)
    if await app.store.stat(digest) is None:
        return False
    return await blobs.mount(app.db, caller, image, digest, request.query.get("from"))


@requires("push")
async def upload_status(request: web.Request, caller: Caller) -> web.Response:
    upload_id = request.match_info["upload_id"]
    size = await state(request).uploads.size(image_of(request), upload_id)
    return web.Response(status=204, headers=_upload_headers(request.match_info["name"], upload_id, size))


def _content_range_start(request: web.Request) -> int | None:
    header = request.headers.get("Content-Range")
    if header is None:
        return None
    start, sep, end = header.removeprefix("bytes ").strip().partition("-")
    if not sep or not start.isdigit() or not end.isdigit() or int(end) < int(start):
        raise OCIError(416, "BLOB_UPLOAD_INVALID", f"malformed Content-Range {header!r}")
    if request.content_length is not None and request.content_length != int(end) - int(start) + 1:
        raise OCIError(416, "BLOB_UPLOAD_INVALID", "Content-Range does not match Content-Length")
    return int(start)


@requires("push")
async def patch_upload(request: web.Request, caller: Caller) -> web.Response:
    upload_id = request.match_info["upload_id"]
    start = _content_range_start(request)
    size = await state(request).uploads.append(
        image_of(request), upload_id, request.content.iter_any(), start
    )
    return web.Response(status=202, headers=_upload_headers(request.match_info["name"], upload_id, size))


@requires("push")
async def finish_upload(request: web.Request, caller: Caller) -> web.Response:
    upload_id = request.match_info["upload_id"]
    digest = request.query.get("digest")
    if not digest:
        raise OCIError(400, "DIGEST_INVALID", "the digest query parameter is required")
    body = request.content.iter_any() if request.body_exists else None
    start = _content_range_start(request) if body is not None else None
    await state(request).uploads.finish(image_of(request), upload_id, digest, body, start)
    return _blob_created(request.match_info["name"], digest)


@requires("push")
async def cancel_upload(request: web.Request, caller: Caller) -> web.Response:
    await state(request).uploads.cancel(image_of(request), request.match_info["upload_id"])
    return web.Response(status=204)
