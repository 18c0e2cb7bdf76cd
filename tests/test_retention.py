"""Retention policies (SWR "image aging") through Huawei Cloud's official SDK, against real Ferry
processes: the policy's life, what a run deletes and keeps (checked in the registry), the
history, the rights it needs, SWR's 400s for bad rules, and the background schedule.

Tags get their ages by setting `updated_at` in the region's database (a week cannot be waited
for); everything else goes through the APIs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests
from huaweicloudsdkswr.v2 import (
    CreateNamespaceRequest,
    CreateNamespaceRequestBody,
    CreateRepoRequest,
    CreateRepoRequestBody,
    CreateRetentionRequest,
    CreateRetentionRequestBody,
    DeleteRetentionRequest,
    ListRepositoryTagsRequest,
    ListRetentionHistoriesRequest,
    ListRetentionsRequest,
    Rule,
    ShowRetentionRequest,
    SwrClient,
    TagSelector,
    UpdateRetentionRequest,
    UpdateRetentionRequestBody,
)
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from ferry.metadata.db import Database
from ferry.metadata.models import Organization, Repository, Tag, utcnow
from tests.support.images import make_image, push_image
from tests.support.names import unique
from tests.support.registry_client import RegistryClient
from tests.support.server import ADMIN_PASSWORD, FerryServer, free_port
from tests.support.swr import assert_sdk_error, create_key, iam_token, sdk_client

FORBIDDEN = (403, "SVCSTG.SWR.4030170")
INVALID = (400, "SVCSTG.SWR.4001025")
NOT_FOUND = (404, "SVCSTG.SWR.4040083")


@dataclass
class Region:
    server: FerryServer
    client: SwrClient  # the admin's

    def registry(self) -> RegistryClient:
        return RegistryClient(self.server.url, "admin", ADMIN_PASSWORD)

    def new_repo(self) -> tuple[str, str]:
        org = unique("ret")
        self.client.create_namespace(CreateNamespaceRequest(body=CreateNamespaceRequestBody(namespace=org)))
        body = CreateRepoRequestBody(repository="app", is_public=False)
        self.client.create_repo(CreateRepoRequest(namespace=org, body=body))
        return org, "app"

    def push(self, org: str, repo: str, ages_in_days: dict[str, float]) -> None:
        """Pushes one small image per tag, then makes each tag as old as asked."""
        registry = self.registry()
        for tag in ages_in_days:
            push_image(registry, f"{org}/{repo}", tag, make_image(f"{org}-{tag}"))
        asyncio.run(_age_tags(_database_url(self.server), org, repo, ages_in_days))

    def present(self, org: str, repo: str) -> set[str]:
        """The repository's tags, as the SDK lists them."""
        request = ListRepositoryTagsRequest(namespace=org, repository=repo)
        return {t.tag for t in self.client.list_repository_tags(request).body or []}

    def pullable(self, org: str, repo: str, tag: str) -> bool:
        response = self.registry().request("HEAD", f"/v2/{org}/{repo}/manifests/{tag}")
        assert response.status_code in (200, 404), response.status_code
        return response.status_code == 200

    def create(self, org: str, repo: str, *rules: Rule) -> int:
        body = CreateRetentionRequestBody(algorithm="or", rules=list(rules))
        response = self.client.create_retention(CreateRetentionRequest(org, repo, body))
        assert response.status_code == 201
        return int(response.id)

    def histories(self, org: str, repo: str) -> list[Any]:
        request = ListRetentionHistoriesRequest(org, repo)
        return list(self.client.list_retention_histories(request).retention_log or [])

    def run(self, org: str, repo: str, retention_id: int, token: str | None = None) -> requests.Response:
        """Ferry's on-demand run (not an SDK operation)."""
        return requests.post(
            f"{self.server.url}/v2/manage/namespaces/{org}/repos/{repo}/retentions/{retention_id}/run",
            headers={"X-Auth-Token": token or self.server.admin_token()},
            timeout=60,
        )


def _database_url(server: FerryServer) -> str:
    return server.env.get("FERRY_DATABASE_URL") or f"sqlite+aiosqlite:///{server.data.resolve() / 'ferry.db'}"


async def _age_tags(url: str, org: str, repo: str, ages_in_days: dict[str, float]) -> None:
    db = Database(url)
    try:
        async with db.write() as session:
            repository_id = await session.scalar(
                select(Repository.id)
                .join(Organization, Organization.id == Repository.organization_id)
                .where(Organization.name == org, Repository.name == repo)
            )
            for tag, days in ages_in_days.items():
                await session.execute(
                    update(Tag)
                    .where(Tag.repository_id == repository_id, Tag.name == tag)
                    .values(updated_at=utcnow() - timedelta(days=days))
                )
    finally:
        await db.close()


def tag_rule(num: object, *selectors: tuple[str, str]) -> Rule:
    return Rule(
        template="tag_rule", params={"num": num}, tag_selectors=[TagSelector(k, p) for k, p in selectors]
    )


def date_rule(days: object, *selectors: tuple[str, str]) -> Rule:
    return Rule(
        template="date_rule", params={"days": days}, tag_selectors=[TagSelector(k, p) for k, p in selectors]
    )


@pytest.fixture(scope="module")
def region(ferry_server: FerryServer) -> Region:
    """The shared region (its schedule runs hourly, so only the test's own calls run policies)."""
    return Region(ferry_server, sdk_client(ferry_server, create_key(ferry_server, "admin")))


# --- the policy's life ------------------------------------------------------------------------


def test_a_policy_is_created_listed_shown_updated_and_deleted_in_swr_shapes(region: Region) -> None:
    org, repo = region.new_repo()
    retention_id = region.create(org, repo, tag_rule("3", ("label", "stable"), ("regexp", "^release-")))

    listed = region.client.list_retentions(ListRetentionsRequest(org, repo)).body
    assert [r.id for r in listed] == [retention_id]
    shown = region.client.show_retention(ShowRetentionRequest(org, repo, retention_id))
    for policy in (listed[0], shown):
        assert (policy.algorithm, policy.scope) == ("or", "")
        assert [(r.template, r.params) for r in policy.rules] == [("tag_rule", {"num": "3"})]
        selectors = [(s.kind, s.pattern) for s in policy.rules[0].tag_selectors]
        assert selectors == [("label", "stable"), ("regexp", "^release-")]

    # One policy per repository (SWR's rule): a second is refused, the first is updated instead.
    body = CreateRetentionRequestBody(algorithm="or", rules=[date_rule(30)])
    error = assert_sdk_error(
        lambda: region.client.create_retention(CreateRetentionRequest(org, repo, body)),
        409,
        "SVCSTG.SWR.4090000",
    )
    assert str(retention_id) in error.error_msg
    update_body = UpdateRetentionRequestBody(algorithm="or", rules=[date_rule(30)])
    updated = region.client.update_retention(UpdateRetentionRequest(org, repo, retention_id, update_body))
    assert updated.status_code == 201
    shown = region.client.show_retention(ShowRetentionRequest(org, repo, retention_id))
    assert [(r.template, r.params, r.tag_selectors) for r in shown.rules] == [
        ("date_rule", {"days": "30"}, [])
    ]

    deleted = region.client.delete_retention(DeleteRetentionRequest(org, repo, retention_id))
    assert deleted.status_code == 200
    assert (
        region.client.list_retentions(ListRetentionsRequest(org, repo)).body is None
    )  # the SDK's [] is None
    assert_sdk_error(
        lambda: region.client.show_retention(ShowRetentionRequest(org, repo, retention_id)), *NOT_FOUND
    )
    assert_sdk_error(
        lambda: region.client.delete_retention(DeleteRetentionRequest(org, repo, retention_id)), *NOT_FOUND
    )


# --- what a run deletes -----------------------------------------------------------------------


def test_tag_rule_keeps_the_newest_and_the_exceptions_and_records_each_deletion(region: Region) -> None:
    org, repo = region.new_repo()
    region.push(org, repo, {"v1": 10, "release-1": 9, "v2": 8, "v3": 3, "v4": 2, "v5": 1})

    # Setting the policy runs it (SWR: "the policy takes effect immediately").
    retention_id = region.create(org, repo, tag_rule("2", ("label", "v1"), ("regexp", "^release-")))
    assert region.present(org, repo) == {"v1", "release-1", "v4", "v5"}
    assert not region.pullable(org, repo, "v2") and not region.pullable(org, repo, "v3")
    assert region.pullable(org, repo, "v1") and region.pullable(org, repo, "release-1")

    logs = region.histories(org, repo)
    assert sorted(entry.tag for entry in logs) == ["v2", "v3"]
    for entry in logs:
        assert (entry.namespace, entry.repo, entry.retention_id) == (org, repo, retention_id)
        assert json.loads(entry.rule_type) == {
            "template": "tag_rule",
            "params": {"num": "2"},
            "tag_selectors": [{"kind": "label", "pattern": "v1"}, {"kind": "regexp", "pattern": "^release-"}],
        }
        assert entry.created_at.endswith("Z") and entry.id > 0

    # A newer push makes v4 the third newest; an on-demand run deletes it, and only it.
    region.push(org, repo, {"v6": 0})
    ran = region.run(org, repo, retention_id)
    assert ran.status_code == 200, ran.text
    assert [d["tag"] for d in ran.json()["deleted"]] == ["v4"]
    assert region.present(org, repo) == {"v1", "release-1", "v5", "v6"}
    assert not region.pullable(org, repo, "v4")
    # A second run finds nothing more to delete.
    assert region.run(org, repo, retention_id).json()["deleted"] == []

    # The history, newest first, paged as SWR pages (limit and offset, and Content-Range).
    page = region.client.list_retention_histories(
        ListRetentionHistoriesRequest(org, repo, limit="2", offset="0")
    )
    assert page.total == 3 and page.content_range == "0-2/3"
    # One run deletes oldest first, so newest first is v4, then v3, then v2.
    assert [e.tag for e in page.retention_log] == ["v4", "v3"]
    rest = region.client.list_retention_histories(
        ListRetentionHistoriesRequest(org, repo, filter="limit::2|offset::2")
    )
    assert [e.tag for e in rest.retention_log] == ["v2"] and rest.total == 3


def test_date_rule_keeps_young_tags_and_an_update_runs_the_new_rules(region: Region) -> None:
    org, repo = region.new_repo()
    retention_id = region.create(org, repo, date_rule(30, ("label", "pinned")))
    region.push(org, repo, {"old": 40, "pinned": 100, "month": 20, "fresh": 1})
    assert region.histories(org, repo) == []  # nothing ran since the pushes

    ran = region.run(org, repo, retention_id)
    assert [d["tag"] for d in ran.json()["deleted"]] == ["old"]
    assert region.present(org, repo) == {"pinned", "month", "fresh"}
    assert not region.pullable(org, repo, "old")

    # Updating the policy runs it: keep the newest one, pinned still excepted.
    body = UpdateRetentionRequestBody(algorithm="or", rules=[tag_rule(1, ("label", "pinned"))])
    region.client.update_retention(UpdateRetentionRequest(org, repo, retention_id, body))
    assert region.present(org, repo) == {"pinned", "fresh"}
    assert sorted(e.tag for e in region.histories(org, repo)) == ["month", "old"]
    rule_types = {e.tag: json.loads(e.rule_type)["template"] for e in region.histories(org, repo)}
    assert rule_types == {"old": "date_rule", "month": "tag_rule"}

    # The history outlives the policy.
    region.client.delete_retention(DeleteRetentionRequest(org, repo, retention_id))
    assert len(region.histories(org, repo)) == 2


# --- rights and refusals ----------------------------------------------------------------------


def test_a_reader_may_look_but_not_set_or_run_a_policy(region: Region) -> None:
    org, repo = region.new_repo()
    region.push(org, repo, {"a": 3, "b": 2, "c": 1})
    retention_id = region.create(org, repo, tag_rule(5))
    user, password = unique("reader"), unique("pw-")
    region.server.user(user, password)
    listing = f"{region.server.url}/v2/manage/namespaces/{org}/repos/{repo}/retentions"

    # Without any right on the organization, the user does not even see it.
    stranger = {"X-Auth-Token": iam_token(region.server, user, password)}
    response = requests.get(listing, headers=stranger, timeout=30)
    assert (response.status_code, response.json()["error_code"]) == (404, "SVCSTG.SWR.4040058")

    # With read permission: looking is allowed, setting, deleting and running are not.
    region.server.grant(user, org, 1)
    client = sdk_client(region.server, create_key(region.server, user))
    assert [r.id for r in client.list_retentions(ListRetentionsRequest(org, repo)).body] == [retention_id]
    assert client.list_retention_histories(ListRetentionHistoriesRequest(org, repo)).total == 0
    body = UpdateRetentionRequestBody(algorithm="or", rules=[tag_rule(1)])
    assert_sdk_error(
        lambda: client.update_retention(UpdateRetentionRequest(org, repo, retention_id, body)), *FORBIDDEN
    )
    assert_sdk_error(
        lambda: client.delete_retention(DeleteRetentionRequest(org, repo, retention_id)), *FORBIDDEN
    )
    create = CreateRetentionRequestBody(algorithm="or", rules=[tag_rule(1)])
    assert_sdk_error(lambda: client.create_retention(CreateRetentionRequest(org, repo, create)), *FORBIDDEN)
    refused = region.run(org, repo, retention_id, iam_token(region.server, user, password))
    assert (refused.status_code, refused.json()["error_code"]) == FORBIDDEN
    assert region.present(org, repo) == {"a", "b", "c"}  # nothing was deleted by anyone
    shown = region.client.show_retention(ShowRetentionRequest(org, repo, retention_id))
    assert [r.params for r in shown.rules] == [{"num": "5"}]  # and the policy is unchanged


@pytest.mark.parametrize(
    "rules",
    [
        [{"template": "size_rule", "params": {"num": "3"}, "tag_selectors": []}],
        [{"template": "tag_rule", "params": {"num": "-1"}, "tag_selectors": []}],
        [{"template": "tag_rule", "params": {"num": -1}, "tag_selectors": []}],
        [{"template": "tag_rule", "params": {"num": "0"}, "tag_selectors": []}],
        [{"template": "tag_rule", "params": {"num": "1001"}, "tag_selectors": []}],
        [{"template": "tag_rule", "params": {"num": "three"}, "tag_selectors": []}],
        [{"template": "tag_rule", "params": {"num": 2.5}, "tag_selectors": []}],
        [{"template": "tag_rule", "params": {"num": True}, "tag_selectors": []}],
        [{"template": "date_rule", "params": {"num": "3"}, "tag_selectors": []}],
        [{"template": "date_rule", "params": {"days": "366"}, "tag_selectors": []}],
        [
            {
                "template": "tag_rule",
                "params": {"num": "3"},
                "tag_selectors": [{"kind": "glob", "pattern": "v*"}],
            }
        ],
        [
            {
                "template": "tag_rule",
                "params": {"num": "3"},
                "tag_selectors": [{"kind": "regexp", "pattern": "("}],
            }
        ],
        [
            {
                "template": "tag_rule",
                "params": {"num": "3"},
                "tag_selectors": [{"kind": "label", "pattern": ""}],
            }
        ],
        [{"template": "tag_rule", "params": "3", "tag_selectors": []}],
        [],
    ],
)
def test_a_bad_rule_is_swrs_400_and_nothing_is_stored(
    region: Region, invalid_repo: tuple[str, str], rules: list[Any]
) -> None:
    org, repo = invalid_repo
    body = CreateRetentionRequestBody(algorithm="or", rules=rules)
    assert_sdk_error(
        lambda: region.client.create_retention(CreateRetentionRequest(org, repo, body)), *INVALID
    )
    assert region.client.list_retentions(ListRetentionsRequest(org, repo)).body is None


def test_other_bad_requests_are_400_or_404_never_500(region: Region, invalid_repo: tuple[str, str]) -> None:
    org, repo = invalid_repo
    body = CreateRetentionRequestBody(algorithm="and", rules=[tag_rule(3)])
    assert_sdk_error(
        lambda: region.client.create_retention(CreateRetentionRequest(org, repo, body)), *INVALID
    )
    base = f"{region.server.url}/v2/manage/namespaces/{org}/repos/{repo}/retentions"
    headers = {"X-Auth-Token": region.server.admin_token()}
    for method, url, data in [
        ("POST", base, b"not json"),
        ("GET", base + "/abc", None),
        ("PATCH", base + "/-1", None),
        ("POST", base + "/x/run", None),
        ("GET", base + "/histories?filter=limit::0|offset::0", None),
        ("GET", base + "/histories?limit=5", None),
    ]:
        response = requests.request(method, url, data=data, headers=headers, timeout=30)
        assert response.status_code == 400, (method, url, response.text)
        assert response.json()["error_code"].startswith("SVCSTG.SWR.400"), response.text
    for method in ("GET", "DELETE"):
        response = requests.request(method, base + "/999999", headers=headers, timeout=30)
        assert (response.status_code, response.json()["error_code"]) == NOT_FOUND
    missing = f"{region.server.url}/v2/manage/namespaces/{org}/repos/nothere/retentions"
    response = requests.get(missing, headers=headers, timeout=30)
    assert (response.status_code, response.json()["error_code"]) == (404, "SVCSTG.SWR.4040113")


@pytest.fixture(scope="module")
def invalid_repo(region: Region) -> tuple[str, str]:
    return region.new_repo()


# --- the schedule -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    """A region whose schedule looks every second."""
    server = FerryServer(
        tmp_path_factory.mktemp("retention"), free_port(), env={"FERRY_RETENTION_INTERVAL_SECONDS": "1"}
    ).start()
    try:
        yield Region(server, sdk_client(server, create_key(server, "admin")))
    finally:
        server.stop()


def test_the_schedule_runs_policies_without_being_asked(scheduled: Region) -> None:
    org, repo = scheduled.new_repo()
    scheduled.create(org, repo, tag_rule(1))
    scheduled.push(org, repo, {"older": 2, "newer": 1})
    deadline = time.monotonic() + 20
    while "older" in scheduled.present(org, repo) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert scheduled.present(org, repo) == {"newer"}
    assert [e.tag for e in scheduled.histories(org, repo)] == ["older"]
    # The runs and the deletion are counted: one at setting (nothing to delete yet), then the
    # schedule's.
    samples = _samples(scheduled.server)
    assert samples[("ferry_retention_runs_total", "set")] == 1
    assert samples[("ferry_retention_runs_total", "schedule")] >= 1
    assert samples[("ferry_retention_deleted_tags_total", "")] == 1


def _samples(server: FerryServer) -> dict[tuple[str, str], float]:
    response = requests.get(f"{server.url}/metrics", timeout=30)
    assert response.status_code == 200
    return {
        (sample.name, sample.labels.get("trigger", "")): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name.startswith("ferry_retention_")
    }
