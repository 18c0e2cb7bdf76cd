"""Putting a tag back (Ferry's extensions): a tag's override history and rollback (backup
before overwrite), and undoing a deletion before deletion sync reaches the targets."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from ferry.errors import swr_bad_request
from ferry.identity.service import Principal
from ferry.images import overrides
from ferry.manage.operations import (
    authenticated,
    json_response,
    namespace_param,
    parse_body,
    repository_param,
    tag_param,
)
from ferry.manage.schemas import Body, rfc3339
from ferry.metadata.models import TagOverride
from ferry.names import is_digest
from ferry.state import state
from ferry.sync import deletion

TAG_PATH = "/v2/manage/namespaces/{namespace}/repos/{repository}/tags/{tag}"
TAG = "sync"


class RollbackBody(Body):
    # One of the digests the tag's history names; by default what the newest override replaced.
    digest: str | None = Field(default=None, max_length=80)


class OverrideView(BaseModel):
    id: int
    tag: str
    kind: str  # "sync": a sync copy replaced the image; "rollback": a rollback put one back
    previousDigest: str
    digest: str
    operatorName: str
    replacedAt: str


def _view(record: TagOverride) -> OverrideView:
    return OverrideView(
        id=record.id,
        tag=record.tag,
        kind=record.kind,
        previousDigest=record.previous_digest,
        digest=record.digest,
        operatorName=record.operator_name,
        replacedAt=rfc3339(record.replaced_at),
    )


async def list_overrides(request: web.Request, principal: Principal) -> web.Response:
    namespace, name, tag = namespace_param(request), repository_param(request), tag_param(request)
    async with state(request).db.read() as session:
        found = await overrides.overrides_of(session, principal, namespace, name, tag)
        return json_response([_view(record) for record in found])


async def rollback_tag(request: web.Request, principal: Principal) -> web.Response:
    namespace, name, tag = namespace_param(request), repository_param(request), tag_param(request)
    body = await parse_body(request, RollbackBody) if await request.read() else RollbackBody()
    if body.digest is not None and not is_digest(body.digest):
        raise swr_bad_request(f"digest {body.digest!r} is not a digest (sha256:…)", "SVCSTG.SWR.4001025")
    app = state(request)
    async with app.db.write() as session:
        record = await overrides.rollback(
            session, app.tag_events, principal, namespace, name, tag, body.digest
        )
        view = _view(record)
    return json_response(view)


class UndeletedView(BaseModel):
    restoredDigest: str | None  # what the tag points at here again (None: its image is gone)
    cancelled: int  # deletions that will not reach their targets


async def undelete_tag(request: web.Request, principal: Principal) -> web.Response:
    namespace, name, tag = namespace_param(request), repository_param(request), tag_param(request)
    app = state(request)
    async with app.db.write() as session:
        done = await deletion.undelete(session, app.tag_events, principal, namespace, name, tag)
    return json_response(UndeletedView(restoredDigest=done.restored, cancelled=done.cancelled))


OPERATIONS = [
    authenticated(
        list_overrides,
        "GET",
        TAG_PATH + "/overrides",
        "A tag's override history: each image a sync copy replaced, and each rollback, newest "
        "first (Ferry extension)",
        response=list[OverrideView],
        tag=TAG,
    ),
    authenticated(
        rollback_tag,
        "POST",
        TAG_PATH + "/rollback",
        "Point the tag back at the image the newest sync override replaced, or at a digest of "
        "its history (Ferry extension; edit rights, as a push)",
        body=RollbackBody,
        response=OverrideView,
        tag=TAG,
    ),
    authenticated(
        undelete_tag,
        "POST",
        TAG_PATH + "/undelete",
        "Undo a tag's deletion within deletion sync's grace period: the deletions waiting to reach "
        "the targets are cancelled and the tag points here again at its image, if still stored "
        "(Ferry extension; edit rights)",
        response=UndeletedView,
        tag=TAG,
    ),
]
