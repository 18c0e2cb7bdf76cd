from __future__ import annotations

from tests.support.registry_client import RegistryClient
from tests.support.server import ADMIN_PASSWORD, FerryServer


def test_base_endpoint_challenges_then_accepts_admin(ferry_server: FerryServer) -> None:
    anonymous = RegistryClient(ferry_server.url)
    first = anonymous.session.get(ferry_server.url + "/v2/")
    assert first.status_code == 401
    assert first.headers["WWW-Authenticate"].startswith("Bearer realm=")
    admin = RegistryClient(ferry_server.url, "admin", ADMIN_PASSWORD)
    response = admin.get("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
