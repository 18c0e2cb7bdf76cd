"""Organization rules between real regions: a rule on a whole organization copies repositories
created after it by their first push, its filters include and exclude repositories and tags in
both syntaxes (globs with `**` and `{a,b}`, `re:` regular expressions), and SWR's six sync
operations, through the official SDK, keep their shapes beside it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huaweicloudsdkswr.v2 import ListImageAutoSyncReposDetailsRequest

from tests.support.images import make_image, push_image
from tests.support.regions import Regions, make_regions
from tests.support.sync_helpers import (
    create_org_rule,
    create_repo,
    create_rule,
    image_layout,
    jobs,
    manage,
    new_org,
    push_layout_image,
    registry,
    sdk,
    sdk_repo,
    tag_digest,
    wait_for,
    wait_jobs_final,
    wait_tag,
)
from tests.test_sync_faults import ferry_cli

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")

A, B = "cn-north-4", "cn-east-3"
SWR_RULE_FIELDS = {
    "createdAt",
    "domainID",
    "domainName",
    "id",
    "namespace",
    "override",
    "remoteNamespace",
    "remoteRegionId",
    "repoName",
    "syncAuto",
    "updatedAt",
}


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    started = make_regions(tmp_path_factory.mktemp("org-rules"), [A, B])
    yield started
    started.stop()


def orgs(regions: Regions) -> str:
    return new_org(regions[A], regions[B], prefix="orgrule")


def org_rule_body(org: str, repositories: Any = None, tags: Any = None, **extra: Any) -> dict[str, Any]:
    filters = {"repositories": repositories or {}, "tags": tags or {}}
    return {"remoteRegionId": B, "remoteNamespace": org, "filters": filters, **extra}


def test_an_organization_rule_copies_a_repository_created_later_by_its_first_push(
    regions: Regions, tmp_path: Path
) -> None:
    a, b = regions[A], regions[B]
    org = orgs(regions)
    rule = create_org_rule(a, org, org_rule_body(org))
    assert (rule["remoteRegionId"], rule["remoteNamespace"], rule["syncAuto"]) == (B, org, True)
    listed = manage(a).request("GET", f"/v2/manage/namespaces/{org}/sync_rules").json()
    assert [r["id"] for r in listed] == [rule["id"]]

    # The repository does not exist in either region until skopeo's push creates it in A.
    repo = "svc/api"
    assert tag_digest(a, f"{org}/{repo}", "v1") is None
    image = image_layout(tmp_path / "v1", [("org-rule-first-push", 30_000)])
    push_layout_image(a, image, f"{org}/{repo}", "v1")

    wait_tag(b, f"{org}/{repo}", "v1", image.digest)
    [job] = wait_jobs_final(a, org, repo)
    assert (job["tag"], job["trigger"], job["status"]) == ("v1", "auto", "success")

    # Ferry's explain names the rule that applies and where it comes from.
    path = f"/v2/manage/namespaces/{org}/repos/{sdk_repo(repo)}/sync_explain"
    explained = manage(a).request("GET", path, params={"tag": "v1", "target": f"{B}/{org}"}).json()
    assert [(r["scope"], r["organizationRuleId"]) for r in explained["rules"]] == [
        ("organization", rule["id"])
    ]
    assert explained["state"]["state"] == "in-sync"

    # SWR's per-repository list, through the official SDK, still has SWR's shape: no organization
    # rule in it, and a repository rule beside the organization rule lists as SWR's.
    request = ListImageAutoSyncReposDetailsRequest(namespace=org, repository=sdk_repo(repo))
    assert sdk(a).list_image_auto_sync_repos_details(request).body in (None, [])
    create_repo(a, org, "plain")
    assert create_rule(a, org, "plain", B, org, sync_auto=True, override=True) == 200
    response = manage(a).request("GET", f"/v2/manage/namespaces/{org}/repos/plain/sync_repo")
    [swr_rule] = response.json()
    assert set(swr_rule) == SWR_RULE_FIELDS
    listed_by_sdk = sdk(a).list_image_auto_sync_repos_details(
        ListImageAutoSyncReposDetailsRequest(namespace=org, repository="plain")
    )
    [row] = listed_by_sdk.body
    assert (row.remote_region_id, row.remote_namespace, row.sync_auto, row.override) == (B, org, True, True)

    # The repository rule alone applies where both name the same target: one job per push.
    push_image(registry(a), f"{org}/plain", "v1", make_image(f"{org}-plain"))
    [plain_job] = wait_jobs_final(a, org, "plain")
    assert (plain_job["trigger"], plain_job["override"], plain_job["status"]) == ("auto", True, "success")


# (repository, tag, copied?) against the filters below.
MATRIX = [
    ("team/web", "v1.0", True),
    ("team/web", "release-7", True),  # a tag regex include
    ("team/web", "v1.0-rc1", False),  # a tag regex exclude
    ("team/web", "v2.3-debug", False),  # a tag glob exclude
    ("team/web", "v3.0", False),  # no tag include matches
    ("team/deep/api", "v2.1", True),  # `**` crosses `/`
    ("team/legacy-app", "v1.0", False),  # a repository glob exclude
    ("svc-12", "v2.0", True),  # a repository regex include
    ("svc-x", "v1.0", False),  # the regex must match the whole name
    ("other", "v1.0", False),  # no repository include matches
]
FILTERS = {
    "repositories": {"include": ["team/**", r"re:svc-\d+"], "exclude": ["team/legacy*"]},
    "tags": {"include": ["v{1,2}.*", r"re:release-\d+"], "exclude": [r"re:.*-rc\d*", "*-debug"]},
}


def test_filters_include_and_exclude_repositories_and_tags_in_both_syntaxes(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    org = orgs(regions)
    rule = create_org_rule(a, org, org_rule_body(org, FILTERS["repositories"], FILTERS["tags"]))
    assert rule["filters"] == FILTERS

    images = {(repo, tag): make_image(f"{org}-{repo}-{tag}") for repo, tag, _ in MATRIX}
    for (repo, tag), image in images.items():
        push_image(registry(a), f"{org}/{repo}", tag, image)

    copied = {(repo, tag) for repo, tag, wanted in MATRIX if wanted}
    for repo, tag in sorted(copied):
        wait_tag(b, f"{org}/{repo}", tag, images[(repo, tag)].digest)
    # Jobs are recorded in the push's own transaction: once the pushes answered, the records are
    # complete, so a tag without one was never going to be copied.
    recorded = {(repo, job["tag"]): job for repo in {r for r, _, _ in MATRIX} for job in jobs(a, org, repo)}
    assert set(recorded) == copied
    for repo, tag, wanted in MATRIX:
        if not wanted:
            assert tag_digest(b, f"{org}/{repo}", tag) is None, f"{repo}:{tag} reached {B}"

    # The replication state says which tags the filter leaves out, and why.
    path = f"/v2/manage/namespaces/{org}/repos/{sdk_repo('team/web')}/sync_state"
    states = {s["tag"]: s for s in manage(a).request("GET", path).json()["tags"]}
    assert states["v1.0"]["state"] == "in-sync"
    for tag in ("v1.0-rc1", "v2.3-debug", "v3.0"):
        assert states[tag]["state"] == "excluded", states[tag]
        assert "tag filter" in states[tag]["message"]
    # A repository the repository filter leaves out has no target at all.
    path = f"/v2/manage/namespaces/{org}/repos/{sdk_repo('team/legacy-app')}/sync_state"
    assert manage(a).request("GET", path).json()["tags"] == []


def test_existing_tags_are_queued_on_request_and_a_deleted_rule_copies_no_more(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    org = orgs(regions)
    before = {tag: make_image(f"{org}-old-{tag}") for tag in ("v1", "v2", "dev")}
    for tag, image in before.items():
        push_image(registry(a), f"{org}/app", tag, image)

    rule = create_org_rule(a, org, org_rule_body(org, tags={"include": ["v*"]}, syncExisting=True))
    assert rule["queuedJobs"] == 2
    for tag in ("v1", "v2"):
        wait_tag(b, f"{org}/app", tag, before[tag].digest)
    assert {(j["tag"], j["trigger"]) for j in wait_jobs_final(a, org, "app", 2)} == {
        ("v1", "manual"),
        ("v2", "manual"),
    }
    assert tag_digest(b, f"{org}/app", "dev") is None

    response = manage(a).request("DELETE", f"/v2/manage/namespaces/{org}/sync_rules/{rule['id']}")
    assert response.status_code == 204, response.text
    assert manage(a).request("GET", f"/v2/manage/namespaces/{org}/sync_rules").json() == []
    push_image(registry(a), f"{org}/app", "v3", make_image(f"{org}-after-delete"))
    assert len(jobs(a, org, "app")) == 2  # the push recorded no job

    again = manage(a).request("DELETE", f"/v2/manage/namespaces/{org}/sync_rules/{rule['id']}")
    assert again.status_code == 404 and again.json()["error_code"] == "SVCSTG.SWR.4040083"


@pytest.mark.parametrize(
    ("filters", "words"),
    [
        ({"tags": {"include": ["re:(unclosed"]}}, "filters.tags.include[0] is not a regular expression"),
        ({"repositories": {"exclude": ["x" * 300]}}, "filters.repositories.exclude[0] must be a pattern"),
        ({"tags": {"include": "v*"}}, "include"),
    ],
)
def test_a_bad_filter_is_refused_in_swr_format(regions: Regions, filters: Any, words: str) -> None:
    org = orgs(regions)
    body = {"remoteRegionId": B, "remoteNamespace": org, "filters": filters}
    response = manage(regions[A]).request("POST", f"/v2/manage/namespaces/{org}/sync_rules", body)
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] in {"SVCSTG.SWR.4001025", "SVCSTG.SWR.4000001"}
    assert words in response.json()["error_msg"]
    assert manage(regions[A]).request("GET", f"/v2/manage/namespaces/{org}/sync_rules").json() == []


def test_the_cli_adds_lists_and_removes_an_organization_rule(regions: Regions) -> None:
    a = regions[A]
    org = orgs(regions)
    added = ferry_cli(
        a, "sync", "org", "add", org, "--to", f"{B}/{org}", "--repo", "team/**", "--exclude-tag", "re:.*-rc"
    )
    assert added.returncode == 0, added.stderr
    listed = ferry_cli(a, "sync", "org", "list", org, "--json")
    assert listed.returncode == 0, listed.stderr
    [rule] = json.loads(listed.stdout)
    assert rule["filters"]["repositories"]["include"] == ["team/**"]
    assert rule["filters"]["tags"]["exclude"] == ["re:.*-rc"]
    table = ferry_cli(a, "sync", "org", "list", org)
    assert table.returncode == 0 and "re:.*-rc" in table.stdout and "organization rules of" in table.stdout

    bad = ferry_cli(a, "sync", "org", "add", org, "--to", f"{B}/{org}", "--tag", "re:(")
    assert bad.returncode == 1 and "not a regular expression" in bad.stdout + bad.stderr

    removed = ferry_cli(a, "sync", "org", "remove", org, str(rule["id"]))
    assert removed.returncode == 0, removed.stderr
    assert json.loads(ferry_cli(a, "sync", "org", "list", org, "--json").stdout) == []


def test_deleting_an_organization_rule_cancels_its_waiting_jobs_but_not_a_repository_rules(
    tmp_path: Path,
) -> None:
    regions = make_regions(tmp_path, [A, B])
    try:
        a, b = regions[A], regions[B]
        org = orgs(regions)
        rule = create_org_rule(a, org, org_rule_body(org))
        create_repo(a, org, "own")
        assert create_rule(a, org, "own", B, org, sync_auto=True) == 200
        b.stop()  # every copy to B now waits, retrying
        push_image(registry(a), f"{org}/app", "v1", make_image(f"{org}-waiting-app"))
        push_image(registry(a), f"{org}/own", "v1", make_image(f"{org}-waiting-own"))
        # Tried once, found B down, and waiting for B to answer again (held, not running).
        wait_for(
            lambda: [j for j in jobs(a, org, "app") if j["status"] == "waiting" and j["attempts"] >= 1],
            "the job to wait for B",
        )

        response = manage(a).request("DELETE", f"/v2/manage/namespaces/{org}/sync_rules/{rule['id']}")
        assert response.status_code == 204, response.text
        [cancelled] = jobs(a, org, "app")
        assert cancelled["status"] == "cancel"
        assert "organization sync rule" in cancelled["message"] and "admin" in cancelled["message"]
        # The repository's own rule still calls for its copy.
        assert [j["status"] for j in jobs(a, org, "own")] in (["waiting"], ["running"])
    finally:
        regions.stop()
