"""A platform subset between real regions: an organization rule with `platforms: [linux/amd64]`
copies only that platform of an index (a new index, whose digest differs and which says where it
came from), a single-platform image whole, counts the tag in sync, passes its audit, and fails an
index without the platform with a reason that says so.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.images import make_image, make_index, push_image
from tests.support.regions import Regions, make_regions
from tests.support.server import FerryServer
from tests.support.sync_helpers import (
    ACCEPT,
    create_org_rule,
    jobs,
    manage,
    new_org,
    org_rules_path,
    registry,
    tag_digest,
    wait_for,
    wait_jobs_final,
)

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")

A, B = "cn-north-4", "cn-east-3"


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    started = make_regions(tmp_path_factory.mktemp("platforms"), [A, B])
    yield started
    started.stop()


def manifest(server: FerryServer, name: str, reference: str) -> dict[str, Any]:
    response = registry(server).get(f"/v2/{name}/manifests/{reference}", headers={"Accept": ACCEPT})
    assert response.status_code == 200, response.text
    return dict(json.loads(response.content))


def test_only_the_rules_platforms_of_an_index_are_copied(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    org = new_org(a, b, prefix="platforms")
    created = create_org_rule(
        a, org, {"remoteRegionId": B, "remoteNamespace": org, "platforms": ["linux/amd64"]}
    )
    assert created["platforms"] == ["linux/amd64"]
    name = f"{org}/app"

    index = make_index(f"{org}-multi", arches=("amd64", "arm64", "s390x"))
    amd64, arm64, s390x = index.children
    push_image(registry(a), name, "multi", index)
    [job] = wait_jobs_final(a, org, "app")
    assert job["status"] == "success", job["message"]

    copied = tag_digest(b, name, "multi")
    assert copied is not None and copied != index.digest
    document = manifest(b, name, "multi")
    assert [m["digest"] for m in document["manifests"]] == [amd64.digest]
    assert document["annotations"]["io.ferry.sync.source-digest"] == index.digest
    assert document["annotations"]["io.ferry.sync.platforms"] == "linux/amd64"
    assert tag_digest(b, name, amd64.digest) == amd64.digest  # the child, byte for byte
    for other in (arm64, s390x):
        assert tag_digest(b, name, other.digest) is None

    # The tag counts as in sync (the target holds the subset of the source's current index).
    path = f"/v2/manage/namespaces/{org}/repos/app/sync_state"
    [state] = manage(a).request("GET", path, params={"tag": "multi"}).json()["tags"]
    assert (state["state"], state["copiedDigest"], state["targetDigest"]) == ("in-sync", index.digest, copied)

    # A single-platform image goes whole, whatever its platform.
    single = make_image(f"{org}-single", arch="arm64")
    push_image(registry(a), name, "single", single)
    wait_for(lambda: tag_digest(b, name, "single") == single.digest or None, "the single image at B")

    # An index without the platform: nothing copied, and the record says why.
    other = make_index(f"{org}-arm-only", arches=("arm64",))
    push_image(registry(a), name, "arm-only", other)
    failed = wait_for(
        lambda: next(
            (j for j in jobs(a, org, "app") if j["tag"] == "arm-only" and j["status"] == "failed"), None
        ),
        "the arm-only job to fail",
    )
    assert "no platform of the index matches linux/amd64" in failed["message"]
    assert "linux/arm64" in failed["message"]
    assert tag_digest(b, name, "arm-only") is None

    # The audit expects the subset at the target: no drift for the copied tags.
    audit = manage(a).request("POST", f"/v2/manage/namespaces/{org}/repos/app/sync_audit", {})
    assert audit.status_code == 200, audit.text
    assert audit.json()["tagsChecked"] >= 2 and not audit.json()["errors"], audit.json()
    drift = {(d["tag"], d["kind"]) for d in audit.json()["drift"]}
    assert not {t for t, _ in drift} & {"multi", "single"}, drift


def test_a_bad_platform_is_refused(regions: Regions) -> None:
    org = new_org(regions[A], regions[B], prefix="platforms")
    body = {"remoteRegionId": B, "remoteNamespace": org, "platforms": ["amd64"]}
    response = manage(regions[A]).request("POST", org_rules_path(org), body)
    assert response.status_code == 400 and "os/architecture" in response.json()["error_msg"]
