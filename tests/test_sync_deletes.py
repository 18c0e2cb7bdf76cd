"""Opt-in deletion sync between real regions: under an organization rule with `syncDeletes`, a
tag deleted in A is deleted in B after the grace period, but only where B's tag holds what a
sync from A wrote; `ferry sync undelete` within the grace period keeps B's tag and puts A's
back; retention's deletions travel only when the rule says so; without the switch nothing is
deleted, as in SWR.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.images import make_image, push_image
from tests.support.regions import Regions, make_regions
from tests.support.server import FerryServer
from tests.support.sync_helpers import (
    create_org_rule,
    jobs,
    manage,
    new_org,
    registry,
    sdk_repo,
    tag_digest,
    wait_for,
    wait_jobs_final,
    wait_tag,
)
from tests.test_sync_faults import ferry_cli

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")

A, B = "cn-north-4", "cn-east-3"
GRACE = 2


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    started = make_regions(tmp_path_factory.mktemp("deletes"), [A, B])
    yield started
    started.stop()


def setup(regions: Regions, **rule: Any) -> str:
    org = new_org(regions[A], regions[B], prefix="deletes")
    create_org_rule(regions[A], org, {"remoteRegionId": B, "remoteNamespace": org, **rule})
    return org


def delete_tag(server: FerryServer, org: str, repo: str, tag: str) -> None:
    response = manage(server).request(
        "DELETE", f"/v2/manage/namespaces/{org}/repos/{sdk_repo(repo)}/tags/{tag}"
    )
    assert response.status_code == 204, response.text


def final_deletion(server: FerryServer, org: str, repo: str, tag: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = [j for j in jobs(server, org, repo) if j["tag"] == tag and j["trigger"] == "delete"]
        return found[-1] if found and found[-1]["status"] not in ("waiting", "running") else None

    return wait_for(probe, f"the deletion of {repo}:{tag} to end", timeout=30)


def test_a_deleted_tag_goes_from_the_target_only_where_the_sync_wrote_it(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    org = setup(regions, syncDeletes=True, deleteGraceSeconds=GRACE)
    name = f"{org}/app"
    ours, theirs, mine = make_image(f"{org}-ours"), make_image(f"{org}-theirs"), make_image(f"{org}-mine")
    push_image(registry(a), name, "v1", ours)
    wait_tag(b, name, "v1", ours.digest)
    # B's own image under `local`: A's push of another there meets override off and leaves it.
    push_image(registry(b), name, "local", theirs)
    push_image(registry(a), name, "local", mine)
    wait_jobs_final(a, org, "app", 2)
    assert tag_digest(b, name, "local") == theirs.digest

    delete_tag(a, org, "app", "v1")
    delete_tag(a, org, "app", "local")
    [waiting] = [j for j in jobs(a, org, "app") if j["tag"] == "v1" and j["trigger"] == "delete"]
    assert waiting["status"] == "waiting" and waiting["digest"] == ours.digest
    assert tag_digest(b, name, "v1") == ours.digest  # the grace period has not passed

    gone = final_deletion(a, org, "app", "v1")
    assert gone["status"] == "success" and "written by a sync from here" in gone["message"], gone["message"]
    assert tag_digest(b, name, "v1") is None
    kept = final_deletion(a, org, "app", "local")
    assert kept["status"] == "existed" and "left alone" in kept["message"], kept
    assert tag_digest(b, name, "local") == theirs.digest


def test_undelete_within_the_grace_period_keeps_the_target_and_restores_the_source(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    org = setup(regions, syncDeletes=True, deleteGraceSeconds=600)
    name = f"{org}/app"
    image = make_image(f"{org}-undo")
    push_image(registry(a), name, "v1", image)
    wait_tag(b, name, "v1", image.digest)
    delete_tag(a, org, "app", "v1")
    assert tag_digest(a, name, "v1") is None

    undone = ferry_cli(a, "sync", "undelete", f"{name}:v1")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert "cancelled 1 deletion" in undone.stdout
    assert tag_digest(a, name, "v1") == image.digest  # back in A, the same image
    [deletion] = [j for j in jobs(a, org, "app") if j["trigger"] == "delete"]
    assert deletion["status"] == "cancel" and "undone by admin" in deletion["message"]
    assert tag_digest(b, name, "v1") == image.digest

    again = ferry_cli(a, "sync", "undelete", f"{name}:v1")
    assert again.returncode == 1 and "no deletion" in again.stdout + again.stderr

    # A push of the tag within the grace period voids its deletion too.
    delete_tag(a, org, "app", "v1")
    push_image(registry(a), name, "v1", image)
    deletions = [j for j in jobs(a, org, "app") if j["trigger"] == "delete"]
    assert [j["status"] for j in deletions] == ["cancel", "cancel"]
    assert "pushed again" in deletions[-1]["message"]


def test_without_the_switch_or_for_retention_nothing_is_deleted(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    plain = setup(regions)
    image = make_image(f"{plain}-plain")
    push_image(registry(a), f"{plain}/app", "v1", image)
    wait_tag(b, f"{plain}/app", "v1", image.digest)
    delete_tag(a, plain, "app", "v1")
    assert [j["trigger"] for j in jobs(a, plain, "app")] == ["auto"]  # no deletion recorded

    # Retention's deletions travel only with syncRetentionDeletes.
    for retention_too in (False, True):
        org = setup(regions, syncDeletes=True, deleteGraceSeconds=GRACE, syncRetentionDeletes=retention_too)
        for i in range(3):
            push_image(registry(a), f"{org}/app", f"r{i}", make_image(f"{org}-r{i}"))
        wait_jobs_final(a, org, "app", 3)
        policy = {
            "algorithm": "or",
            "rules": [{"template": "tag_rule", "params": {"num": "1"}, "tag_selectors": []}],
        }
        created = manage(a).request("POST", f"/v2/manage/namespaces/{org}/repos/app/retentions", policy)
        assert created.status_code == 201, created.text
        deletions = [j for j in jobs(a, org, "app") if j["trigger"] == "delete"]
        assert len(deletions) == (2 if retention_too else 0), deletions
