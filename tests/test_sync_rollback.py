"""Backup before overwrite, between real regions: when a sync copy with `override: true`
replaces a different image under a tag in the target region, the target keeps what it replaced
(an override record, and garbage collection spares that image), and `ferry sync rollback
ORG/REPO:TAG --in REGION` puts it back; a second rollback undoes the first.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.images import make_image, push_image
from tests.support.names import unique
from tests.support.regions import Regions, make_regions
from tests.support.server import FerryServer
from tests.support.sync_helpers import (
    ACCEPT,
    create_org,
    create_repo,
    create_rule,
    manage,
    registry,
    tag_digest,
    wait_jobs_final,
    wait_tag,
)
from tests.test_sync_faults import ferry_cli

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")

A, B = "cn-north-4", "cn-east-3"


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    # No grace period in B: garbage collection there takes every unkept manifest at once.
    started = make_regions(
        tmp_path_factory.mktemp("rollback"), [A, B], region_env={B: {"FERRY_GC_GRACE_SECONDS": "0"}}
    )
    yield started
    started.stop()


def overrides(server: FerryServer, org: str, repo: str, tag: str) -> list[dict[str, Any]]:
    response = manage(server).request("GET", f"/v2/manage/namespaces/{org}/repos/{repo}/tags/{tag}/overrides")
    assert response.status_code == 200, response.text
    return list(response.json())


def manifest_status(server: FerryServer, name: str, digest: str) -> int:
    return registry(server).get(f"/v2/{name}/manifests/{digest}", headers={"Accept": ACCEPT}).status_code


def test_an_override_keeps_the_replaced_image_through_gc_and_rollback_restores_it(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    org, repo = unique("rollback"), "app"
    name = f"{org}/{repo}"
    for server in (a, b):
        create_org(server, org)
    create_repo(a, org, repo)
    assert create_rule(a, org, repo, B, org, sync_auto=True, override=True) == 200

    # B holds its own image under v1; A's push of another replaces it there (override on).
    theirs, ours = make_image(f"{org}-theirs"), make_image(f"{org}-ours")
    push_image(registry(b), name, "v1", theirs)
    push_image(registry(a), name, "v1", ours)
    wait_tag(b, name, "v1", ours.digest)
    [job] = wait_jobs_final(a, org, repo)
    assert job["status"] == "success"

    [record] = overrides(b, org, repo, "v1")
    assert (record["kind"], record["previousDigest"], record["digest"]) == (
        "sync",
        theirs.digest,
        ours.digest,
    )
    assert overrides(a, org, repo, "v1") == []  # the source replaced nothing

    # Garbage collection in B spares the replaced image (now untagged) and takes an untagged
    # one that no override names, so the sparing is the override's doing.
    stray = make_image(f"{org}-stray")
    push_image(registry(b), name, stray.digest, stray)
    collected = json.loads(b.cli("gc", "--json").stdout)
    kinds = {(item["kind"], item["name"].rpartition("@")[2]) for item in collected["items"]}
    assert ("manifest", stray.digest) in kinds and ("manifest", theirs.digest) not in kinds, kinds
    assert manifest_status(b, name, stray.digest) == 404
    assert manifest_status(b, name, theirs.digest) == 200

    # Rollback through the CLI, in region B: the tag points at B's own image again.
    done = ferry_cli(b, "sync", "rollback", f"{name}:v1", "--in", B)
    assert done.returncode == 0, done.stdout + done.stderr
    assert tag_digest(b, name, "v1") == theirs.digest
    assert f"{ours.digest} → {theirs.digest}" in done.stdout.replace("\n", "")
    newest = overrides(b, org, repo, "v1")[0]
    assert (newest["kind"], newest["previousDigest"], newest["digest"]) == (
        "rollback",
        ours.digest,
        theirs.digest,
    )
    assert newest["operatorName"] == "admin"

    # A second rollback undoes the first; the listing shows the three moves, newest first.
    again = manage(b).request("POST", f"/v2/manage/namespaces/{org}/repos/{repo}/tags/v1/rollback")
    assert again.status_code == 200, again.text
    assert tag_digest(b, name, "v1") == ours.digest
    assert [r["kind"] for r in overrides(b, org, repo, "v1")] == ["rollback", "rollback", "sync"]

    # A push by hand that replaces the tag is no sync override: nothing new is recorded.
    push_image(registry(b), name, "v1", make_image(f"{org}-by-hand"))
    assert len(overrides(b, org, repo, "v1")) == 3
    listed = ferry_cli(b, "sync", "overrides", f"{name}:v1", "--json")
    assert [r["kind"] for r in json.loads(listed.stdout)] == ["rollback", "rollback", "sync"]


def test_nothing_to_roll_back_is_a_clear_swr_404(regions: Regions) -> None:
    a = regions[A]
    org = unique("rollback")
    create_org(a, org)
    push_image(registry(a), f"{org}/app", "v1", make_image(f"{org}-only"))
    response = manage(a).request("POST", f"/v2/manage/namespaces/{org}/repos/app/tags/v1/rollback")
    assert response.status_code == 404, response.text
    assert response.json()["error_code"] == "SVCSTG.SWR.4040083"
    assert "no override" in response.json()["error_msg"]
    missing = manage(a).request("POST", f"/v2/manage/namespaces/{org}/repos/app/tags/nope/rollback")
    assert missing.status_code == 404 and missing.json()["error_code"] == "SVCSTG.SWR.4040115"
    bad = manage(a).request(
        "POST", f"/v2/manage/namespaces/{org}/repos/app/tags/v1/rollback", {"digest": "not-a-digest"}
    )
    assert bad.status_code == 400 and bad.json()["error_code"] == "SVCSTG.SWR.4001025"
    cli = ferry_cli(a, "sync", "rollback", f"{org}/app:v1")
    assert cli.returncode == 1 and "no override" in cli.stdout + cli.stderr
