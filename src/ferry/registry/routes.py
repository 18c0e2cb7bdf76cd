from __future__ import annotations

from aiohttp import web

from ferry.registry import blobs, manifests
from ferry.registry.auth import token_endpoint

# Any name reaches the auth middleware, which answers NAME_INVALID for one that breaks the rules
# (a narrower pattern here would turn "Org/Repo" into a bare 404 for an unknown endpoint).
NAME = r"{name:.+}"


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
