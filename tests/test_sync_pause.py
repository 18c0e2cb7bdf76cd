"""Pause and resume between real regions: a paused rule's copies wait (and say so) while other
copies run, and go at once when resumed; an organization rule pauses by id; the region's
operator pauses every copy to a peer.
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
    create_repo,
    create_rule,
    jobs,
    manage,
    manual_sync,
    new_org,
    org_rules_path,
    registry,
    sdk_repo,
    tag_digest,
    wait_for,
    wait_tag,
)
from tests.test_sync_faults import ferry_cli

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")

A, B = "cn-north-4", "cn-east-3"


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    started = make_regions(tmp_path_factory.mktemp("pause"), [A, B])
    yield started
    started.stop()


def orgs(regions: Regions) -> str:
    return new_org(regions[A], regions[B], prefix="pause")


def states(server: FerryServer, org: str, repo: str) -> dict[str, dict[str, Any]]:
    path = f"/v2/manage/namespaces/{org}/repos/{sdk_repo(repo)}/sync_state"
    return {s["tag"]: s for s in manage(server).request("GET", path).json()["tags"]}


def test_a_paused_rule_holds_its_copies_while_others_run_and_resume_lets_them_go(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    org = orgs(regions)
    for repo in ("held", "free"):
        create_repo(a, org, repo)
        assert create_rule(a, org, repo, B, org, sync_auto=True) == 200

    paused = ferry_cli(a, "sync", "pause", f"{org}/held", "--to", f"{B}/{org}")
    assert paused.returncode == 0, paused.stdout + paused.stderr
    assert f"copies from {org}/held to {B}/{org}" in paused.stdout

    held = {f"v{i}": make_image(f"{org}-held-{i}") for i in range(3)}
    for tag, image in held.items():
        push_image(registry(a), f"{org}/held", tag, image)
    free = make_image(f"{org}-free")
    push_image(registry(a), f"{org}/free", "v0", free)

    # The other repository's copy ran (the workers are busy, not stopped) ...
    wait_tag(b, f"{org}/free", "v0", free.digest)
    # ... and the paused one's copies were never tried: waiting, in place, said to be paused.
    assert {(j["tag"], j["status"], j["attempts"]) for j in jobs(a, org, "held")} == {
        (tag, "waiting", 0) for tag in held
    }
    for tag in held:
        assert tag_digest(b, f"{org}/held", tag) is None
        state = states(a, org, "held")[tag]
        assert (state["state"], state["phase"]) == ("pending", "paused"), state
    path = f"/v2/manage/namespaces/{org}/repos/held/sync_explain"
    explained = manage(a).request("GET", path, params={"tag": "v0", "target": f"{B}/{org}"}).json()
    assert explained["next"].startswith("paused: admin paused it"), explained["next"]
    assert f"ferry sync resume {org}/held --to {B}/{org}" in explained["next"]

    resumed = ferry_cli(a, "sync", "resume", f"{org}/held", "--to", f"{B}/{org}")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    for tag, image in held.items():
        wait_tag(b, f"{org}/held", tag, image.digest, timeout=10)

    # Pausing a rule that does not exist says so, in SWR's format.
    body = {"remoteRegionId": B, "remoteNamespace": "nowhere"}
    refused = manage(a).request("POST", f"/v2/manage/namespaces/{org}/repos/held/sync_repo/pause", body)
    assert refused.status_code == 404 and refused.json()["error_code"] == "SVCSTG.SWR.4040083"


def test_an_organization_rule_pauses_by_id_and_shows_it(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    org = orgs(regions)
    rule = create_org_rule(a, org, {"remoteRegionId": B, "remoteNamespace": org})
    rules_path = org_rules_path(org)

    answer = manage(a).request("POST", f"{rules_path}/{rule['id']}/pause")
    assert answer.status_code == 200 and answer.json()["paused"] is True, answer.text
    assert [r["paused"] for r in manage(a).request("GET", rules_path).json()] == [True]
    image = make_image(f"{org}-org-paused")
    push_image(registry(a), f"{org}/made-by-push", "v1", image)
    assert [(j["status"], j["attempts"]) for j in jobs(a, org, "made-by-push")] == [("waiting", 0)]

    answer = manage(a).request("POST", f"{rules_path}/{rule['id']}/resume")
    assert answer.status_code == 200 and answer.json()["paused"] is False, answer.text
    wait_tag(b, f"{org}/made-by-push", "v1", image.digest, timeout=10)
    assert [r["paused"] for r in manage(a).request("GET", rules_path).json()] == [False]


def test_the_operator_pauses_every_copy_to_a_peer(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    org = orgs(regions)
    images = {f"m{i}": make_image(f"{org}-peer-{i}") for i in range(2)}
    for tag, image in images.items():
        push_image(registry(a), f"{org}/app", tag, image)

    assert "paused every copy to" in a.cli("peer", "pause", B).stdout
    try:
        assert manual_sync(a, org, "app", list(images), B, org) == []
        listed = a.cli("peer", "list").stdout
        assert B in listed and "operator" in listed
        # Held: the jobs stay waiting and untried across several of the workers' polls.
        wait_for(
            lambda: all(s["phase"] == "paused" for s in states(a, org, "app").values()) or None,
            "the manual sync's tags to show as paused",
        )
        assert all(j["attempts"] == 0 for j in jobs(a, org, "app"))
        assert "not a peer" in a.cli("peer", "pause", "nowhere", check=False).stdout
    finally:
        assert "resumed every copy to" in a.cli("peer", "resume", B).stdout
    for tag, image in images.items():
        wait_tag(b, f"{org}/app", tag, image.digest, timeout=10)
