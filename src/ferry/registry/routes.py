from __future__ import annotations

from aiohttp import web

from ferry.registry import blobs, manifests
from ferry.registry.auth import token_endpoint

NAME = r"{name:[a-z0-9][a-z0-9._/-]*[a-z0-9]}"


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2/token", token_endpoint)
    r.add_post("/v2/token", token_endpoint)
    r.add_get("/v2/", manifests.base)
    r.add_get("/v2/_catalog", manifests.catalog)
    r.add_get(f"/v2/{NAME}/tags/list", manifests.list_tags)
    r.add_get(f"/v2/{NAME}/referrers/{{digest}}", manifests.list_referrers)
    r.add_get(f"/v2/{NAME}/manifests/{{reference}}", manifests.get_manifest)
    r.add_put(f"/v2/{NAME}/manifests/{{reference}}", manifests.put_manifest)
    r.add_delete(f"/v2/{NAME}/manifests/{{reference}}", manifests.delete_manifest)
    r.add_post(f"/v2/{NAME}/blobs/uploads/", blobs.start_upload)
    r.add_get(f"/v2/{NAME}/blobs/uploads/{{upload_id}}", blobs.upload_status)
    r.add_patch(f"/v2/{NAME}/blobs/uploads/{{upload_id}}", blobs.patch_upload)
    r.add_put(f"/v2/{NAME}/blobs/uploads/{{upload_id}}", blobs.finish_upload)
    r.add_delete(f"/v2/{NAME}/blobs/uploads/{{upload_id}}", blobs.cancel_upload)
    r.add_get(f"/v2/{NAME}/blobs/{{digest}}", blobs.get_blob)
    r.add_delete(f"/v2/{NAME}/blobs/{{digest}}", blobs.delete_blob)
