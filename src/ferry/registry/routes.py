"""The registry API's routes, in one explicit list.

Every endpoint but the token endpoint is wrapped by `registry.auth.requires(action)`, which
authenticates and authorizes the request before the endpoint runs (tests/test_every_route_is_guarded.py
walks the router and checks that no route escapes it).
"""

from __future__ import annotations

from aiohttp import web

from ferry.registry import blobs, manifests
from ferry.registry.auth import Handler, token_endpoint

# Any name reaches the auth wrapper, which answers NAME_INVALID for one that breaks the rules
# (a narrower pattern here would turn "Org/Repo" into a bare 404 for an unknown endpoint).
NAME = r"{name:.+}"

# The token endpoint is how a client gets credentials: the one route open to anyone.
PUBLIC: frozenset[Handler] = frozenset({token_endpoint})

ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v2/token", token_endpoint),
    ("POST", "/v2/token", token_endpoint),
    ("GET", "/v2/", manifests.base),
    ("GET", "/v2/_catalog", manifests.catalog),
    ("GET", f"/v2/{NAME}/tags/list", manifests.list_tags),
    ("GET", f"/v2/{NAME}/referrers/{{digest}}", manifests.list_referrers),
    ("GET", f"/v2/{NAME}/manifests/{{reference}}", manifests.get_manifest),
    ("PUT", f"/v2/{NAME}/manifests/{{reference}}", manifests.put_manifest),
    ("DELETE", f"/v2/{NAME}/manifests/{{reference}}", manifests.delete_manifest),
    ("POST", f"/v2/{NAME}/blobs/uploads/", blobs.start_upload),
    ("GET", f"/v2/{NAME}/blobs/uploads/{{upload_id}}", blobs.upload_status),
    ("PATCH", f"/v2/{NAME}/blobs/uploads/{{upload_id}}", blobs.patch_upload),
    ("PUT", f"/v2/{NAME}/blobs/uploads/{{upload_id}}", blobs.finish_upload),
    ("DELETE", f"/v2/{NAME}/blobs/uploads/{{upload_id}}", blobs.cancel_upload),
    ("GET", f"/v2/{NAME}/blobs/{{digest}}", blobs.get_blob),
    ("DELETE", f"/v2/{NAME}/blobs/{{digest}}", blobs.delete_blob),
]


def add_routes(app: web.Application) -> None:
    for method, path, handler in ROUTES:
        if method == "GET":
            app.router.add_get(path, handler)  # and HEAD, which clients use to check existence
        else:
            app.router.add_route(method, path, handler)
