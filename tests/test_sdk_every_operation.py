"""Every public operation of the official SDK's `huaweicloudsdkswr.v2.SwrClient` (found from the
client itself, not listed by hand), called against a running Ferry with the SDK's own request
models filled in: each answers, and every refusal is in SWR's format with an error code (never
the registry's format, never an empty code). The enterprise edition (`/v2/{project_id}/…`),
agency and resource tags answer Ferry's stable code for "not offered here".

Issue 15 goes further (every operation outside those works); this is its floor.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import huaweicloudsdkswr.v2 as sdk_models
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkswr.v2 import SwrClient

from tests.support.images import make_image, push_image
from tests.support.regions import PROJECT_ID, make_regions
from tests.support.server import FerryServer
from tests.support.sync_helpers import create_org, registry, sdk

NOT_IN_FERRY = "FERRY.4040001"
REGION = "cn-north-4"
ORG, REPO, TAG = "sdkcover", "app", "v1"


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str
    request_type: str

    @property
    def not_in_ferry(self) -> bool:
        """The enterprise edition's, agency and resource tags: not part of Ferry."""
        return self.path.startswith("/v2/manage/agency") or (
            self.path.startswith("/v2/{project_id}/") and self.path != "/v2/{project_id}/feature-gates"
        )


def operations() -> list[Operation]:
    found = []
    for attribute in dir(SwrClient):
        if attribute.startswith("_") and attribute.endswith("_http_info"):

            class Empty:
                attribute_map: dict[str, str] = {}

            info = getattr(SwrClient, attribute)(Empty())
            name = attribute[1 : -len("_http_info")]
            request_type = info["response_type"].removesuffix("Response") + "Request"
            found.append(Operation(name, info["method"], info["resource_path"], request_type))
    return sorted(found, key=lambda o: o.name)


VALUES = {
    "namespace": ORG,
    "repository": REPO,
    "tag": TAG,
    "project_id": PROJECT_ID,
    "api_version": "v2",
    "x_swr_dockerlogin": "1",
}


def _value(type_name: str, attribute: str) -> Any:
    if type_name == "str":
        return VALUES.get(attribute, "1")
    if type_name == "int":
        return 1
    if type_name == "bool":
        return False
    if type_name.startswith("list["):
        return [_value(type_name[5:-1], attribute)]
    if type_name.startswith("dict("):
        return {}
    model = getattr(sdk_models, type_name, None)
    return _model(model) if model is not None else None


def _model(model: Any) -> Any:
    instance = model()
    for attribute, type_name in getattr(model, "openapi_types", {}).items():
        try:
            setattr(instance, attribute, _value(type_name, attribute))
        except (ValueError, TypeError):  # an enum the filler cannot guess: left out
            continue
    return instance


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FerryServer]:
    regions = make_regions(tmp_path_factory.mktemp("sdk-every"), [REGION])
    try:
        server = regions[REGION]
        create_org(server, ORG)
        push_image(registry(server), f"{ORG}/{REPO}", TAG, make_image("sdk-every-operation"))
        yield server
    finally:
        regions.stop()


@pytest.mark.parametrize("operation", operations(), ids=lambda o: o.name)
def test_every_sdk_operation_answers_in_swr_format(region: FerryServer, operation: Operation) -> None:
    request = _model(getattr(sdk_models, operation.request_type))
    try:
        getattr(sdk(region), operation.name)(request)
    except ClientRequestException as refused:
        assert refused.error_code, f"{operation.method} {operation.path}: no SWR error code ({refused})"
        assert refused.error_code.startswith(("SVCSTG.SWR.", "IAM.", "APIGW.", "FERRY.")), refused
        if operation.not_in_ferry:
            assert refused.error_code == NOT_IN_FERRY, (operation.path, refused.error_code, refused.error_msg)
        return
    assert not operation.not_in_ferry, f"{operation.path} answered although Ferry does not offer it"
