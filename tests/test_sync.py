"""Image sync between regions, end to end: real Ferry processes per region on loopback.

Rules and manual syncs go through Huawei Cloud's official SWR SDK; images go in with skopeo or the
raw registry API; what arrives is read back from the target region's registry. Sync records are
read through the management API (raw JSON, for the fields the SDK model drops).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huaweicloudsdkswr.v2 import (
    CreateImageSyncRepoRequest,
    CreateImageSyncRepoRequestBody,
    CreateRepoTagRequest,
    CreateRepoTagRequestBody,
    DeleteImageSyncRepoRequest,
    DeleteImageSyncRepoRequestBody,
    DeleteNamespacesRequest,
    DeleteRepoTagRequest,
    ListImageAutoSyncReposDetailsRequest,
    ListSyncRegionsRequest,
    ShowSyncJobRequest,
)

from tests.support.layouts import OCI_INDEX, OCI_MANIFEST, multi_platform_layout, tagged_digest, verify_blobs
from tests.support.names import unique
from tests.support.regions import Regions, make_regions
from tests.support.server import FerryServer
from tests.support.swr import assert_sdk_error, sdk_error
from tests.support.sync_helpers import (
    ACCEPT,
    FINAL,
    create_repo,
    create_rule,
    image_layout,
    jobs,
    manage,
    manual_sync,
    new_org,
    push_layout_image,
    push_signature,
    referrer_digests,
    registry,
    sdk,
    skopeo_pull,
    skopeo_push,
    skopeo_raw_digest,
    tag_digest,
    wait_for,
    wait_jobs_final,
    wait_tag,
)

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")

A, B, C = "cn-north-4", "cn-east-3", "cn-south-1"
CHUNK = 1024 * 1024


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    """Three regions, each a peer of the others; tests keep apart by using organizations of their own."""
    # The smallest chunk size, so that a layer of a few MiB already goes in chunks.
    env = {"FERRY_SYNC_CHUNK_BYTES": str(CHUNK)}
    started = make_regions(tmp_path_factory.mktemp("regions"), [A, B, C], extra_env=env)
    yield started
    started.stop()


@pytest.fixture
def a(regions: Regions) -> FerryServer:
    return regions[A]


@pytest.fixture
def b(regions: Regions) -> FerryServer:
    return regions[B]


@pytest.fixture
def c(regions: Regions) -> FerryServer:
    return regions[C]


def wait_job(
    server: FerryServer, namespace: str, repository: str, tag: str, after: int = 0
) -> dict[str, Any]:
    """The newest job for `tag` with an id above `after`, once it is final."""

    def probe() -> dict[str, Any] | None:
        found = [j for j in jobs(server, namespace, repository) if j["tag"] == tag and j["id"] > after]
        return found[-1] if found and found[-1]["status"] in FINAL else None

    return wait_for(probe, f"a final sync job for {namespace}/{repository}:{tag}")


def tag_digest_or_error(server: FerryServer, name: str, tag: str) -> str | int:
    response = registry(server).head(f"/v2/{name}/manifests/{tag}", headers={"Accept": ACCEPT})
    return (
        response.headers.get("Docker-Content-Digest", "")
        if response.status_code == 200
        else response.status_code
    )


def wait_settled(
    servers: list[tuple[FerryServer, str, str]], quiet: float = 3.0
) -> list[list[dict[str, Any]]]:
    """Waits until every listed repository's jobs are final and their number stays put for `quiet` s."""
    last: list[int] = []
    since = time.monotonic()

    def probe() -> list[list[dict[str, Any]]] | None:
        nonlocal last, since
        found = [jobs(server, ns, repo) for server, ns, repo in servers]
        counts = [len(f) for f in found]
        all_final = all(j["status"] in FINAL for f in found for j in f)
        if counts != last or not all_final:
            last, since = counts, time.monotonic()
            return None
        return found if time.monotonic() - since >= quiet else None

    return wait_for(probe, "the sync jobs to settle")


# 1 ---------------------------------------------------------------------------------------------


def test_auto_sync_copies_a_pushed_image_and_a_retag(a: FerryServer, b: FerryServer, tmp_path: Path) -> None:
    org = new_org(a, b)
    create_repo(a, org, "app")
    assert create_rule(a, org, "app", B, org, sync_auto=True) == 200

    source = image_layout(tmp_path / "src", [("t1-base", 60_000), ("t1-app", 5_000)], tag="v1")
    skopeo_push(a, source.root, "v1", f"{org}/app:v1")

    wait_tag(b, f"{org}/app", "v1", source.digest)
    pulled = tmp_path / "pulled"
    skopeo_pull(b, f"{org}/app:v1", pulled, "v1")
    assert tagged_digest(pulled, "v1") == source.digest
    assert verify_blobs(pulled) >= {d.digest for d in source.layers}
    assert skopeo_raw_digest(b, f"{org}/app:v1") == source.digest

    job = wait_job(a, org, "app", "v1")
    assert job["status"] == "success", job
    assert (job["remoteRegionId"], job["remoteNamespace"], job["digest"]) == (B, org, source.digest)
    assert job["trigger"] == "auto"
    sdk_jobs = sdk(a).show_sync_job(
        ShowSyncJobRequest(namespace=org, repository="app", filter="limit::100|offset::0|order::desc")
    )
    assert [(j.tag, j.status) for j in sdk_jobs.body] == [("v1", "success")]
    assert sdk_jobs.content_range == "0-1/1"

    # A retag through the management API is a tag change like a push.
    sdk(a).create_repo_tag(
        CreateRepoTagRequest(
            namespace=org,
            repository="app",
            body=CreateRepoTagRequestBody(source_tag="v1", destination_tag="stable", override=False),
        )
    )
    wait_tag(b, f"{org}/app", "stable", source.digest)
    retag_job = wait_job(a, org, "app", "stable")
    assert retag_job["status"] == "success", retag_job
    assert retag_job["bytes"] == 0  # the image itself was already there: nothing sent again


# 2 ---------------------------------------------------------------------------------------------


def test_rule_does_not_copy_existing_images_but_manual_sync_does(
    a: FerryServer, b: FerryServer, tmp_path: Path
) -> None:
    org = new_org(a, b)
    repo = "team/app"  # a nested name: `team$app` in management paths
    v1 = image_layout(tmp_path / "v1", [("t2-v1", 20_000)])
    v2 = image_layout(tmp_path / "v2", [("t2-v2", 20_000)])
    push_layout_image(a, v1, f"{org}/{repo}", "v1")
    push_layout_image(a, v2, f"{org}/{repo}", "v2")

    # Jobs are recorded in the transaction of the tag change, so an empty list right after the
    # call is final: creating the rule queued nothing.
    assert create_rule(a, org, repo, B, org, sync_auto=True) == 200
    assert jobs(a, org, repo) == []
    assert tag_digest(b, f"{org}/{repo}", "v1") is None

    failed = manual_sync(a, org, repo, ["v1", "no-such-tag"], B, org)
    assert failed == ["no-such-tag"]
    queued = jobs(a, org, repo)
    assert [(j["tag"], j["trigger"], j["repoName"]) for j in queued] == [("v1", "manual", repo)]

    wait_tag(b, f"{org}/{repo}", "v1", v1.digest)
    found = wait_jobs_final(a, org, repo)
    assert [(j["tag"], j["trigger"], j["status"]) for j in found] == [("v1", "manual", "success")]
    assert found[0]["digest"] == v1.digest
    assert found[0]["syncOperatorName"] == "admin"
    assert tag_digest(b, f"{org}/{repo}", "v2") is None  # only the listed tag was copied


def test_only_tag_changes_under_an_auto_rule_create_jobs(
    a: FerryServer, b: FerryServer, tmp_path: Path
) -> None:
    org = new_org(a, b)
    one = image_layout(tmp_path / "one", [("t2b-1", 5_000)])
    two = image_layout(tmp_path / "two", [("t2b-2", 5_000)])
    create_repo(a, org, "app")
    assert create_rule(a, org, "app", B, org, sync_auto=False) == 200
    push_layout_image(a, one, f"{org}/app", "v1")
    assert jobs(a, org, "app") == []  # syncAuto false: stored, but queues nothing

    assert create_rule(a, org, "app", B, org, sync_auto=True) == 200
    push_layout_image(a, one, f"{org}/app", "v1")  # same digest under the same tag: no change
    push_layout_image(a, two, f"{org}/app", two.digest)  # by digest alone: no tag changes
    assert jobs(a, org, "app") == []

    push_layout_image(a, two, f"{org}/app", "v1")  # the tag moves
    assert [(j["tag"], j["trigger"]) for j in jobs(a, org, "app")] == [("v1", "auto")]
    wait_tag(b, f"{org}/app", "v1", two.digest)
    assert wait_job(a, org, "app", "v1")["syncOperatorName"] == "admin"
    assert tag_digest(b, f"{org}/app", two.digest) == two.digest


# 3 ---------------------------------------------------------------------------------------------


def test_override_false_keeps_the_target_image_and_true_replaces_it(
    a: FerryServer, b: FerryServer, tmp_path: Path
) -> None:
    org = new_org(a, b)
    theirs = image_layout(tmp_path / "theirs", [("t3-theirs", 10_000)])
    ours = image_layout(tmp_path / "ours", [("t3-ours", 10_000)])
    newer = image_layout(tmp_path / "newer", [("t3-newer", 10_000)])
    push_layout_image(b, theirs, f"{org}/app", "v1")
    push_layout_image(a, theirs, f"{org}/app", "seed")  # the repository has to exist for its rule

    assert create_rule(a, org, "app", B, org, sync_auto=True, override=False) == 200
    push_layout_image(a, ours, f"{org}/app", "v1")
    job = wait_job(a, org, "app", "v1")
    assert job["status"] == "existed", job
    assert "override" in job["message"] and theirs.digest in job["message"], job["message"]
    assert tag_digest(b, f"{org}/app", "v1") == theirs.digest

    # Manual sync with override on replaces it.
    assert manual_sync(a, org, "app", ["v1"], B, org, override=True) == []
    job = wait_job(a, org, "app", "v1", after=job["id"])
    assert job["status"] == "success", job
    assert tag_digest(b, f"{org}/app", "v1") == ours.digest

    # And so does the rule, once it is updated to override.
    assert create_rule(a, org, "app", B, org, sync_auto=True, override=True) == 200
    push_layout_image(b, theirs, f"{org}/app", "v1")  # someone in B moves it back
    push_layout_image(a, newer, f"{org}/app", "v1")
    wait_tag(b, f"{org}/app", "v1", newer.digest)
    job = wait_job(a, org, "app", "v1", after=job["id"])
    assert job["status"] == "success" and job["digest"] == newer.digest, job


def test_override_false_keeps_updating_its_own_copies_but_not_a_foreign_image(
    a: FerryServer, b: FerryServer, tmp_path: Path
) -> None:
    """override false protects images the sync did not write; its own copies follow the source."""
    org = new_org(a, b)
    first = image_layout(tmp_path / "first", [("own-first", 10_000)])
    second = image_layout(tmp_path / "second", [("own-second", 10_000)])
    foreign = image_layout(tmp_path / "foreign", [("own-foreign", 10_000)])
    third = image_layout(tmp_path / "third", [("own-third", 10_000)])
    push_layout_image(a, first, f"{org}/app", "seed")
    assert create_rule(a, org, "app", B, org, sync_auto=True, override=False) == 200

    push_layout_image(a, first, f"{org}/app", "v1")
    job = wait_job(a, org, "app", "v1")
    assert job["status"] == "success", job
    push_layout_image(a, second, f"{org}/app", "v1")  # the tag moves in A: B's copy is ours, so it follows
    wait_tag(b, f"{org}/app", "v1", second.digest)
    job = wait_job(a, org, "app", "v1", after=job["id"])
    assert job["status"] == "success" and job["digest"] == second.digest, job

    push_layout_image(b, foreign, f"{org}/app", "v1")  # someone in B puts their own image there
    push_layout_image(a, third, f"{org}/app", "v1")
    job = wait_job(a, org, "app", "v1", after=job["id"])
    assert job["status"] == "existed" and foreign.digest in job["message"], job
    assert tag_digest(b, f"{org}/app", "v1") == foreign.digest


# 4 ---------------------------------------------------------------------------------------------


def test_multi_platform_index_and_its_signature_arrive_whole(
    a: FerryServer, b: FerryServer, tmp_path: Path
) -> None:
    org = new_org(a, b)
    layout = multi_platform_layout(tmp_path / "multi", ("amd64", "arm64"), tag="v1")
    skopeo_push(a, layout.root, "v1", f"{org}/multi:v1")
    index_bytes = (layout.root / "blobs" / "sha256" / layout.digest.removeprefix("sha256:")).read_bytes()
    signature = push_signature(a, f"{org}/multi", layout.digest, OCI_INDEX, len(index_bytes), "before")

    assert create_rule(a, org, "multi", B, org, sync_auto=False) == 200
    assert manual_sync(a, org, "multi", ["v1"], B, org) == []
    job = wait_job(a, org, "multi", "v1")
    assert job["status"] == "success", job

    target = registry(b)
    index = target.get(f"/v2/{org}/multi/manifests/v1", headers={"Accept": ACCEPT})
    assert index.status_code == 200
    assert index.headers["Docker-Content-Digest"] == layout.digest
    assert index.content == index_bytes
    children = json.loads(index.content)["manifests"]
    assert len(children) == 2
    for child in children:
        manifest = target.get(
            f"/v2/{org}/multi/manifests/{child['digest']}", headers={"Accept": OCI_MANIFEST}
        )
        assert manifest.status_code == 200, child
        document = manifest.json()
        for blob in [document["config"], *document["layers"]]:
            response = target.get(f"/v2/{org}/multi/blobs/{blob['digest']}")
            assert response.status_code == 200, blob
            assert len(response.content) == blob["size"]
    assert referrer_digests(b, f"{org}/multi", layout.digest) == {signature}
    assert tag_digest(b, f"{org}/multi", signature) == signature

    # The whole image pulls from B with skopeo, every platform.
    pulled = tmp_path / "pulled"
    skopeo_pull(b, f"{org}/multi:v1", pulled, "v1")
    assert tagged_digest(pulled, "v1") == layout.digest
    assert verify_blobs(pulled) >= layout.blobs


def test_signature_pushed_after_the_sync_follows_its_image(
    a: FerryServer, b: FerryServer, tmp_path: Path
) -> None:
    org = new_org(a, b)
    create_repo(a, org, "app")
    assert create_rule(a, org, "app", B, org, sync_auto=True) == 200
    image = image_layout(tmp_path / "img", [("t4b", 10_000)])
    push_layout_image(a, image, f"{org}/app", "v1")
    wait_tag(b, f"{org}/app", "v1", image.digest)
    first = wait_job(a, org, "app", "v1")
    assert first["status"] == "success", first
    assert referrer_digests(b, f"{org}/app", image.digest) == set()

    signature = push_signature(a, f"{org}/app", image.digest, OCI_MANIFEST, len(image.manifest), "after")
    wait_for(
        lambda: referrer_digests(b, f"{org}/app", image.digest) == {signature},
        "the later signature to be listed as a referrer in B",
    )
    job = wait_job(a, org, "app", "v1", after=first["id"])
    assert job["status"] == "success", job
    assert tag_digest(b, f"{org}/app", "v1") == image.digest

    # A signature of that signature (a referrer two levels down) follows as well.
    signature_size = len(registry(a).get(f"/v2/{org}/app/manifests/{signature}").content)
    counter = push_signature(a, f"{org}/app", signature, OCI_MANIFEST, signature_size, "counter")
    assert [j["id"] for j in jobs(a, org, "app") if j["id"] > job["id"]], "the push queued no job"
    wait_for(
        lambda: referrer_digests(b, f"{org}/app", signature) == {counter},
        "the signature's own signature to be listed as a referrer in B",
    )


# 5 ---------------------------------------------------------------------------------------------


def test_second_image_sends_only_its_new_layers(a: FerryServer, b: FerryServer, tmp_path: Path) -> None:
    org = new_org(a, b)
    base = [("t5-base-1", 300_000), ("t5-base-2", 300_000), ("t5-base-3", 300_000)]
    first = image_layout(tmp_path / "one", [*base, ("t5-app-1", 20_000)])
    second = image_layout(tmp_path / "two", [*base, ("t5-app-2", 20_000)])
    create_repo(a, org, "app")
    assert create_rule(a, org, "app", B, org, sync_auto=True) == 200

    push_layout_image(a, first, f"{org}/app", "v1")
    job1 = wait_job(a, org, "app", "v1")
    assert job1["status"] == "success", job1
    assert job1["bytes"] >= sum(d.size for d in first.layers)

    push_layout_image(a, second, f"{org}/app", "v2")
    job2 = wait_job(a, org, "app", "v2")
    assert job2["status"] == "success", job2
    new_layer = second.layers[-1].size
    config = json.loads(second.manifest)["config"]["size"]
    assert job2["bytes"] == new_layer + config, (job2, new_layer, config)
    assert job2["bytes"] < second.size // 20
    assert job2["blobsSkipped"] == len(base)
    assert tag_digest(b, f"{org}/app", "v2") == second.digest

    # Another repository in the same organization: the shared layers are mounted, not sent.
    create_repo(a, org, "other")
    assert create_rule(a, org, "other", B, org, sync_auto=True) == 200
    third = image_layout(tmp_path / "three", [*base, ("t5-other", 20_000)])
    push_layout_image(a, third, f"{org}/other", "v1")
    job3 = wait_job(a, org, "other", "v1")
    assert job3["status"] == "success", job3
    assert job3["blobsMounted"] == len(base), job3
    assert job3["bytes"] == third.layers[-1].size + json.loads(third.manifest)["config"]["size"], job3
    assert tag_digest(b, f"{org}/other", "v1") == third.digest


def test_layer_bigger_than_a_chunk_arrives_intact(a: FerryServer, b: FerryServer, tmp_path: Path) -> None:
    org = new_org(a, b)
    create_repo(a, org, "big")
    assert create_rule(a, org, "big", B, org, sync_auto=True) == 200
    image = image_layout(tmp_path / "big", [("t5-big", 2 * CHUNK + 12_345)])
    push_layout_image(a, image, f"{org}/big", "v1")
    job = wait_job(a, org, "big", "v1")
    assert job["status"] == "success", job
    assert job["bytes"] == image.size - len(image.manifest), job
    layer = image.layers[0]
    assert layer.size > 2 * CHUNK
    response = registry(b).get(f"/v2/{org}/big/blobs/{layer.digest}")
    assert response.status_code == 200
    assert response.content == image.blob(layer.digest)


def test_missing_target_organization_refuses_the_sync_with_a_message(
    a: FerryServer, b: FerryServer, tmp_path: Path
) -> None:
    org = new_org(a, b)
    image = image_layout(tmp_path / "img", [("t7-missing", 5_000)])
    push_layout_image(a, image, f"{org}/app", "v1")
    # Missing there when asked: the manual sync is refused at once and records nothing.
    absent = unique("absent")
    error = assert_sdk_error(lambda: manual_sync(a, org, "app", ["v1"], B, absent), 404, "SVCSTG.SWR.4040058")
    assert absent in error.error_msg and B in error.error_msg
    assert jobs(a, org, "app") == []
    # Gone by the time the job runs: the job ends failed, saying so.
    assert create_rule(a, org, "app", B, org, sync_auto=True) == 200
    sdk(b).delete_namespaces(DeleteNamespacesRequest(namespace=org))
    push_layout_image(a, image, f"{org}/app", "v2")
    job = wait_job(a, org, "app", "v2")
    assert job["status"] == "failed", job
    assert org in job["message"] and "refused" in job["message"], job["message"]
    assert tag_digest_or_error(b, f"{org}/app", "v2") != image.digest


# 6 ---------------------------------------------------------------------------------------------


def test_chain_a_to_b_to_c(a: FerryServer, b: FerryServer, c: FerryServer, tmp_path: Path) -> None:
    org = new_org(a, b, c)
    create_repo(a, org, "app")
    create_repo(b, org, "app")
    assert create_rule(a, org, "app", B, org, sync_auto=True) == 200
    assert create_rule(b, org, "app", C, org, sync_auto=True) == 200

    image = image_layout(tmp_path / "img", [("t6-chain", 30_000)])
    push_layout_image(a, image, f"{org}/app", "v1")
    wait_tag(c, f"{org}/app", "v1", image.digest)
    assert tag_digest(b, f"{org}/app", "v1") == image.digest
    assert wait_job(b, org, "app", "v1")["status"] == "success"


def test_loop_a_to_b_to_a_settles(a: FerryServer, b: FerryServer, tmp_path: Path) -> None:
    org = new_org(a, b)
    create_repo(a, org, "app")
    create_repo(b, org, "app")
    assert create_rule(a, org, "app", B, org, sync_auto=True) == 200
    assert create_rule(b, org, "app", A, org, sync_auto=True) == 200

    one = image_layout(tmp_path / "one", [("t6-loop-1", 10_000)])
    two = image_layout(tmp_path / "two", [("t6-loop-2", 10_000)])
    push_layout_image(a, one, f"{org}/app", "v1")
    push_layout_image(b, two, f"{org}/app", "v2")  # the other direction
    wait_tag(b, f"{org}/app", "v1", one.digest)
    wait_tag(a, f"{org}/app", "v2", two.digest)

    in_a, in_b = wait_settled([(a, org, "app"), (b, org, "app")])
    for tag, digest in (("v1", one.digest), ("v2", two.digest)):
        assert tag_digest(a, f"{org}/app", tag) == digest
        assert tag_digest(b, f"{org}/app", tag) == digest
    # Each push made one copy and one echo that found the image already there.
    assert sorted((j["tag"], j["status"]) for j in in_a) == [("v1", "success"), ("v2", "existed")]
    assert sorted((j["tag"], j["status"]) for j in in_b) == [("v1", "existed"), ("v2", "success")]


# 7 ---------------------------------------------------------------------------------------------


def test_rule_and_job_validation(a: FerryServer, b: FerryServer, tmp_path: Path) -> None:
    org = new_org(a, b)
    create_repo(a, org, "app")
    client = sdk(a)

    def create(region: str, namespace: str, sync_auto: bool = False, override: bool = False) -> Any:
        body = CreateImageSyncRepoRequestBody(
            remote_region_id=region, remote_namespace=namespace, sync_auto=sync_auto, override=override
        )
        return client.create_image_sync_repo(
            CreateImageSyncRepoRequest(namespace=org, repository="app", body=body)
        )

    def rules() -> list[Any]:
        listed = client.list_image_auto_sync_repos_details(ListImageAutoSyncReposDetailsRequest(org, "app"))
        return list(listed.body or [])

    for region in ("xx-nowhere-9", A):  # not a peer; the local region itself
        error = assert_sdk_error(
            lambda region=region: create(region, org),  # type: ignore[misc]
            400,
            "SVCSTG.SWR.4000014",
        )
        assert B in error.error_msg
    assert_sdk_error(lambda: create(B, "Bad..Org"), 400, "SVCSTG.SWR.4001028")
    error = assert_sdk_error(lambda: create(B, unique("absent")), 404, "SVCSTG.SWR.4040058")
    assert B in error.error_msg
    assert rules() == []

    assert create(B, org).status_code == 200
    assert create(B, org, sync_auto=True, override=True).status_code == 200
    [rule] = rules()
    assert (rule.remote_region_id, rule.remote_namespace, rule.sync_auto, rule.override) == (
        B,
        org,
        True,
        True,
    )
    assert (rule.namespace, rule.repo_name) == (org, "app")
    assert rule.updated_at >= rule.created_at

    error = sdk_error(
        lambda: client.delete_image_sync_repo(
            DeleteImageSyncRepoRequest(org, "app", DeleteImageSyncRepoRequestBody(B, unique("other")))
        )
    )
    assert error.status_code == 404
    assert len(rules()) == 1
    client.delete_image_sync_repo(
        DeleteImageSyncRepoRequest(org, "app", DeleteImageSyncRepoRequestBody(B, org))
    )
    assert rules() == []

    regions = {r.region_id for r in client.list_sync_regions(ListSyncRegionsRequest()).body}
    assert regions == {B, C}

    for bad_filter in ("order::desc", "limit::10", "offset::0"):
        assert_sdk_error(
            lambda bad_filter=bad_filter: client.show_sync_job(  # type: ignore[misc]
                ShowSyncJobRequest(org, "app", filter=bad_filter)
            ),
            400,
            "SVCSTG.SWR.4001035",
        )
    response = manage(a).request("GET", f"/v2/manage/namespaces/{org}/repos/app/sync_job")
    assert response.status_code == 400, response.text
    for bad_limit in ("limit::0|offset::0", "limit::1001|offset::0"):
        assert_sdk_error(
            lambda bad_limit=bad_limit: client.show_sync_job(  # type: ignore[misc]
                ShowSyncJobRequest(org, "app", filter=bad_limit)
            ),
            400,
            "SVCSTG.SWR.4000056",
        )
    listed = client.show_sync_job(ShowSyncJobRequest(org, "app", filter="limit::10|offset::0"))
    assert (listed.body or []) == [] and listed.content_range == "0-0/0"

    # The source must exist: organization, then repository.
    body = CreateImageSyncRepoRequestBody(remote_region_id=B, remote_namespace=org, sync_auto=True)
    assert_sdk_error(
        lambda: client.create_image_sync_repo(
            CreateImageSyncRepoRequest(namespace=unique("nosuch"), repository="app", body=body)
        ),
        404,
        "SVCSTG.SWR.4040058",
    )
    assert_sdk_error(
        lambda: client.create_image_sync_repo(
            CreateImageSyncRepoRequest(namespace=org, repository="nosuch", body=body)
        ),
        404,
        "SVCSTG.SWR.4040113",
    )
    assert rules() == []


# 8 ---------------------------------------------------------------------------------------------


def test_rapid_pushes_to_one_tag_end_with_the_last_image(
    a: FerryServer, b: FerryServer, tmp_path: Path
) -> None:
    org = new_org(a, b)
    create_repo(a, org, "app")
    # override: each push moves the tag away from what the previous job put in B.
    assert create_rule(a, org, "app", B, org, sync_auto=True, override=True) == 200
    images = [image_layout(tmp_path / f"i{n}", [(f"t8-{n}", 4_000)]) for n in range(10)]
    for image in images:
        push_layout_image(a, image, f"{org}/app", "latest")
    wait_tag(b, f"{org}/app", "latest", images[-1].digest)
    found = wait_settled([(a, org, "app")], quiet=2.0)[0]
    assert 1 <= len(found) <= len(images)
    assert all(j["tag"] == "latest" for j in found)
    assert found[-1]["digest"] == images[-1].digest, found[-1]
    assert found[-1]["status"] in ("success", "existed"), found[-1]
    assert not [j for j in found if j["status"] not in ("success", "existed")], found
    assert tag_digest(b, f"{org}/app", "latest") == images[-1].digest


# Failures ----------------------------------------------------------------------------------------


def test_unreachable_peer_is_retried_and_a_deleted_source_tag_cancels(
    a: FerryServer, c: FerryServer, tmp_path: Path
) -> None:
    org = new_org(a, c)
    gone = image_layout(tmp_path / "gone", [("t9-gone", 5_000)])
    kept = image_layout(tmp_path / "kept", [("t9-kept", 5_000)])
    push_layout_image(a, gone, f"{org}/app", "gone")
    push_layout_image(a, kept, f"{org}/app", "kept")
    c.stop()
    try:
        assert manual_sync(a, org, "app", ["gone", "kept"], C, org) == []

        def retrying() -> list[dict[str, Any]] | None:
            found = jobs(a, org, "app")
            ok = len(found) == 2 and all(j["attempts"] >= 1 and j["status"] == "waiting" for j in found)
            return found if ok else None

        for job in wait_for(retrying, "both jobs to wait for a retry"):
            assert "retrying" in job["message"] and C in job["message"], job

        sdk(a).delete_repo_tag(DeleteRepoTagRequest(namespace=org, repository="app", tag="gone"))
        cancelled = wait_job(a, org, "app", "gone")
        assert cancelled["status"] == "cancel", cancelled
        assert "no longer exists" in cancelled["message"], cancelled
    finally:
        c.start()
    job = wait_job(a, org, "app", "kept")
    assert job["status"] == "success", job
    assert job["attempts"] >= 2, job
    assert tag_digest(c, f"{org}/app", "kept") == kept.digest
    assert tag_digest(c, f"{org}/app", "gone") is None
