"""The management API answers each refusal of its services with SWR's status, code and message.

The services raise domain errors without HTTP (identity.errors, images.errors, sync.rules);
manage/errors.py maps them in one table. This pins that table through the real application in
process (aiohttp's test server, a SQLite database built by the migrations): what each refusal
looked like when the handlers raised SWR errors themselves is what it looks like now.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from ferry.app import create_app
from ferry.config import Peer, Settings
from ferry.identity.caller import MANAGE, READ
from ferry.identity.service import create_user
from ferry.metadata.models import Manifest, Organization, Permission, Repository, Tag, User
from ferry.names import ORGANIZATION_RULE
from ferry.state import STATE

ADMIN_PASSWORD = "admin-pass-123"
READER_PASSWORD = "reader-password-1"
QUOTA = 3
PEER = "cn-east-3"
NS = "/v2/manage/namespaces"
APP = f"{NS}/team/repos/app"


def _closed_port() -> int:
    """A loopback port nothing listens on: the peer region is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Region:
    client: TestClient[Any, Any]
    admin: dict[str, str]
    reader: dict[str, str]

    async def call(
        self, method: str, path: str, body: Any = None, as_reader: bool = False
    ) -> tuple[int, Any]:
        headers = self.reader if as_reader else self.admin
        response = await self.client.request(method, path, json=body, headers=headers)
        payload = await response.json() if response.content_type == "application/json" else None
        return response.status, payload

    async def refused(
        self, method: str, path: str, body: Any = None, as_reader: bool = False
    ) -> tuple[int, str, str]:
        status, payload = await self.call(method, path, body, as_reader)
        assert status >= 400, (status, payload)
        return status, payload["error_code"], payload["error_msg"]


async def _token(client: TestClient[Any, Any], user: str, password: str) -> dict[str, str]:
    login = {"user": {"name": user, "password": password}}
    response = await client.post(
        "/v3/auth/tokens", json={"auth": {"identity": {"methods": ["password"], "password": login}}}
    )
    assert response.status == 201, await response.text()
    return {"X-Auth-Token": response.headers["X-Subject-Token"]}


@pytest.fixture(scope="module")
async def region(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Region]:
    """Admin `admin` with organization `team` (repository `app`, tag `v1`), and `reader`, a user
    of the same account with read permission on `team`; the one peer region is down."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("errors"),
        admin_password=ADMIN_PASSWORD,
        sync_workers=0,
        namespace_quota=QUOTA,
        peers=[Peer(id=PEER, url=f"http://127.0.0.1:{_closed_port()}")],
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        db = client.app[STATE].db
        async with db.write() as session:
            await create_user(session, "ferry", "reader", READER_PASSWORD)
        world = Region(client, await _token(client, "admin", ADMIN_PASSWORD), {})
        world.reader = await _token(client, "reader", READER_PASSWORD)
        assert (await world.call("POST", NS, {"namespace": "team"}))[0] == 201
        assert (await world.call("POST", f"{NS}/team/repos", {"repository": "app", "is_public": False}))[
            0
        ] == 200
        async with db.write() as session:
            org = await session.scalar(select(Organization).where(Organization.name == "team"))
            reader = await session.scalar(select(User).where(User.name == "reader"))
            repository = await session.scalar(select(Repository).where(Repository.name == "app"))
            assert org and reader and repository
            session.add(Permission(organization_id=org.id, user_id=reader.id, auth=READ))
            digest = "sha256:" + "1" * 64
            session.add(
                Manifest(
                    repository_id=repository.id,
                    digest=digest,
                    media_type="application/vnd.oci.image.manifest.v1+json",
                    size=2,
                    payload=b"{}",
                )
            )
            session.add(Tag(repository_id=repository.id, name="v1", digest=digest))
        yield world
    finally:
        await client.close()


async def test_organization_refusals(region: Region) -> None:
    assert await region.refused("POST", NS, {"namespace": "Team"}) == (
        400,
        "SVCSTG.SWR.4001028",
        "invalid organization name 'Team': " + ORGANIZATION_RULE,
    )
    assert await region.refused("POST", NS, {"namespace": "team"}) == (
        409,
        "SVCSTG.SWR.4090060",
        "organization 'team' already exists",
    )
    assert await region.refused("GET", f"{NS}/nosuch") == (
        404,
        "SVCSTG.SWR.4040058",
        "organization 'nosuch' not found",
    )
    assert await region.refused("GET", "/v2/manage/repos?namespace=nosuch") == (
        404,
        "SVCSTG.SWR.4040058",
        "organization 'nosuch' not found",
    )
    assert await region.refused("DELETE", f"{NS}/team") == (
        406,
        "SVCSTG.SWR.4060074",
        "organization 'team' still has repositories: delete them first",
    )


async def test_the_organization_quota(region: Region) -> None:
    for n in range(QUOTA - 1):  # `team` is the first
        assert (await region.call("POST", NS, {"namespace": f"spare{n}"}))[0] == 201
    assert await region.refused("POST", NS, {"namespace": "onemore"}) == (
        400,
        "SVCSTG.SWR.4000097",
        f"organization quota of {QUOTA} reached",
    )
    for n in range(QUOTA - 1):
        assert (await region.call("DELETE", f"{NS}/spare{n}"))[0] == 204


async def test_a_lesser_right_is_forbidden_and_no_right_looks_like_nothing(region: Region) -> None:
    assert await region.refused("DELETE", APP, as_reader=True) == (
        403,
        "SVCSTG.SWR.4030170",
        "Insufficient permissions: this needs edit permission on organization 'team'",
    )
    assert await region.refused(
        "POST", f"{NS}/team/access", [{"user_id": "1", "auth": 7}], as_reader=True
    ) == (
        403,
        "SVCSTG.SWR.4030170",
        "Insufficient permissions: this needs manage permission on organization 'team'",
    )
    # Reading is allowed, and nothing changed.
    assert (await region.call("GET", APP, as_reader=True))[0] == 200


async def test_permission_refusals(region: Region) -> None:
    assert await region.refused("POST", f"{NS}/team/access", [{"user_id": "99999", "auth": 1}]) == (
        404,
        "SVCSTG.SWR.4040006",
        "user '99999' not found in this account",
    )
    assert await region.refused("DELETE", f"{NS}/team/access", ["99999"]) == (
        404,
        "SVCSTG.SWR.4040006",
        "user '99999' has no permission here",
    )


async def test_repository_and_tag_refusals(region: Region) -> None:
    assert await region.refused("POST", f"{NS}/team/repos", {"repository": "app", "is_public": False}) == (
        409,
        "SVCSTG.SWR.4090006",
        "repository 'team/app' already exists",
    )
    assert await region.refused("GET", f"{NS}/team/repos/nosuch") == (
        404,
        "SVCSTG.SWR.4040113",
        "repository 'team/nosuch' not found",
    )
    missing = (404, "SVCSTG.SWR.4040115", "image tag 'nosuch' not found")
    assert await region.refused("GET", f"{APP}/tags/nosuch") == missing
    assert await region.refused("DELETE", f"{APP}/tags/nosuch") == missing
    assert (
        await region.refused("POST", f"{APP}/tags", {"source_tag": "nosuch", "destination_tag": "v2"})
        == missing
    )
    assert await region.refused("POST", f"{APP}/tags", {"source_tag": "v1", "destination_tag": "v1"}) == (
        409,
        "SVCSTG.SWR.4090006",
        "tag 'v1' exists and override is false",
    )


def _target(region: str = PEER, namespace: str = "team") -> dict[str, Any]:
    return {"remoteRegionId": region, "remoteNamespace": namespace}


async def test_sync_refusals(region: Region) -> None:
    assert await region.refused("POST", f"{APP}/sync_repo", _target("nowhere")) == (
        400,
        "SVCSTG.SWR.4000014",
        f"invalid remoteRegionId 'nowhere': valid target regions are {PEER}",
    )
    assert await region.refused("POST", f"{APP}/sync_repo", _target(namespace="Bad!")) == (
        400,
        "SVCSTG.SWR.4001028",
        "invalid remoteNamespace 'Bad!': " + ORGANIZATION_RULE,
    )
    status, code, message = await region.refused("POST", f"{APP}/sync_repo", _target())
    assert (status, code) == (500, "SVCSTG.SWR.5000046")
    assert message.startswith(
        f"cannot check the target organization in region {PEER}: region {PEER} unreachable"
    )
    assert await region.refused("DELETE", f"{APP}/sync_repo", _target()) == (
        404,
        "SVCSTG.SWR.4040083",
        f"no sync rule to {PEER}/team on team/app",
    )
    # Unreachable is no refusal for a manual sync: its jobs ask the target again when they run.
    assert await region.call("POST", f"{APP}/sync_images", _target() | {"imageTag": ["v1", "nosuch"]}) == (
        200,
        ["nosuch"],
    )


async def test_only_an_administrator_configures_automatic_sync(region: Region) -> None:
    db = region.client.app[STATE].db
    async with db.write() as session:
        reader = await session.scalar(select(User).where(User.name == "reader"))
        org = await session.scalar(select(Organization).where(Organization.name == "team"))
        assert reader and org
        permission = await session.get(Permission, (org.id, reader.id))
        assert permission is not None
        permission.auth = MANAGE
    try:
        assert await region.refused("POST", f"{APP}/sync_repo", _target(), as_reader=True) == (
            403,
            "SVCSTG.SWR.4030170",
            "Insufficient permissions: only administrators of the account owning organization "
            "'team' may configure automatic sync",
        )
    finally:
        async with db.write() as session:
            permission = await session.get(Permission, (org.id, reader.id))
            assert permission is not None
            permission.auth = READ


async def _sign_in(
    region: Region, user: str, password: str, domain: Any = None, scope: Any = None
) -> tuple[int, Any, Any]:
    named = {"name": user, "password": password} | ({"domain": domain} if domain is not None else {})
    auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": named}}}
    if scope is not None:
        auth["scope"] = scope
    response = await region.client.post("/v3/auth/tokens", json={"auth": auth})
    return response.status, await response.json(), response.headers


async def test_sign_in_refusals(region: Region) -> None:
    wrong = (401, "IAM.0004", "The username or password is wrong.")
    status, body, _ = await _sign_in(region, "admin", "not-the-password")
    assert (status, body["error_code"], body["error_msg"]) == wrong
    status, body, _ = await _sign_in(region, "admin", ADMIN_PASSWORD, domain={"name": "other"})
    assert (status, body["error_code"], body["error_msg"]) == wrong
    status, body, _ = await _sign_in(region, "admin", ADMIN_PASSWORD, scope={"project": {"name": "nowhere"}})
    assert (status, body["error_code"], body["error_msg"]) == (
        401,
        "IAM.0015",
        "no project 'nowhere' in this region",
    )
    status, body, _ = await _sign_in(region, "admin", ADMIN_PASSWORD, scope={"project": {}})
    assert (status, body["error_code"], body["error_msg"]) == (
        401,
        "IAM.0015",
        "no project None in this region",
    )
    status, body, _ = await _sign_in(
        region, "admin", ADMIN_PASSWORD, scope={"project": {"name": "cn-north-4"}}
    )
    assert status == 201 and body["token"]["project"]["name"] == "cn-north-4"


async def test_repeated_failed_sign_ins_are_throttled(region: Region) -> None:
    """A user name nobody else here uses: the throttle holds back only that name from this address."""
    for _ in range(6):
        status, body, headers = await _sign_in(region, "ghost", "guess")
        if status == 429:
            break
        assert status == 401
    assert (status, body["error_code"]) == (429, "APIGW.0308")
    assert body["error_msg"].startswith("too many failed logins from this address; try again in ")
    assert int(headers["Retry-After"]) >= 1
