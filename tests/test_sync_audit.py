"""Audit and self-repair between two real regions: the test damages region B directly (a tag, a
blob file, a child manifest of an index, a referrer), `ferry sync audit` finds each kind of drift,
`--repair` fixes all of it, and the background reconciler does too on its own.

Results are read from the APIs and /metrics, never from logs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ferry.config import Settings
from ferry.images.digests import sha256_digest
from ferry.sync import pacing
from ferry.sync.pacing import TokenBucket
from ferry.sync.reconciler import Reconciler
from tests.support.images import Image, make_image, make_index, push_image, put_manifest
from tests.support.inprocess import World
from tests.support.layouts import OCI_INDEX
from tests.support.names import unique
from tests.support.regions import ACCESS_KEY, SECRET_KEY, Regions, make_regions
from tests.support.server import FerryServer, store_of
from tests.support.swr import TokenSession, iam_token
from tests.support.sync_helpers import (
    ACCEPT,
    create_org,
    create_repo,
    create_rule,
    jobs,
    manage,
    push_signature,
    referrer_digests,
    registry,
    tag_digest,
    wait_for,
    wait_tag,
)

A, B = "cn-north-4", "cn-east-3"
PASSWORD = "sync-audit-pass-123"
KINDS = {"missing_tag", "missing_blob", "missing_manifest", "missing_referrer"}


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    # No reconciler at first: the CLI's audit must see the damage before anything heals it.
    env = {"FERRY_AUDIT_INTERVAL_SECONDS": "0", "FERRY_AUDIT_RATE": "200"}
    started = make_regions(tmp_path_factory.mktemp("audit"), [A, B], extra_env=env)
    yield started
    started.stop()


@dataclass(frozen=True)
class Synced:
    """org/app at A, synced to the same organization at B: an index of two platforms under
    `multi` with a signature, and one image under `single`."""

    org: str
    index: Image
    single: Image
    signature: str

    @property
    def name(self) -> str:
        return f"{self.org}/app"

    @property
    def manifests(self) -> set[str]:
        return set(self.index.all_manifests()) | {self.single.digest, self.signature}


def _settled(a: FerryServer, org: str) -> bool:
    return all(j["status"] in ("success", "existed") for j in jobs(a, org, "app"))


def sync_repository(a: FerryServer, b: FerryServer) -> Synced:
    org = unique("audit")
    create_org(a, org)
    create_org(b, org)
    create_repo(a, org, "app")
    create_rule(a, org, "app", B, org)
    index, single = make_index(org), make_image(f"{org}-single")
    push_image(registry(a), f"{org}/app", "multi", index)
    push_image(registry(a), f"{org}/app", "single", single)
    signature = push_signature(a, f"{org}/app", index.digest, OCI_INDEX, len(index.manifest), "signed")
    synced = Synced(org, index, single, signature)
    wait_tag(b, synced.name, "multi", index.digest)
    wait_tag(b, synced.name, "single", single.digest)
    wait_for(lambda: signature in referrer_digests(b, synced.name, index.digest), "the signature at B")
    wait_for(lambda: _settled(a, org), "the sync jobs to end")
    return synced


def damage(b: FerryServer, synced: Synced) -> None:
    """At B, behind the sync's back: a tag, a blob file, a child manifest, a referrer."""
    path = f"/v2/manage/namespaces/{synced.org}/repos/app/tags/single"
    assert manage(b).request("DELETE", path).status_code == 204
    amd64, arm64 = synced.index.children
    delete_bytes(b, json.loads(amd64.manifest)["layers"][0]["digest"])
    for digest in (arm64.digest, synced.signature):
        response = registry(b).delete(f"/v2/{synced.name}/manifests/{digest}")
        assert response.status_code == 202, response.text


def delete_bytes(server: FerryServer, digest: str) -> None:
    """Removes a blob's bytes from the store behind the region's back; its row stays."""
    asyncio.run(store_of(server).delete(digest))


def replace_bytes(server: FerryServer, digest: str, data: bytes) -> None:
    """Puts other bytes under the digest in the store (bit rot, seen from outside)."""

    async def put() -> None:
        store = store_of(server)

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        await store.start_upload("audit-test-rot")
        await store.append_upload("audit-test-rot", chunks())
        await store.commit_upload("audit-test-rot", digest)

    asyncio.run(put())


def audit(a: FerryServer, target: str, *flags: str) -> tuple[int, list[dict[str, Any]]]:
    """`ferry sync audit TARGET --json FLAGS` against region A: exit code and the audits."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    connection = ["--endpoint", a.url, "--ak", ACCESS_KEY, "--sk", SECRET_KEY]
    result = subprocess.run(
        [sys.executable, "-m", "ferry", "sync", "audit", target, "--json", *connection, *flags],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def kinds(audits: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Drift kinds by tag."""
    found: dict[str, set[str]] = {}
    for item in (d for a in audits for d in a["drift"]):
        found.setdefault(item["tag"], set()).add(item["kind"])
    return found


def intact_at_b(b: FerryServer, synced: Synced) -> bool:
    """Every tag, manifest and blob of the repository is served by B, byte for byte."""
    client = registry(b)
    tags = {"multi": synced.index.digest, "single": synced.single.digest}
    for tag, digest in tags.items():
        head = client.head(f"/v2/{synced.name}/manifests/{tag}", headers={"Accept": ACCEPT})
        if head.headers.get("Docker-Content-Digest") != digest:
            return False
    for digest in synced.manifests:
        response = client.get(f"/v2/{synced.name}/manifests/{digest}", headers={"Accept": ACCEPT})
        if response.status_code != 200 or sha256_digest(response.content) != digest:
            return False
    for digest in set(synced.index.all_blobs()) | set(synced.single.blobs):
        response = client.get(f"/v2/{synced.name}/blobs/{digest}")
        if response.status_code != 200 or sha256_digest(response.content) != digest:
            return False
    return True


def repaired_total(server: FerryServer, kind: str, target: str) -> float:
    text = registry(server).get("/metrics").text
    pattern = rf'^ferry_sync_drift_repaired_total\{{kind="{kind}",target="{re.escape(target)}"\}} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_audit_finds_every_kind_of_drift_and_repair_fixes_it(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    synced = sync_repository(a, b)
    code, audits = audit(a, synced.name)
    assert code == 0 and audits[0]["drift"] == [] and audits[0]["tagsChecked"] == 2, audits
    assert audits[0]["requests"] > 0 and audits[0]["auditId"]

    damage(b, synced)
    code, audits = audit(a, synced.name)
    assert code == 1
    assert kinds(audits) == {"single": {"missing_tag"}, "multi": KINDS - {"missing_tag"}}, audits
    # The organization form audits each of its repositories, here the one.
    code, by_org = audit(a, synced.org, "--to", B)
    assert code == 1 and kinds(by_org) == kinds(audits)

    before = {j["id"] for j in jobs(a, synced.org, "app")}
    code, repaired = audit(a, synced.name, "--repair")
    assert code == 1 and repaired[0]["repaired"] == 4, repaired

    def repairs_done() -> list[dict[str, Any]] | None:
        found = [j for j in jobs(a, synced.org, "app") if j["id"] not in before]
        return found if found and all(j["status"] == "success" for j in found) else None

    done = wait_for(repairs_done, "the repair jobs to succeed")
    assert {j["tag"] for j in done} == {"single", "multi"} and {j["trigger"] for j in done} == {"repair"}
    code, audits = audit(a, synced.name)
    assert code == 0 and audits[0]["drift"] == [], audits
    assert intact_at_b(b, synced)
    target = f"{B}/{synced.org}"
    assert all(repaired_total(a, kind, target) >= 1 for kind in KINDS)

    # Bytes changed under the digest: only reading them back shows it, and no copy mends it.
    layer = json.loads(synced.single.manifest)["layers"][0]["digest"]
    replace_bytes(b, layer, b"x" * len(synced.single.blobs[layer]))
    code, audits = audit(a, synced.name)
    assert code == 0, audits
    code, audits = audit(a, synced.name, "--verify-sample", "1", "--repair")
    assert code == 1 and kinds(audits) == {"single": {"corrupt_blob"}}, audits
    assert audits[0]["repaired"] == 0


def test_a_conflict_is_reported_not_repaired_and_an_old_backup_is_brought_forward(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    org = unique("audit")
    create_org(a, org)
    create_org(b, org)
    create_repo(a, org, "app")
    name = f"{org}/app"
    push_image(registry(a), name, "old", make_image(f"{org}-old"))  # before the rule: never synced
    create_rule(a, org, "app", B, org)
    # B holds an image of its own under a tag A then pushes: override is off, so it stays.
    theirs = make_image(f"{org}-b-own")
    push_image(registry(b), name, "theirs", theirs)
    push_image(registry(a), name, "theirs", make_image(f"{org}-a"))
    # "moving" synced at v1, then at v2; then B is set back to v1, as a restore from a backup.
    v1, v2 = make_image(f"{org}-v1"), make_image(f"{org}-v2")
    push_image(registry(a), name, "moving", v1)
    wait_tag(b, name, "moving", v1.digest)
    push_image(registry(a), name, "moving", v2)
    wait_tag(b, name, "moving", v2.digest)
    wait_for(lambda: _settled(a, org), "the sync jobs to end")
    assert put_manifest(registry(b), name, "moving", v1).status_code == 201

    code, audits = audit(a, name)
    assert code == 1 and kinds(audits) == {"theirs": {"conflict"}, "moving": {"digest_mismatch"}}, audits
    assert audits[0]["notSynced"] == 1 and audits[0]["tagsChecked"] == 2
    code, repaired = audit(a, name, "--repair")
    assert code == 1 and repaired[0]["repaired"] == 1, repaired
    wait_tag(b, name, "moving", v2.digest)
    code, audits = audit(a, name)
    assert code == 1 and kinds(audits) == {"theirs": {"conflict"}}, audits
    assert tag_digest(b, name, "theirs") == theirs.digest


def test_reading_suffices_to_audit_and_repairing_needs_edit_rights(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    org = unique("audit")
    create_org(a, org)
    create_org(b, org)
    create_repo(a, org, "app")
    create_rule(a, org, "app", B, org)
    reader = unique("reader")
    a.user(reader, PASSWORD)
    a.grant(reader, org, 1)
    session = TokenSession(a, iam_token(a, reader, PASSWORD, A))
    path = f"/v2/manage/namespaces/{org}/repos/app/sync_audit"
    answer = session.request("POST", path, {})
    assert answer.status_code == 200 and answer.json()["targets"] == [f"{B}/{org}"], answer.text
    assert session.request("POST", path, {"repair": True}).status_code == 403
    unknown = session.request("POST", path, {"remoteRegionId": "nowhere-1"})
    assert unknown.status_code == 400 and "valid target regions" in unknown.json()["error_msg"]
    assert session.request("POST", path, {"verifySample": 2}).status_code == 400


def test_the_reconciler_heals_region_b_by_itself(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    synced = sync_repository(a, b)
    target = f"{B}/{synced.org}"
    a.stop()
    a.env["FERRY_AUDIT_INTERVAL_SECONDS"] = "1"
    a.start()
    damage(b, synced)
    assert not intact_at_b(b, synced)
    wait_for(lambda: intact_at_b(b, synced), "the reconciler to repair region B")
    assert all(repaired_total(a, kind, target) >= 1 for kind in KINDS)
    code, audits = audit(a, synced.name)
    assert code == 0 and audits[0]["drift"] == [], audits


async def test_the_token_bucket_paces_to_its_rate_after_a_burst() -> None:
    bucket = TokenBucket(rate=50)
    began = time.monotonic()
    for _ in range(50):  # the burst: one second's worth at once
        await bucket.acquire()
    assert time.monotonic() - began < 0.1
    for _ in range(10):
        await bucket.acquire()
    assert 0.15 < time.monotonic() - began < 1.0


async def test_audit_requests_step_aside_while_a_live_job_copies() -> None:
    bucket = TokenBucket(rate=1000)
    with pacing.LIVE.copying():
        waiting = asyncio.ensure_future(bucket.acquire())
        await asyncio.sleep(0.2)
        assert not waiting.done()  # a live job copies: the audit request waits
    await asyncio.wait_for(waiting, 0.5)  # the job ended: it goes at once
    with pacing.LIVE.copying():  # a live job that never ends slows the audit, never stops it
        began = time.monotonic()
        await bucket.acquire()
        assert pacing.YIELD_SECONDS - 0.1 < time.monotonic() - began < pacing.YIELD_SECONDS + 1


async def test_one_process_claims_a_due_round_and_keeps_it_while_it_renews(tmp_path: Path) -> None:
    world = await World(f"sqlite+aiosqlite:///{tmp_path / 'ferry.db'}", tmp_path).open()
    try:
        settings = Settings(audit_interval_seconds=0.5, data_dir=tmp_path)
        first, second = (Reconciler(settings, world.db, world.store, {}) for _ in range(2))
        assert not await first.claim()  # switched on just now: the first round is an interval away
        await asyncio.sleep(0.6)
        assert await first.claim() and not await second.claim()
        for _ in range(3):  # the owner works on, renewing: nobody else takes the round
            await asyncio.sleep(0.3)
            await first.renew()
            assert not await second.claim()
        await asyncio.sleep(0.6)  # the owner stopped renewing (it died, or the round ended)
        assert await second.claim() and not await first.claim()
    finally:
        await world.close()
