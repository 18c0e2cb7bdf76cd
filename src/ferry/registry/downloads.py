"""Serving a blob's bytes: whole or one range, by redirect, sendfile or a stream from any store."""

from __future__ import annotations

from aiohttp import web
from aiohttp.helpers import ETAG_ANY, ETag

from ferry.registry.ranges import ByteRange, RangeNotSatisfiable, parse_range
from ferry.storage import BlobStore


class _DigestFileResponse(web.FileResponse):
    """sendfile, keeping the digest as the ETag: aiohttp's FileResponse would replace it with
    one made of the file's mtime and size, which differs between regions and replicas holding
    the same bytes (serve_blob answers If-None-Match by the digest before this runs)."""

    @property
    def etag(self) -> ETag | None:
        return super().etag

    @etag.setter
    def etag(self, value: ETag | str | None) -> None:
        pass  # the headers already hold the digest's ETag


def _unchanged(request: web.Request, digest: str) -> bool:
    """If-None-Match names the digest (or `*`): the client holds these bytes already."""
    wanted = request.if_none_match
    return wanted is not None and any(tag.value in (digest, ETAG_ANY) for tag in wanted)


async def serve_blob(request: web.Request, store: BlobStore, digest: str, size: int) -> web.StreamResponse:
    """GET or HEAD of a blob the repository serves, honouring Range and If-None-Match."""
    headers = {
        "Docker-Content-Digest": digest,
        "Content-Type": "application/octet-stream",
        "ETag": f'"{digest}"',
        "Cache-Control": "max-age=31536000",
    }
    if _unchanged(request, digest):
        return web.Response(status=304, headers=headers)
    try:
        wanted = parse_range(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        return web.Response(status=416, headers=headers | {"Content-Range": f"bytes */{size}"})
    if wanted is None and request.method == "GET":
        if url := await store.redirect_url(digest):
            return web.Response(status=307, headers=headers | {"Location": url})
        if (path := store.local_path(digest)) is not None:
            return _DigestFileResponse(path, headers=headers)  # the kernel's sendfile
    return await _stream(request, store, digest, size, wanted, headers)


async def _stream(
    request: web.Request,
    store: BlobStore,
    digest: str,
    size: int,
    wanted: ByteRange | None,
    headers: dict[str, str],
) -> web.StreamResponse:
    part = wanted or ByteRange(0, size)
    status = 206 if wanted else 200
    headers = headers | {"Accept-Ranges": "bytes"}
    if wanted:
        headers["Content-Range"] = wanted.content_range(size)
    if request.method == "HEAD":
        return web.Response(status=status, headers=headers | {"Content-Length": str(part.length)})
    # Prepared here, so the error middleware can no longer add its headers: add them now.
    headers["Docker-Distribution-API-Version"] = "registry/2.0"
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = part.length
    await response.prepare(request)
    async for chunk in store.read(digest, part.start, part.end):
        await response.write(chunk)
    await response.write_eof()
    return response
