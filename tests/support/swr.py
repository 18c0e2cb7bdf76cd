"""Driving Huawei Cloud's official SWR SDK (and plain IAM-token requests) against a Ferry process."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkswr.v2 import SwrClient

from tests.support import leaks
from tests.support.server import FerryServer

REGION = "cn-north-4"  # a FerryServer's default FERRY_REGION
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# --- access keys and SDK clients ---------------------------------------------------------------


@dataclass(frozen=True)
class AccessKey:
    ak: str
    sk: str
    project_id: str
    domain_id: str
    region: str

    @property
    def docker_login(self) -> tuple[str, str]:
        """SWR's long-term login: `<region>@<AK>` and hex HMAC-SHA256(key=SK, msg=AK)."""
        password = hmac.new(self.sk.encode(), self.ak.encode(), hashlib.sha256).hexdigest()
        leaks.remember(password)
        return f"{self.region}@{self.ak}", password


def create_key(server: FerryServer, user: str) -> AccessKey:
    """`ferry key create USER`, parsed from its JSON output."""
    out = _ANSI.sub("", server.cli("key", "create", user).stdout)
    data = json.loads(out[out.index("{") : out.rindex("}") + 1])
    return AccessKey(data["ak"], data["sk"], data["project_id"], data["domain_id"], data["region"])


def _http_config() -> HttpConfig:
    config = HttpConfig.get_default_config()
    config.timeout = (5, 30)
    return config


def endpoint_client(url: str, ak: str, sk: str, project_id: str) -> SwrClient:
    """The SDK with nothing but an endpoint, an AK/SK and a project id."""
    credentials = BasicCredentials(ak, sk, project_id)
    return (
        SwrClient.new_builder()
        .with_http_config(_http_config())
        .with_credentials(credentials)
        .with_endpoints([url])
        .build()
    )


def sdk_client(server: FerryServer, key: AccessKey) -> SwrClient:
    """The SDK with nothing but the server's endpoint, the key's AK/SK and its project id."""
    return endpoint_client(server.url, key.ak, key.sk, key.project_id)


def sdk_client_by_region(server: FerryServer, key: AccessKey, region: str = REGION) -> SwrClient:
    """The SDK with a region and an IAM endpoint but no project id: it asks GET /v3/projects."""
    credentials = BasicCredentials(key.ak, key.sk).with_iam_endpoint(server.url)
    return (
        SwrClient.new_builder()
        .with_http_config(_http_config())
        .with_credentials(credentials)
        .with_region(Region(region, server.url))
        .build()
    )


def sdk_error(call: Callable[[], Any]) -> ClientRequestException:
    """The SDK's exception for a call that must fail with a 4xx."""
    try:
        call()
    except ClientRequestException as error:
        return error
    raise AssertionError("the call succeeded but should have failed")


def assert_sdk_error(call: Callable[[], Any], status: int, code: str) -> ClientRequestException:
    error = sdk_error(call)
    assert (error.status_code, error.error_code) == (status, code), (
        error.status_code,
        error.error_code,
        error.error_msg,
    )
    assert error.request_id, "every error carries X-Request-Id"
    return error


# --- IAM tokens -------------------------------------------------------------------------------


def token_request(
    server: FerryServer, user: str, password: str, scope: dict[str, Any] | None
) -> requests.Response:
    """POST /v3/auth/tokens with the password method, as IAM's docs show it."""
    auth: dict[str, Any] = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": user, "password": password}},
        }
    }
    if scope is not None:
        auth["scope"] = scope
    return requests.post(
        f"{server.url}/v3/auth/tokens",
        data=json.dumps({"auth": auth}),
        headers={"Content-Type": "application/json;charset=utf8"},
        timeout=30,
    )


def iam_token(server: FerryServer, user: str, password: str, region: str = REGION) -> str:
    response = token_request(server, user, password, {"project": {"name": region}})
    assert response.status_code == 201, response.text
    return response.headers["X-Subject-Token"]


class TokenSession:
    """Plain HTTP calls to the management API with `X-Auth-Token` (the SDK itself only signs)."""

    def __init__(self, server: FerryServer, token: str) -> None:
        self.base = server.url
        self.session = requests.Session()
        self.session.headers.update({"X-Auth-Token": token, "Content-Type": "application/json"})

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        data = None if body is None else json.dumps(body)
        return self.session.request(method, self.base + path, data=data, timeout=30, **kwargs)
