"""What a sync job asks the target, as the target counts it (its /metrics): each job asks for
one token (rights are checked every run), the first job of a repository too; a second job does
not ask again about blobs the target confirmed to the first; the tag PUT's answer is the
visibility check."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.names import unique
from tests.support.regions import Regions, make_regions
from tests.support.server import FerryServer
from tests.support.sync_helpers import (
    FINAL,
    create_org,
    create_repo,
    create_rule,
    image_layout,
    jobs,
    push_layout_image,
    tag_digest,
    wait_for,
)

A, B = "cn-north-4", "cn-east-3"
_SAMPLE = re.compile(r"^ferry_http_requests_total\{(.*)\}\s+(\S+)$")


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    started = make_regions(tmp_path_factory.mktemp("regions"), [A, B])
    yield started
    started.stop()


def requests_served(server: FerryServer, method: str, route: str) -> float:
    """How many `method route` requests the server answered, any status."""
    text = requests.get(server.url + "/metrics", timeout=30).text
    total = 0.0
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found and f'method="{method}"' in found.group(1) and f'route="{route}"' in found.group(1):
            total += float(found.group(2))
    return total


def wait_job(server: FerryServer, namespace: str, tag: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = [j for j in jobs(server, namespace, "app") if j["tag"] == tag]
        return found[-1] if found and found[-1]["status"] in FINAL else None

    return wait_for(probe, f"a final sync job for {namespace}/app:{tag}")


def test_one_token_per_job_and_confirmed_blobs_not_asked_again(regions: Regions, tmp_path: Path) -> None:
    a, b = regions[A], regions[B]
    org = unique("trips")
    for server in (a, b):
        create_org(server, org)
    create_repo(a, org, "app")
    assert create_rule(a, org, "app", B, org, sync_auto=True) == 200
    base = ("trips-base", 4_000)
    first = image_layout(tmp_path / "one", [base, ("trips-one", 3_000)])
    tokens = requests_served(b, "GET", "/v2/token")
    push_layout_image(a, first, f"{org}/app", "v1")
    assert wait_job(a, org, "v1")["status"] == "success"
    # One token for the first job of the repository, not one for the check and one after a 401.
    assert requests_served(b, "GET", "/v2/token") - tokens == 1

    tokens = requests_served(b, "GET", "/v2/token")
    heads = requests_served(b, "HEAD", "/v2/{name}/blobs/{digest}")
    manifest_heads = requests_served(b, "HEAD", "/v2/{name}/manifests/{reference}")
    second = image_layout(tmp_path / "two", [base, ("trips-two", 3_000)])
    push_layout_image(a, second, f"{org}/app", "v2")
    job = wait_job(a, org, "v2")
    assert job["status"] == "success", job

    assert requests_served(b, "GET", "/v2/token") - tokens == 1
    # The shared layer was confirmed to the first job: only the new config and layer are asked.
    assert requests_served(b, "HEAD", "/v2/{name}/blobs/{digest}") - heads == 2
    assert job["blobsSkipped"] == 1, job
    # The tag and the digest are asked about once each, before the copy; the tag PUT's answer
    # (Docker-Content-Digest) is the check that the tag resolves, no HEAD after it.
    assert requests_served(b, "HEAD", "/v2/{name}/manifests/{reference}") - manifest_heads == 2
    assert tag_digest(b, f"{org}/app", "v2") == second.digest
