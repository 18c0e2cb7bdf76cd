"""API versions, quotas, the domain overview and feature gates."""

from __future__ import annotations

from aiohttp import web

from ferry.errors import SWRError
from ferry.identity import organizations as orgs
from ferry.identity.service import Principal
from ferry.images import inventory
from ferry.manage.operations import authenticated, json_response, public
from ferry.manage.schemas import (
    DomainOverview,
    Link,
    Quota,
    QuotaList,
    VersionDetail,
    VersionList,
    VersionShow,
)
from ferry.state import state

TAG = "account"


def _version(request: web.Request) -> VersionDetail:
    base = state(request).base_url(request)
    return VersionDetail(
        id="v2",
        links=Link(href=f"{base}/v2/", rel="self"),
        version="2.26",
        status="CURRENT",
        updated="2020-07-09T00:00:00Z",
        min_version="2.0",
    )


async def list_api_versions(request: web.Request) -> web.Response:
    return json_response(VersionList(versions=[_version(request)]))


async def show_api_version(request: web.Request) -> web.Response:
    if request.match_info["api_version"] != "v2":
        raise SWRError(
            404, "SVCSTG.SWR.4040083", f"API version {request.match_info['api_version']} not found"
        )
    return json_response(VersionShow(version=_version(request)))


async def list_quotas(request: web.Request, principal: Principal) -> web.Response:
    app = state(request)
    async with app.db.read() as session:
        used = await orgs.count_account_organizations(session, principal.account_id)
    quota = Quota(quota_limit=app.settings.namespace_quota, quota_key="namespace", unit="", used=used)
    return json_response(QuotaList(quotas=[quota]))


# SWR's feature gates, as Ferry has them: what the console would offer (README "Not in Ferry"
# for what is off).
SHARE_FEATURE_GATES = {
    "enable_image_sync": True,
    "enable_authorization_token": True,  # temporary docker login
    "enable_list_v3": True,
    "enable_experience": False,
    "enable_hss_service": False,
    "enable_image_scan": False,
    "enable_sm3": False,
    "enable_cci_service": False,
    "enable_cci_sharing": False,
    "enable_image_label": False,
    "enable_pipeline": False,
    "enable_resource": False,
    "enable_image_quota": False,
}
GLOBAL_FEATURE_GATES = {  # camelCase here, as the SDK's model reads them
    "enableUserDefObs": False,
    "enableEnterprise": False,  # the enterprise edition is not part of Ferry
    "cerAvailable": False,
    "enableIntranetAccessSwitch": False,
}


async def show_feature_gates(request: web.Request, principal: Principal) -> web.Response:
    return json_response(SHARE_FEATURE_GATES)


async def list_global_feature_gates(request: web.Request, principal: Principal) -> web.Response:
    return json_response(GLOBAL_FEATURE_GATES)


async def show_domain_overview(request: web.Request, principal: Principal) -> web.Response:
    async with state(request).db.read() as session:
        found = await inventory.account_overview(session, principal)
    overview = DomainOverview(
        domain_id=found.account.domain_id,
        domain_name=found.account.name,
        namspace_num=found.organizations,
        repo_num=found.totals.repositories,
        image_num=found.totals.figures.num_images,
        store_space=float(found.totals.figures.size),
        downflow_size=0.0,
    )
    return json_response(overview)


OPERATIONS = [
    public(list_api_versions, "GET", "/", "List API versions", response=VersionList, tag=TAG),
    public(
        show_api_version,
        "GET",
        "/{api_version:v[0-9]+}",
        "Show an API version",
        response=VersionShow,
        tag=TAG,
    ),
    authenticated(
        list_quotas,
        "GET",
        "/v2/manage/projects/{project_id}/quotas",
        "List quotas",
        response=QuotaList,
        tag=TAG,
    ),
    authenticated(
        show_feature_gates,
        "GET",
        "/v2/manage/projects/{project_id}/feature-gates",
        "Show feature gates",
        tag=TAG,
    ),
    authenticated(
        list_global_feature_gates,
        "GET",
        "/v2/{project_id}/feature-gates",
        "List the global feature gates (the enterprise edition is off)",
        tag=TAG,
    ),
    authenticated(
        show_domain_overview,
        "GET",
        "/v2/manage/overview",
        "Show the account overview",
        response=DomainOverview,
        tag=TAG,
    ),
]
