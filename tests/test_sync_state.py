"""Replication state, explain and wait, against real regions: a source (A), a live peer (B) and
a peer that is down (C: its port closed once the rules are made).

Five cases, each in an organization of its own, each read through the API and the CLI: a tag in
sync; a tag pending behind the dead peer; a conflict with override off; a failed job (the target
organization deleted); a tag that moved twice while its job was queued. Results come from the
APIs and /metrics, never from logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from huaweicloudsdkswr.v2 import DeleteNamespacesRequest

from ferry.metadata.models import SyncRule
from ferry.names import ImageName
from ferry.sync import replication as r
from ferry.sync.explain import next_step
from tests.support.images import make_image, push_image
from tests.support.names import unique
from tests.support.regions import ACCESS_KEY, SECRET_KEY, Regions, make_regions
from tests.support.server import FerryServer
from tests.support.sync_helpers import (
    create_org,
    create_repo,
    create_rule,
    jobs,
    manage,
    manual_sync,
    registry,
    sdk,
    tag_digest,
    wait_for,
)
from tests.test_metrics import scrape, value

A, B, C = "cn-north-4", "cn-east-3", "cn-south-1"
REPO = "app"


@dataclass
class World:
    regions: Regions
    orgs: dict[str, str]  # case → organization
    digests: dict[str, str]  # case → digest pushed to A (the newest)
    tmp: Path

    @property
    def a(self) -> FerryServer:
        return self.regions[A]


def push(server: FerryServer, org: str, seed: str, tag: str = "v1") -> str:
    image = make_image(seed)
    push_image(registry(server), f"{org}/{REPO}", tag, image)
    return image.digest


def api(world: World, org: str, what: str, **params: Any) -> dict[str, Any]:
    path = f"/v2/manage/namespaces/{org}/repos/{REPO}/{what}"
    response = manage(world.a).request("GET", path, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def state_of(world: World, case: str, target: str) -> dict[str, Any]:
    org = world.orgs[case]
    found = api(world, org, "sync_state", tag="v1", target=f"{target}/{org}")["tags"]
    assert len(found) == 1, found
    return dict(found[0])


def ferry(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    """`ferry ARGS` against region A with explicit endpoint and keys (no FERRY_* from the tests)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    connection = ["--endpoint", world.a.url, "--ak", ACCESS_KEY, "--sk", SECRET_KEY]
    return subprocess.run(
        [sys.executable, "-m", "ferry", *args, *connection],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=world.tmp,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("state")
    # Long enough that the dead peer's jobs keep retrying for the whole module.
    regions = make_regions(root, [A, B, C], region_env={A: {"FERRY_SYNC_RETRY_SECONDS": "600"}})
    try:
        orgs = {case: unique(case) for case in ("insync", "dead", "conflict", "failed", "moved")}
        for server in (regions[A], regions[B], regions[C]):
            for org in orgs.values():
                create_org(server, org)
        for org in orgs.values():
            create_repo(regions[A], org, REPO)
        # B already holds its own image under conflict's tag: the sync did not write it.
        theirs = push(regions[B], orgs["conflict"], "theirs")
        assert create_rule(regions[A], orgs["insync"], REPO, B, orgs["insync"]) == 200
        assert create_rule(regions[A], orgs["dead"], REPO, B, orgs["dead"]) == 200
        assert create_rule(regions[A], orgs["dead"], REPO, C, orgs["dead"]) == 200
        assert create_rule(regions[A], orgs["conflict"], REPO, B, orgs["conflict"]) == 200
        assert create_rule(regions[A], orgs["failed"], REPO, B, orgs["failed"]) == 200
        assert create_rule(regions[A], orgs["moved"], REPO, C, orgs["moved"]) == 200
        regions[C].stop()  # the dead peer: nothing listens on its port from now on
        sdk(regions[B]).delete_namespaces(DeleteNamespacesRequest(namespace=orgs["failed"]))
        digests = {case: push(regions[A], org, f"{case}-one") for case, org in orgs.items()}
        digests["theirs"] = theirs
        yield World(regions, orgs, digests, root)
    finally:
        regions.stop()


@pytest.fixture(scope="module")
def moved(world: World) -> list[str]:
    """The moved case: its tag moved twice while the job waited for the dead peer."""
    org = world.orgs["moved"]

    def retrying() -> dict[str, Any] | None:
        # Waiting for a retry at least half a second away: both moves land while it waits.
        found = state_of(world, "moved", C)
        if found["phase"] != "retrying" or found["attempt"] < 2:
            return None
        later = datetime.fromisoformat(found["nextAttemptAt"]) - datetime.now(UTC)
        return found if later.total_seconds() > 0.5 else None

    wait_for(retrying, "the moved case's job to wait for a retry")
    two = push(world.a, org, "moved-two")
    three = push(world.a, org, "moved-three")
    world.digests["moved"] = three
    return [two, three]


def test_a_tag_in_sync(world: World, moved: list[str]) -> None:
    org, digest = world.orgs["insync"], world.digests["insync"]
    waited = ferry(world, "sync", "wait", f"{org}/{REPO}:v1", "--timeout", "60")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert f"in sync in {B}/{org}" in waited.stdout
    found = state_of(world, "insync", B)
    assert (found["state"], found["digest"], found["targetDigest"]) == ("in-sync", digest, digest)
    assert found["visibleAt"]
    explained = api(world, org, "sync_explain", tag="v1", target=f"{B}/{org}")
    assert explained["next"].startswith("nothing to do: in sync since "), explained["next"]
    assert explained["currentTargetDigest"] == digest
    assert [rule["remoteRegionId"] for rule in explained["rules"]] == [B]
    (job,) = explained["jobs"]
    assert job["reason"] is None and job["writtenDigest"] == digest
    assert any(s.startswith("attempt 1: blob ") and "uploaded" in s for s in job["steps"]), job["steps"]
    assert f"attempt 1: verified: v1 resolves to {digest}" in job["steps"]
    shown = ferry(world, "sync", "explain", f"{org}/{REPO}:v1", "--to", f"{B}/{org}")
    assert shown.returncode == 0, shown.stderr
    assert "nothing to do: in sync since" in shown.stdout and f"target holds now: {digest}" in shown.stdout
    status = ferry(world, "sync", "status", f"{org}/{REPO}", "--json")
    assert status.returncode == 0, status.stderr
    assert [t["state"] for t in json.loads(status.stdout)["tags"]] == ["in-sync"]


def test_a_tag_pending_behind_the_dead_peer(world: World) -> None:
    org = world.orgs["dead"]
    wait_for(lambda: state_of(world, "dead", B)["state"] == "in-sync", "the live peer's copy")

    def retrying() -> dict[str, Any] | None:
        found = state_of(world, "dead", C)
        return found if found["phase"] == "retrying" else None

    found = wait_for(retrying, "the dead peer's job to be retrying")
    assert (found["state"], found["reason"]) == ("pending", "unreachable"), found
    assert found["attempt"] >= 1 and found["nextAttemptAt"]
    # The long poll returns when its time is up, still pending, saying why.
    answer = api(world, org, "sync_wait", tag="v1", target=f"{C}/{org}", timeout="1")
    assert answer["done"] is False and answer["waitedSeconds"] >= 0.9
    assert [(s["state"], s["reason"]) for s in answer["states"]] == [("pending", "unreachable")]
    explained = api(world, org, "sync_explain", tag="v1", target=f"{C}/{org}")
    sentence = explained["next"]
    # Retrying, or (its retry time come) queued or running again: each names the last failure.
    assert sentence.startswith(("retrying in ", "queued: ", "copying now: ")), sentence
    assert f"region {C} unreachable" in sentence, sentence
    assert explained["currentTargetDigest"] is None
    assert "unreachable" in explained["currentTargetError"]
    assert any("failed: region" in s for s in explained["jobs"][0]["steps"])
    waited = ferry(world, "sync", "wait", f"{org}/{REPO}:v1", "--timeout", "2")
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert f"not in sync: {C}/{org}: pending" in waited.stdout and "unreachable" in waited.stdout
    # The named live target is in sync, so waiting for it alone succeeds.
    assert ferry(world, "sync", "wait", f"{org}/{REPO}:v1", "--to", f"{B}/{org}").returncode == 0
    status = ferry(world, "sync", "status", f"{org}/{REPO}:v1")
    assert status.returncode == 0 and "pending" in status.stdout and "in-sync" in status.stdout


def test_a_conflict_with_override_off(world: World) -> None:
    org = world.orgs["conflict"]
    found = wait_for(
        lambda: (s := state_of(world, "conflict", B))["state"] == "conflict" and s, "the conflict"
    )
    assert found["reason"] == "conflict" and found["targetDigest"] == world.digests["theirs"]
    assert tag_digest(world.regions[B], f"{org}/{REPO}", "v1") == world.digests["theirs"]
    explained = api(world, org, "sync_explain", tag="v1", target=f"{B}/{org}")
    assert explained["next"].startswith(f"left alone: {B} holds another image and override is off")
    assert explained["currentTargetDigest"] == world.digests["theirs"]
    # Nothing is pending, so the wait answers at once, not done.
    answer = api(world, org, "sync_wait", tag="v1", timeout="30")
    assert answer["done"] is False and answer["waitedSeconds"] < 5
    waited = ferry(world, "sync", "wait", f"{org}/{REPO}:v1", "--timeout", "30")
    assert waited.returncode == 1 and "conflict" in waited.stdout, waited.stdout


def test_a_failed_job_when_the_target_organization_is_gone(world: World) -> None:
    org = world.orgs["failed"]
    found = wait_for(lambda: (s := state_of(world, "failed", B))["state"] == "failed" and s, "the failure")
    assert found["reason"] == "target_org_missing", found
    explained = api(world, org, "sync_explain", tag="v1", target=f"{B}/{org}")
    sentence = explained["next"]
    assert sentence.startswith(f"will not retry: target organization missing in {B}"), sentence
    assert f"ferry sync now {org}/{REPO} v1 --to {B}/{org}" in sentence
    assert explained["jobs"][0]["status"] == "failed"
    shown = ferry(world, "sync", "explain", f"{org}/{REPO}:v1", "--to", f"{B}/{org}", "--json")
    assert json.loads(shown.stdout)["next"] == sentence
    waited = ferry(world, "sync", "wait", f"{org}/{REPO}:v1", "--timeout", "30")
    assert waited.returncode == 1 and "target_org_missing" in waited.stdout, waited.stdout


def test_the_metric_counts_tags_per_state_and_target(world: World, moved: list[str]) -> None:
    orgs = world.orgs

    def counted() -> bool:
        samples = scrape(world.a.url)
        expected = {
            ("in-sync", f"{B}/{orgs['insync']}"): 1,
            ("pending", f"{C}/{orgs['dead']}"): 1,
            ("conflict", f"{B}/{orgs['conflict']}"): 1,
            ("failed", f"{B}/{orgs['failed']}"): 1,
            ("pending", f"{C}/{orgs['moved']}"): 1,
        }
        return all(
            value(samples, "ferry_sync_tags", state=state, target=target) == count
            for (state, target), count in expected.items()
        )

    wait_for(counted, "ferry_sync_tags for every case")


def test_a_tag_that_moved_twice_while_queued(world: World, moved: list[str]) -> None:
    org = world.orgs["moved"]
    ours = [j for j in jobs(world.a, org, REPO) if j["tag"] == "v1"]
    assert len(ours) == 1 and ours[0]["status"] == "waiting", ours  # coalesced: one job for 3 moves
    found = state_of(world, "moved", C)
    assert found["state"] == "pending" and found["digest"] == moved[-1]
    world.regions[C].start()  # the peer comes back
    waited = ferry(world, "sync", "wait", f"{org}/{REPO}:v1", "--timeout", "75")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    found = state_of(world, "moved", C)
    assert (found["state"], found["digest"], found["copiedDigest"]) == ("in-sync", moved[-1], moved[-1])
    assert tag_digest(world.regions[C], f"{org}/{REPO}", "v1") == moved[-1]
    (job,) = api(world, org, "sync_explain", tag="v1", target=f"{C}/{org}")["jobs"]
    assert job["status"] == "success" and job["attempts"] >= 3
    assert any("failed: region" in s for s in job["steps"]) and any("written" in s for s in job["steps"])


def test_a_tag_behind_after_it_moved_under_a_manual_rule(world: World) -> None:
    """A rule that is not automatic: a manual sync copies v1; v1 then moves at the source."""
    org = unique("behind")
    for server in (world.a, world.regions[B]):
        create_org(server, org)
    create_repo(world.a, org, REPO)
    assert create_rule(world.a, org, REPO, B, org, sync_auto=False) == 200
    first = push(world.a, org, "behind-one")
    assert manual_sync(world.a, org, REPO, ["v1"], B, org) == []
    waited = ferry(world, "sync", "wait", f"{org}/{REPO}:v1", "--timeout", "60")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    second = push(world.a, org, "behind-two")  # no job: the rule is manual
    found = api(world, org, "sync_state", tag="v1", target=f"{B}/{org}")["tags"][0]
    assert (found["state"], found["digest"], found["copiedDigest"]) == ("behind", second, first)
    explained = api(world, org, "sync_explain", tag="v1", target=f"{B}/{org}")
    assert explained["currentTargetDigest"] == first
    assert explained["next"].startswith("not copied: the target holds an older digest"), explained["next"]
    # Nothing will change by itself: wait says so at once instead of sitting out its timeout.
    waited = ferry(world, "sync", "wait", f"{org}/{REPO}:v1", "--timeout", "60")
    assert waited.returncode != 0 and "behind" in waited.stdout, waited.stdout


def test_errors_say_what_is_wrong(world: World) -> None:
    org = world.orgs["insync"]
    base = f"/v2/manage/namespaces/{org}/repos/{REPO}"
    session = manage(world.a)
    missing = session.request("GET", base + "/sync_explain", params={"tag": "nope", "target": f"{B}/{org}"})
    assert missing.status_code == 404 and "nope" in missing.json()["error_msg"]
    unknown = session.request("GET", f"/v2/manage/namespaces/{org}/repos/none/sync_state")
    assert unknown.status_code == 404
    bad = session.request("GET", base + "/sync_state", params={"target": "nowhere/x"})
    assert bad.status_code == 400 and "valid target regions" in bad.json()["error_msg"]
    # A tag nothing replicates: no rule to that target, no job.
    lonely = session.request("GET", base + "/sync_wait", params={"tag": "v1", "target": f"{C}/{org}"})
    assert lonely.status_code == 400 and "no sync rule or sync job" in lonely.json()["error_msg"]


def test_the_next_step_sentence_for_a_queued_and_a_running_job() -> None:
    """The phases the live cases pass through too quickly to catch, and a manual-only rule."""
    target, source = r.Target(B, "team"), ImageName("team", "app")
    base = r.TagState(1, "v1", target, r.PENDING, "sha256:" + "1" * 64)
    queued = r.TagState(**{**base.__dict__, "phase": "queued", "position": 3})
    running = r.TagState(**{**base.__dict__, "phase": "running", "attempt": 2, "bytes_sent": 1258291})
    manual = SyncRule(remote_region_id=B, remote_namespace="team", sync_auto=False, override=False)
    never = r.TagState(**{**base.__dict__, "state": r.NOT_SYNCED})
    assert next_step(queued, [], source, target) == "queued: 3 jobs ahead"
    assert next_step(running, [], source, target) == "copying now: attempt 2, 1.2 MiB sent"
    failed_before = {"reason": "unreachable"}
    assert next_step(replace(queued, **failed_before), [], source, target) == (
        f"queued: 3 jobs ahead; the last attempt failed: region {B} unreachable"
    )
    assert next_step(replace(running, **failed_before), [], source, target).endswith(
        f"; the attempt before failed: region {B} unreachable"
    )
    assert next_step(never, [manual], source, target).startswith(
        "not copied: the rule is not automatic; run a manual sync: `ferry sync now team/app v1 --to"
    )
