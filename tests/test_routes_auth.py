"""Every route is authenticated and authorized by the same code, and the forbidden case is refused.

The route lists are the ones the application is built from; each non-public route is asked
without credentials (refused with the API's own 401) and the registry's with a token that grants
nothing on the repository (refused, with a challenge for the right scope).
"""

from __future__ import annotations

import re

import pytest
import requests

from ferry.manage.operations import Operation
from ferry.manage.routes import OPERATIONS
from ferry.registry.routes import PUBLIC, ROUTES
from tests.support.server import FerryServer

SAMPLE = {
    "name": "someorg/app",
    "digest": "sha256:" + "0" * 64,
    "reference": "latest",
    "upload_id": "0" * 32,
    "namespace": "someorg",
    "repository": "app",
    "tag": "latest",
    "project_id": "0" * 32,
    "api_version": "v2",
}


def _fill(path: str) -> str:
    return re.sub(r"{(\w+)(?::[^}]*)?}", lambda m: SAMPLE[m.group(1)], path)


def test_every_registry_route_but_the_token_endpoint_requires_an_action() -> None:
    for method, path, handler in ROUTES:
        if handler in PUBLIC:
            continue
        assert getattr(handler, "required_action", None), f"{method} {path} is not wrapped by requires()"


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, h in ROUTES if h not in PUBLIC])
def test_registry_routes_refuse_a_request_without_credentials(
    ferry_server: FerryServer, method: str, path: str
) -> None:
    response = requests.request(method, ferry_server.url + _fill(path), timeout=10)
    assert response.status_code == 401, (method, path, response.status_code, response.text)
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize(
    ("method", "path"), [(m, p) for m, p, h in ROUTES if h not in PUBLIC and "{name" in p]
)
def test_registry_routes_refuse_a_token_without_the_scope(
    ferry_server: FerryServer, admin_password: str, method: str, path: str
) -> None:
    token = requests.get(
        ferry_server.url + "/v2/token", params={"service": "x"}, auth=("admin", admin_password), timeout=10
    ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    response = requests.request(method, ferry_server.url + _fill(path), headers=headers, timeout=10)
    assert response.status_code == 403, (method, path, response.status_code, response.text)
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "operation", [op for op in OPERATIONS if not op.public], ids=lambda op: op.handler.__name__
)
def test_management_operations_refuse_a_request_without_credentials(
    ferry_server: FerryServer, operation: Operation
) -> None:
    response = requests.request(
        operation.method, ferry_server.url + _fill(operation.path), json={}, timeout=10
    )
    assert response.status_code == 401, (operation.path, response.status_code, response.text)
    assert response.json()["error_code"] == "APIGW.0301"


def test_only_discovery_and_the_token_endpoint_are_public() -> None:
    assert sorted(op.path for op in OPERATIONS if op.public) == [
        "/",
        "/v3/auth/tokens",
        "/{api_version:v[0-9]+}",
    ]
