"""A tag's accessories (`list_repo_accessories`: its referrers, signatures and SBOMs) and
references (`list_references`: cosign-scheme signature tags), images/accessories.py's."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from ferry.identity.service import Principal
from ferry.images import accessories
from ferry.manage.operations import (
    authenticated,
    json_response,
    namespace_param,
    query_number,
    repository_param,
    tag_param,
)
from ferry.manage.schemas import rfc3339
from ferry.state import state

TAG_PATH = "/v2/manage/namespaces/{namespace}/repos/{repository}/{tag}"
TAG = "tags"
MAX_LIMIT, MAX_OFFSET = 1000, 10**9


class AccessoryView(BaseModel):
    id: int
    domain_id: str
    namespace_name: str
    repo_name: str
    sig_tag: str
    sig_digest: str
    target_digest: str
    size: int
    type: str  # the referrer's artifact type (or media type when it has none)
    created_at: str
    updated_at: str


class AccessoryPageView(BaseModel):
    total: int
    accessories: list[AccessoryView]


class ReferencesView(BaseModel):
    next_marker: str | None
    has_more: bool
    tags: list[str]


async def list_repo_accessories(request: web.Request, principal: Principal) -> web.Response:
    namespace, name, tag = namespace_param(request), repository_param(request), tag_param(request)
    offset = query_number(request, "offset", 0, 0, MAX_OFFSET)
    limit = query_number(request, "limit", 100, 1, MAX_LIMIT)
    async with state(request).db.read() as session:
        found = await accessories.accessories_of(session, principal, namespace, name, tag, offset, limit)
    views = [
        AccessoryView(
            id=a.manifest.id,
            domain_id=found.account.domain_id,
            namespace_name=namespace,
            repo_name=name,
            sig_tag=a.tag,
            sig_digest=a.manifest.digest,
            target_digest=found.target_digest,
            size=a.manifest.content_size or a.manifest.size,
            type=a.manifest.artifact_type or a.manifest.media_type,
            created_at=rfc3339(a.manifest.created_at),
            updated_at=rfc3339(a.manifest.created_at),
        )
        for a in found.accessories
    ]
    return json_response(AccessoryPageView(total=found.total, accessories=views))


async def list_references(request: web.Request, principal: Principal) -> web.Response:
    namespace, name, tag = namespace_param(request), repository_param(request), tag_param(request)
    limit = query_number(request, "limit", 100, 1, MAX_LIMIT)
    async with state(request).db.read() as session:
        names, more = await accessories.references_of(
            session, principal, namespace, name, tag, request.query.get("marker") or None, limit
        )
    return json_response(
        ReferencesView(next_marker=names[-1] if more and names else None, has_more=more, tags=names)
    )


OPERATIONS = [
    authenticated(
        list_repo_accessories,
        "GET",
        TAG_PATH + "/accessories",
        "A tag's accessories: the referrers of its manifest (signatures, SBOMs), paged by offset",
        response=AccessoryPageView,
        query=("limit", "offset"),
        tag=TAG,
    ),
    authenticated(
        list_references,
        "GET",
        TAG_PATH + "/references",
        "A tag's cosign-scheme signature tags (sha256-<hex>.sig, .att, .sbom), paged by marker",
        response=ReferencesView,
        query=("limit", "marker"),
        tag=TAG,
    ),
]
