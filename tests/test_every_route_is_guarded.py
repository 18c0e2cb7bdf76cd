"""Every route the application serves is authenticated, except an explicit few; none escapes.

It walks the application's own
router (aiohttp's test server, in process), so a route added anywhere (in app.py, beside a list)
is asked too. Each is called without credentials: exactly the public set below may answer
without a 401; every other route must refuse with its API's own 401. The forbidden cases follow:
a registry token without the repository's scope, and a management caller with a lesser right.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from ferry.app import create_app, is_registry_path
from ferry.config import Settings
from ferry.identity.caller import READ
from ferry.identity.service import create_user
from ferry.metadata.models import Organization, Permission, User
from ferry.state import STATE

ADMIN_PASSWORD = "admin-pass-123"
READER_PASSWORD = "reader-password-1"
# (method, route) pairs anyone may call: signing in, discovery, the API description, liveness.
PUBLIC = {
    ("GET", "/v2/token"),
    ("HEAD", "/v2/token"),
    ("POST", "/v2/token"),
    ("POST", "/v3/auth/tokens"),
    ("GET", "/"),
    ("GET", "/{api_version}"),
    ("GET", "/openapi.json"),
    ("HEAD", "/openapi.json"),
    ("GET", "/docs"),
    ("HEAD", "/docs"),
    ("GET", "/healthz"),
    ("HEAD", "/healthz"),
    # Readiness, for load balancers; says which check failed, never a secret.
    ("GET", "/readyz"),
    ("HEAD", "/readyz"),
    # Metrics: no credentials, but only for the addresses FERRY_METRICS_ALLOW names
    # (loopback by default); others get 403 (tests/test_metrics.py).
    ("GET", "/metrics"),
    ("HEAD", "/metrics"),
}
SAMPLE = {
    "name": "team/app",
    "digest": "sha256:" + "0" * 64,
    "reference": "latest",
    "upload_id": "0" * 32,
    "namespace": "team",
    "repository": "app",
    "tag": "latest",
    "project_id": "0" * 32,
    "api_version": "v2",
    "retention_id": "1",
    "webhook_id": "1",
    "delivery_id": "1",
    "job_id": "1",
    "rule_id": "1",
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # the router's canonical form, "{name}" for each variable

    @property
    def url(self) -> str:
        return re.sub(r"{(\w+)}", lambda m: SAMPLE[m.group(1)], self.path)


@dataclass
class Region:
    client: TestClient[Any, Any]
    routes: list[Route]


@pytest.fixture(scope="module")
async def region(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Region]:
    """Organization `team` and a user `reader` with read permission on it."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("guarded"), admin_password=ADMIN_PASSWORD, sync_workers=0
    )
    app = create_app(settings)
    routes = sorted(
        {Route(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None},
        key=lambda r: (r.path, r.method),
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        async with client.app[STATE].db.write() as session:
            admin = await session.scalar(select(User).where(User.name == "admin"))
            assert admin is not None
            org = Organization(account_id=admin.account_id, name="team", creator_name="admin")
            session.add(org)
            reader = await create_user(session, "ferry", "reader", READER_PASSWORD)
            await session.flush()
            session.add(Permission(organization_id=org.id, user_id=reader.id, auth=READ))
        yield Region(client, routes)
    finally:
        await client.close()


async def test_the_router_holds_every_route_of_both_apis(region: Region) -> None:
    paths = {route.path for route in region.routes}
    assert "/v2/{name}/manifests/{reference}" in paths
    assert "/v2/manage/namespaces/{namespace}/repos/{repository}/tags" in paths
    assert len(region.routes) > 40


async def test_only_the_public_routes_answer_without_credentials(region: Region) -> None:
    answered: set[tuple[str, str]] = set()
    for route in region.routes:
        response = await region.client.request(route.method, route.url, json={})
        if response.status != 401:
            answered.add((route.method, route.path))
            continue
        if is_registry_path(route.url):
            assert response.headers["WWW-Authenticate"].startswith("Bearer "), route
            if route.method != "HEAD":
                assert (await response.json())["errors"][0]["code"] == "UNAUTHORIZED", route
        elif route.method != "HEAD":
            assert (await response.json())["error_code"] == "APIGW.0301", route
    assert answered == PUBLIC


async def test_a_registry_token_without_the_scope_is_forbidden(region: Region) -> None:
    """A signed-in caller whose token grants nothing on the repository: 403 with a challenge."""
    basic = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    response = await region.client.get(
        "/v2/token", params={"service": "x"}, headers={"Authorization": f"Basic {basic}"}
    )
    headers = {"Authorization": f"Bearer {(await response.json())['token']}"}
    named = [r for r in region.routes if r.path.startswith("/v2/{name}")]
    assert named
    for route in named:
        response = await region.client.request(route.method, route.url, headers=headers)
        assert response.status == 403, (route, await response.text())
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"], route


async def test_a_lesser_management_right_is_forbidden(region: Region) -> None:
    login = {"user": {"name": "reader", "password": READER_PASSWORD}}
    response = await region.client.post(
        "/v3/auth/tokens", json={"auth": {"identity": {"methods": ["password"], "password": login}}}
    )
    headers = {"X-Auth-Token": response.headers["X-Subject-Token"]}
    assert (await region.client.get("/v2/manage/namespaces/team", headers=headers)).status == 200
    refused = await region.client.delete("/v2/manage/namespaces/team", headers=headers)
    assert refused.status == 403
    assert (await refused.json())["error_code"] == "SVCSTG.SWR.4030170"
