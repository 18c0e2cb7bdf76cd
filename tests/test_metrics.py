"""What an operator scrapes and probes: /metrics after real pushes and syncs, /metrics of
`ferry serve --workers 2` summed over both processes, the address allow list, and /readyz
naming the check that failed.

Every server is a real `ferry serve` on loopback. Region A syncs to B (works) and to C, a peer
that is stopped once its rule exists, so its jobs retry against a closed port and time out.
Completion is read from the endpoints (the management API's job records and /metrics), never
from logs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.images import Image, make_image, push_image
from tests.support.regions import Regions, make_regions
from tests.support.registry_client import RegistryClient
from tests.support.server import ADMIN_PASSWORD, FerryServer, free_port, stop_process, wait_http
from tests.support.sync_helpers import create_org, create_repo, create_rule, manage, wait_for

A, B, C = "cn-north-4", "cn-east-3", "cn-south-1"
NS, REPO = "metrics", "app"
NAME = f"{NS}/{REPO}"
TAGS = ("v1", "v2", "v3")
MANIFEST_ROUTE = "/v2/{name}/manifests/{reference}"
# C's jobs give up this long after they were recorded (they can never reach C).
RETRY_SECONDS = "4"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of GET /metrics, by (name, labels)."""
    response = requests.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Regions, dict[str, Image]]]:
    regions = make_regions(
        tmp_path_factory.mktemp("metrics"),
        [A, B, C],
        region_env={A: {"FERRY_SYNC_RETRY_SECONDS": RETRY_SECONDS}},
    )
    try:
        for region in (A, B, C):
            create_org(regions[region], NS)
        create_repo(regions[A], NS, REPO)
        assert create_rule(regions[A], NS, REPO, B, NS) == 200
        assert create_rule(regions[A], NS, REPO, C, NS) == 200
        regions[C].stop()  # a dead peer: its port is closed from now on
        images = {tag: make_image(f"metrics-{tag}") for tag in TAGS}
        source = RegistryClient(regions[A].url, "admin", ADMIN_PASSWORD)
        for tag, image in images.items():
            push_image(source, NAME, tag, image)
        yield regions, images
    finally:
        regions.stop()


def jobs_by_target(server: FerryServer) -> dict[str, list[str]]:
    """Target region → statuses of NS/REPO's jobs, from the management API."""
    response = manage(server).request(
        "GET", f"/v2/manage/namespaces/{NS}/repos/{REPO}/sync_job", params={"filter": "limit::100|offset::0"}
    )
    assert response.status_code == 200, response.text
    result: dict[str, list[str]] = {}
    for job in response.json():
        result.setdefault(job["remoteRegionId"], []).append(job["status"])
    return result


def test_queue_depth_counts_the_jobs_waiting_for_the_dead_peer(
    world: tuple[Regions, dict[str, Image]],
) -> None:
    regions, _images = world

    def three_queued() -> Samples | None:
        samples = scrape(regions[A].url)
        queued = value(samples, "ferry_sync_jobs_waiting", target_region=C) + value(
            samples, "ferry_sync_jobs_running", target_region=C
        )
        return samples if queued == len(TAGS) else None

    samples = wait_for(three_queued, f"{len(TAGS)} jobs for {C} waiting or running", 15)
    assert value(samples, "ferry_sync_oldest_waiting_seconds", target_region=C) >= 0


def test_metrics_after_pushes_and_syncs_one_failing(world: tuple[Regions, dict[str, Image]]) -> None:
    regions, images = world

    def all_finished() -> Samples | None:
        samples = scrape(regions[A].url)
        done = value(samples, "ferry_sync_jobs_finished_total")
        return samples if done == 2 * len(TAGS) else None

    samples = wait_for(all_finished, "every sync job of A to finish", 40)
    n = len(TAGS)
    # What the management API says happened, and the metrics agree with it.
    assert sorted(jobs_by_target(regions[A]).items()) == [(B, ["success"] * n), (C, ["timeout"] * n)]
    samples = scrape(regions[A].url)  # again: reading the jobs signed in through IAM
    assert value(samples, "ferry_sync_jobs_finished_total", status="success", target_region=B) == n
    assert value(samples, "ferry_sync_jobs_finished_total", status="timeout", target_region=C) == n
    assert value(samples, "ferry_sync_jobs_created_total", trigger="auto", target_region=B) == n
    assert value(samples, "ferry_sync_jobs_created_total", trigger="auto", target_region=C) == n

    # The lag histogram counts synced tags only: three for B, none for the dead peer.
    assert value(samples, "ferry_sync_push_to_visible_seconds_count", target_region=B) == n
    assert value(samples, "ferry_sync_push_to_visible_seconds_sum", target_region=B) > 0
    assert value(samples, "ferry_sync_push_to_visible_seconds_bucket", target_region=B, le="+Inf") == n
    assert value(samples, "ferry_sync_push_to_visible_seconds_count", target_region=C) == 0

    # C's attempts failed without an answer and were retried until the deadline.
    retries = value(samples, "ferry_sync_retries_total", cause="unreachable", target_region=C)
    assert retries >= n
    assert value(samples, "ferry_sync_attempts_total", target_region=C) >= retries
    assert value(samples, "ferry_sync_attempts_total", target_region=B) == n

    blobs = {digest: data for image in images.values() for digest, data in image.blobs.items()}
    assert value(samples, "ferry_sync_blobs_total", outcome="uploaded", target_region=B) == len(blobs)
    assert value(samples, "ferry_sync_bytes_sent_total", target_region=B) == sum(map(len, blobs.values()))

    # Requests by API and route template (never the raw path), with status classes.
    pushes = value(samples, "ferry_http_requests_total", api="registry", route=MANIFEST_ROUTE, method="PUT")
    assert pushes == n
    assert (
        value(samples, "ferry_http_requests_total", api="registry", route=MANIFEST_ROUTE, status="2xx") >= n
    )
    assert value(samples, "ferry_http_requests_total", api="iam", route="/v3/auth/tokens") >= 1
    assert value(samples, "ferry_http_requests_total", api="manage", status="2xx") >= 3  # org, repo, rules
    assert not any(NAME in dict(labels).get("route", "") for (_name, labels) in samples)
    assert value(samples, "ferry_http_request_duration_seconds_count", api="registry") > 0
    assert value(samples, "ferry_http_request_bytes_total", api="registry") >= sum(map(len, blobs.values()))
    assert value(samples, "ferry_http_response_bytes_total", api="registry") > 0

    # Region content, and the layers below: the store and the database.
    assert value(samples, "ferry_repositories") == 1
    assert value(samples, "ferry_tags") == n
    assert value(samples, "ferry_blob_bytes") == sum(map(len, blobs.values()))
    driver = "s3" if "FERRY_STORAGE_URL" in regions[A].env else "filesystem"
    commits = value(
        samples, "ferry_storage_operation_duration_seconds_count", driver=driver, operation="commit_upload"
    )
    assert commits == len(blobs)
    assert value(samples, "ferry_db_operation_duration_seconds_count", kind="statement") > 0
    assert value(samples, "ferry_db_operation_duration_seconds_count", kind="write") > 0

    # B received the copies as pushes.
    at_b = scrape(regions[B].url)
    assert value(at_b, "ferry_http_requests_total", route=MANIFEST_ROUTE, method="PUT", status="2xx") == n
    assert value(at_b, "ferry_tags") == n


def test_two_server_processes_on_one_port_report_summed_counters(tmp_path: Path) -> None:
    server = FerryServer(tmp_path / "two", free_port(), args=["--workers", "2", "--sync-slots", "0"])
    server.start()
    try:
        # Both processes answer on the one port (the kernel spreads new connections).
        pids: set[int] = set()
        for _ in range(200):
            pids.add(requests.get(f"{server.url}/readyz", timeout=10).json()["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2, pids
        assert server.pid not in pids  # the parent only supervises

        count = 40
        for _ in range(count):  # each on a new connection, so both processes take a share
            assert requests.get(f"{server.url}/v2/", timeout=10).status_code == 401
        for _ in range(6):  # whichever process answers the scrape reports both shares
            samples = scrape(server.url)
            assert value(samples, "ferry_http_requests_total", route="/v2/", status="4xx") == count
            assert value(samples, "ferry_http_server_processes") == 2
    finally:
        server.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_serve_runs_one_server_process_per_core_by_default(tmp_path: Path) -> None:
    # FERRY_HTTP_WORKERS=0 is the default a user gets (the harness pins 1 for other tests).
    server = FerryServer(
        tmp_path / "default", free_port(), env={"FERRY_HTTP_WORKERS": "0"}, args=["--sync-slots", "0"]
    )
    server.start()
    try:
        expected = os.cpu_count() or 1
        # /readyz answers once the first process does; the others are up a moment later.
        deadline = time.monotonic() + 30
        while (running := value(scrape(server.url), "ferry_http_server_processes")) != expected:
            assert time.monotonic() < deadline, f"{running} server processes, expected {expected}"
            time.sleep(0.1)
    finally:
        server.stop()


@pytest.mark.filesystem_only
def test_scrapes_refused_outside_the_allow_list_and_readyz_names_a_failed_check(tmp_path: Path) -> None:
    server = FerryServer(
        tmp_path / "lonely",
        free_port(),
        env={"FERRY_METRICS_ALLOW": '["10.0.0.0/8"]', "FERRY_DATABASE_URL": "", "FERRY_STORAGE_URL": ""},
    )
    server.start()
    try:
        refused = requests.get(f"{server.url}/metrics", timeout=10)
        assert refused.status_code == 403
        assert "FERRY_METRICS_ALLOW" in refused.json()["error_msg"]

        ready = requests.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "ready" and body["failed"] == []
        assert set(body["checks"]) == {"database", "storage", "migrations", "sync_worker"}
        assert all(check["ok"] for check in body["checks"].values())

        shutil.rmtree(server.data / "storage")
        broken = requests.get(f"{server.url}/readyz", timeout=10)
        assert broken.status_code == 503
        body = broken.json()
        assert body["status"] == "not ready" and body["failed"] == ["storage"]
        assert not body["checks"]["storage"]["ok"]
        assert "cannot write under" in body["checks"]["storage"]["error"]
        assert body["checks"]["database"]["ok"] and body["checks"]["migrations"]["ok"]
        # Alive all the same: liveness is not readiness.
        healthz = requests.get(f"{server.url}/healthz", timeout=10)
        assert healthz.status_code == 200 and healthz.json() == {"status": "ok"}
    finally:
        server.stop()


def test_a_sync_worker_with_a_port_answers_readyz_and_metrics(tmp_path: Path) -> None:
    port = free_port()
    env = os.environ | {"FERRY_DATA_DIR": str(tmp_path), "FERRY_HOST": "127.0.0.1", "FERRY_DATABASE_URL": ""}
    with (tmp_path / "worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "ferry", "worker", "--slots", "2", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/readyz", process=worker, log=tmp_path / "worker.log")
        body = requests.get(f"{url}/readyz", timeout=10).json()
        assert body["checks"]["sync_worker"] == {"ok": True, "slots": 2}
        assert body["pid"] == worker.pid
        samples = scrape(url)
        assert value(samples, "ferry_http_requests_total", route="/readyz", status="2xx") >= 1
        assert ("ferry_tags", frozenset()) in samples
        # A worker serves no API.
        assert requests.get(f"{url}/v2/", timeout=10).status_code == 404
    finally:
        stop_process(worker)
