"""Sync steering between real regions: a peer that throttles (429 with Retry-After) slows down
only itself (the throttled one behind a proxy that answers every third request with 429 and
`Retry-After: 2`); a peer that says it is out of requests (RateLimit-Remaining: 0) gets none
until its reset, and a peer's job cap holds; a fresh push goes ahead of a big manual sync.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from tests.support.images import make_image, push_image, put_manifest
from tests.support.regions import make_regions
from tests.support.registry_client import RegistryClient
from tests.support.server import ADMIN_PASSWORD, FerryServer
from tests.support.sync_helpers import FINAL, create_org, create_repo, create_rule, manual_sync, wait_for
from tests.support.throttle_proxy import ThrottleProxy
from tests.test_sync_faults import Records, started, tag_digest

A, B, C = "cn-north-4", "cn-east-3", "cn-south-1"
NS, REPO = "paced", "app"
NAME = f"{NS}/{REPO}"
# A request that left A before it read a 429 may still arrive after it: allowed this long.
IN_FLIGHT_SECONDS = 0.25


def test_a_throttling_peer_is_held_off_by_every_job_and_slows_no_other_peer(tmp_path: Path) -> None:
    proxy = ThrottleProxy(every=3, retry_after=2.0).start()
    try:
        regions = make_regions(tmp_path, [A, B, C], peer_urls={(A, B): proxy.url})
        with started(regions):
            proxy.upstream = regions[B].url
            for region in (A, B, C):
                create_org(regions[region], NS)
            create_repo(regions[A], NS, REPO)
            for target in (B, C):
                assert create_rule(regions[A], NS, REPO, target, NS, sync_auto=True) == 200

            source = RegistryClient(regions[A].url, "admin", ADMIN_PASSWORD)
            images = {f"p{i}": make_image(f"paced-{i}") for i in range(6)}
            pushed: dict[str, float] = {}
            for tag, image in images.items():
                push_image(source, NAME, tag, image)
                pushed[tag] = time.monotonic()

            healthy = RegistryClient(regions[C].url, "admin", ADMIN_PASSWORD)
            seen_at_c: dict[str, float] = {}
            deadline = time.monotonic() + 60
            while len(seen_at_c) < len(images) and time.monotonic() < deadline:
                for tag in images:
                    if tag not in seen_at_c and tag_digest(healthy, tag, NAME) == images[tag].digest:
                        seen_at_c[tag] = time.monotonic() - pushed[tag]
                time.sleep(0.05)
            assert set(seen_at_c) == set(images), "every image reached the healthy peer"

            records = Records(regions[A], A, NS, REPO)

            def all_final() -> list[dict[str, Any]] | None:
                jobs = records.jobs()
                done = len(jobs) == 2 * len(images) and all(j["status"] in FINAL for j in jobs)
                return jobs if done else None

            jobs = wait_for(all_final, "every job to reach a final state", 120)
            assert all(j["status"] == "success" for j in jobs), [(j["tag"], j["message"]) for j in jobs]
            throttled_target = RegistryClient(regions[B].url, "admin", ADMIN_PASSWORD)
            for tag, image in images.items():
                assert tag_digest(throttled_target, tag, NAME) == image.digest

            refusals = proxy.throttled()
            assert refusals, "the proxy throttled some of the copy's requests"
            early = [
                (round(refused, 3), round(sent - refused, 3))
                for refused in refusals
                for sent in proxy.forwarded()
                if refused + IN_FLIGHT_SECONDS < sent < refused + proxy.retry_after - 0.05
            ]
            assert not early, f"requests reached the throttling peer before its Retry-After: {early}"
            # The healthy peer never waited for the throttled one: each image got there well
            # before a single Retry-After would have let it.
            assert max(seen_at_c.values()) < proxy.retry_after, seen_at_c
            # Fewer jobs at once to the throttling peer (AIMD), all of them to the healthy one.
            assert peer_concurrency(regions[A], B) < 32 == peer_concurrency(regions[A], C)
    finally:
        proxy.stop()


def peer_concurrency(server: FerryServer, region: str) -> float:
    """ferry_sync_peer_concurrency for `region` in the server's /metrics."""
    text = requests.get(f"{server.url}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("ferry_sync_peer_concurrency{") and f'target_region="{region}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no ferry_sync_peer_concurrency for {region}")


def job_overlap(jobs: list[dict[str, Any]]) -> int:
    """The most jobs that ran at the same moment, from their startedAt and finishedAt."""
    moments = []
    for job in jobs:
        moments.append((_moment(job["startedAt"]), 1))
        moments.append((_moment(job["finishedAt"]), -1))
    running = most = 0
    for _, change in sorted(moments):
        running += change
        most = max(most, running)
    return most


def _moment(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_a_peer_out_of_requests_gets_none_before_its_reset_and_a_job_cap_holds(tmp_path: Path) -> None:
    proxy = ThrottleProxy(every=0, rate_limited_every=5, rate_limit_reset=1.5, delay=0.05).start()
    try:
        regions = make_regions(
            tmp_path, [A, B], peer_urls={(A, B): proxy.url}, peer_fields={(A, B): {"max_jobs": 2}}
        )
        with started(regions):
            proxy.upstream = regions[B].url
            for region in (A, B):
                create_org(regions[region], NS)
            create_repo(regions[A], NS, REPO)
            assert create_rule(regions[A], NS, REPO, B, NS, sync_auto=True) == 200
            source = RegistryClient(regions[A].url, "admin", ADMIN_PASSWORD)
            images = {f"r{i}": make_image(f"rate-limited-{i}") for i in range(6)}
            for tag, image in images.items():
                push_image(source, NAME, tag, image)

            records = Records(regions[A], A, NS, REPO)

            def all_final() -> list[dict[str, Any]] | None:
                jobs = records.jobs()
                return jobs if len(jobs) == len(images) and all(j["status"] in FINAL for j in jobs) else None

            jobs = wait_for(all_final, "every job to reach a final state", 120)
            assert all(j["status"] == "success" for j in jobs), [(j["tag"], j["message"]) for j in jobs]
            assert proxy.rate_limited(), "the proxy said the peer was out of requests"
            early = [
                (round(limited, 3), round(sent - limited, 3))
                for limited in proxy.rate_limited()
                for sent in proxy.forwarded()
                if limited + proxy.delay + IN_FLIGHT_SECONDS < sent < limited + proxy.rate_limit_reset - 0.05
            ]
            assert not early, f"requests reached the peer before its RateLimit-Reset: {early}"
            assert job_overlap(jobs) <= 2, "more than max_jobs jobs ran at once to the capped peer"
    finally:
        proxy.stop()


BULK_TAGS = 2000


def test_a_fresh_push_goes_ahead_of_a_manual_sync_of_two_thousand_tags(tmp_path: Path) -> None:
    """Jobs were claimed oldest first: a push behind a big manual sync waited for all of it."""
    with started(make_regions(tmp_path, [A, B])) as regions:
        for region in (A, B):
            create_org(regions[region], NS)
        for repository in ("bulk", "fresh"):
            create_repo(regions[A], NS, repository)
        assert create_rule(regions[A], NS, "fresh", B, NS, sync_auto=True) == 200

        source = RegistryClient(regions[A].url, "admin", ADMIN_PASSWORD)
        old = make_image("bulk-old")
        tags = [f"t{i:04d}" for i in range(BULK_TAGS)]
        push_image(source, f"{NS}/bulk", tags[0], old)
        for tag in tags[1:]:  # the same image under 2,000 tags: one manifest PUT each
            assert put_manifest(source, f"{NS}/bulk", tag, old).status_code == 201
        for batch in (tags[:1000], tags[1000:]):  # the SWR API takes up to 1,000 tags a call
            assert manual_sync(regions[A], NS, "bulk", batch, B, NS) == []

        new = make_image("fresh-push")
        push_image(source, f"{NS}/fresh", "v1", new)
        pushed = time.monotonic()
        target = RegistryClient(regions[B].url, "admin", ADMIN_PASSWORD)
        while tag_digest(target, "v1", f"{NS}/fresh") != new.digest:
            assert time.monotonic() - pushed < 30, "the fresh push never arrived"
            time.sleep(0.02)
        lag = time.monotonic() - pushed
        listed = target.get(f"/v2/{NS}/bulk/tags/list", params={"n": 10000})
        copied = len(listed.json().get("tags") or []) if listed.status_code == 200 else 0
        assert copied < BULK_TAGS, "the manual sync was still running when the push arrived"
        assert lag < 1.0, f"the fresh push took {lag:.2f} s behind {BULK_TAGS - copied} manual jobs"
