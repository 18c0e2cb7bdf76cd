"""Scale-out (DESIGN.md "Scale-out", invariant 4): one region as two API-only processes and two
`ferry worker` processes sharing one PostgreSQL database and one S3 bucket.

- Any API process serves any request, even the next chunk of an upload another process started,
  with a registry token another process issued.
- Two workers share a queue of 100 jobs: each job runs exactly once, both workers take part.
- A worker SIGKILLed mid-job loses its lease; the other worker finishes the job.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.images import OCTET_STREAM, digest_of, push_blob, push_manifest
from tests.support.layouts import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    pseudo_random,
    stream_digest,
    tagged_digest,
    verify_blobs,
)
from tests.support.registry_client import RegistryClient
from tests.support.s3server import S3Server
from tests.support.scaled import TARGET, ScaledRegion, start_scaled_region
from tests.support.server import ADMIN_PASSWORD
from tests.support.sync_helpers import (
    create_org,
    image_layout,
    jobs,
    manual_sync,
    skopeo_pull,
    skopeo_push,
    skopeo_raw_digest,
    tag_digest,
    wait_for,
    wait_jobs_final,
)

MiB = 1024 * 1024
ORG = "scale"
MIRROR = "mirror"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("scale-s3")).start(timeout=180)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def region(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, s3: S3Server
) -> Iterator[ScaledRegion]:
    scaled = start_scaled_region(tmp_path_factory.mktemp("scaled"), postgres_url, s3, slots=2)
    try:
        create_org(scaled.api(0), ORG)
        create_org(scaled.target, MIRROR)
        yield scaled
    finally:
        scaled.stop()


def bearer(client: RegistryClient, repo: str) -> dict[str, str]:
    """The token `client` holds for `repo` (fetched from the process `client` talks to)."""
    return {"Authorization": f"Bearer {client.tokens[repo]}"}


def config_blob(label: str) -> bytes:
    return json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {"Labels": {"n": label}}}, sort_keys=True
    ).encode()


def manifest(config: bytes, layers: list[tuple[str, int]]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": d, "size": s} for d, s in layers],
        }
    ).encode()


# --- (a) any API process serves any request -----------------------------------------------------


def test_one_upload_spread_over_both_api_processes(region: ScaledRegion) -> None:
    repo = f"{ORG}/chunked"
    one = RegistryClient(region.api(0).url, "admin", ADMIN_PASSWORD)
    two = RegistryClient(region.api(1).url, "admin", ADMIN_PASSWORD)
    body = b"".join(pseudo_random("scale-out-chunked", 13 * MiB + 5))
    digest = digest_of(body)
    cuts = [0, 5 * MiB + 3, 11 * MiB + 1, len(body)]

    started = one.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    # API 1's token is accepted by API 2: they share FERRY_SECRET_KEY, not a data directory.
    token = bearer(one, repo)
    plan = [(region.api(1).url, 0), (region.api(0).url, 1)]
    for base, piece in plan:
        start, end = cuts[piece], cuts[piece + 1]
        response = requests.patch(
            base + location,
            data=body[start:end],
            headers=token | OCTET_STREAM | {"Content-Range": f"{start}-{end - 1}"},
            timeout=120,
        )
        assert response.status_code == 202, (base, response.status_code, response.text)
        assert response.headers["Range"] == f"0-{end - 1}"
        location = response.headers["Location"]
    status = requests.get(region.api(1).url + location, headers=token, timeout=60)
    assert status.status_code == 204, status.text
    assert status.headers["Range"] == f"0-{cuts[2] - 1}"
    # The last bytes ride on the closing PUT, on API 2.
    separator = "&" if "?" in location else "?"
    finished = requests.put(
        f"{region.api(1).url}{location}{separator}digest={digest}",
        data=body[cuts[2] :],
        headers=token | OCTET_STREAM,
        timeout=120,
    )
    assert finished.status_code == 201, finished.text
    assert finished.headers["Docker-Content-Digest"] == digest

    for client in (one, two):
        head = client.head(f"/v2/{repo}/blobs/{digest}")
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == len(body)
        got = client.get(f"/v2/{repo}/blobs/{digest}")
        assert got.status_code == 200
        assert got.headers["Docker-Content-Digest"] == digest
        assert stream_digest(iter([got.content])) == (digest, len(body))
        ranged = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=5242880-5242890"})
        assert ranged.status_code == 206
        assert ranged.content == body[5 * MiB : 5 * MiB + 11]

    # A manifest pushed through API 1 is at once visible through API 2.
    config = config_blob("chunked")
    push_blob(one, repo, config)
    payload = manifest(config, [(digest, len(body))])
    pushed = push_manifest(one, repo, "v1", payload)
    assert pushed == digest_of(payload)
    seen = two.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert seen.status_code == 200, seen.text
    assert seen.content == payload
    assert seen.headers["Docker-Content-Digest"] == pushed
    assert two.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]


def test_skopeo_push_to_one_process_pull_from_the_other(region: ScaledRegion, tmp_path: Path) -> None:
    image = image_layout(tmp_path / "src", [("scale-skopeo-a", 3 * MiB), ("scale-skopeo-b", 1 * MiB)], "v1")
    skopeo_push(region.api(0), image.root, "v1", f"{ORG}/skopeo:v1")
    assert skopeo_raw_digest(region.api(1), f"{ORG}/skopeo:v1") == image.digest
    pulled = tmp_path / "pulled"
    skopeo_pull(region.api(1), f"{ORG}/skopeo:v1", pulled, "v1")
    assert tagged_digest(pulled, "v1") == image.digest
    verify_blobs(pulled)  # every pulled blob's bytes match its digest
    for layer in image.layers:
        assert (
            pulled / "blobs" / "sha256" / layer.digest.removeprefix("sha256:")
        ).stat().st_size == layer.size


# --- (b) two workers share the queue -------------------------------------------------------------


def test_hundred_jobs_run_exactly_once_shared_by_two_workers(region: ScaledRegion) -> None:
    repo, count = f"{ORG}/many", 100
    clients = [RegistryClient(region.api(i).url, "admin", ADMIN_PASSWORD) for i in (0, 1)]
    layer = b"".join(pseudo_random("scale-out-many-layer", 64 * 1024))
    layer_digest = push_blob(clients[0], repo, layer)
    tags = [f"t{i:03d}" for i in range(count)]
    digests: dict[str, str] = {}
    for i, tag in enumerate(tags):
        client = clients[i % 2]  # pushes alternate between the two API processes
        config = config_blob(tag)
        push_blob(client, repo, config)
        digests[tag] = push_manifest(client, repo, tag, manifest(config, [(layer_digest, len(layer))]))
    assert len(set(digests.values())) == count

    assert manual_sync(region.api(1), ORG, "many", tags, TARGET, MIRROR) == []
    records = wait_jobs_final(region.api(0), ORG, "many", count, timeout=600)

    assert len(records) == count, f"{len(records)} records for {count} tags"
    assert sorted(r["tag"] for r in records) == tags, "a job is missing or duplicated"
    problems = [r for r in records if r["status"] != "success" or r["attempts"] != 1]
    assert problems == [], problems[:3]
    assert all(r["digest"] == digests[r["tag"]] for r in records)

    target = RegistryClient(region.target.url, "admin", ADMIN_PASSWORD)
    listed = target.get(f"/v2/{MIRROR}/many/tags/list", params={"n": 1000})
    assert listed.status_code == 200, listed.text
    assert sorted(listed.json()["tags"]) == tags
    for tag in tags:
        assert tag_digest(region.target, f"{MIRROR}/many", tag) == digests[tag]

    # Who ran what, from the workers' own logs: every job exactly once, and both took part.
    done = [worker.jobs_done() for worker in region.workers]
    ids = {r["id"] for r in records}
    first, second = (set(d) & ids for d in done)
    assert first and second, f"one worker did nothing: {len(first)} / {len(second)}"
    assert first.isdisjoint(second), sorted(first & second)[:5]
    assert first | second == ids
    assert all(d[i] == "success" for d in done for i in set(d) & ids)


# --- (c) a killed worker's job is finished by the other one --------------------------------------


BIG = 192 * MiB
BIG_SEED = "scale-out-big"


@pytest.fixture
def slow_region(tmp_path: Path, postgres_url: str, s3: S3Server) -> Iterator[ScaledRegion]:
    env = {"FERRY_SYNC_CHUNK_BYTES": str(8 * MiB), "FERRY_SYNC_LEASE_SECONDS": "3"}
    scaled = start_scaled_region(tmp_path, postgres_url, s3, slots=1, extra_env=env)
    try:
        create_org(scaled.api(0), ORG)
        create_org(scaled.target, MIRROR)
        yield scaled
    finally:
        scaled.stop()


def test_worker_killed_mid_job_its_job_is_finished_by_the_other(slow_region: ScaledRegion) -> None:
    region, repo = slow_region, f"{ORG}/big"
    client = RegistryClient(region.api(0).url, "admin", ADMIN_PASSWORD)
    digest, size = stream_digest(pseudo_random(BIG_SEED, BIG))
    started = client.post(f"/v2/{repo}/blobs/uploads/")  # also fetches the push token
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    separator = "&" if "?" in location else "?"
    uploaded = client.put(
        f"{location}{separator}digest={digest}",
        data=pseudo_random(BIG_SEED, BIG),
        headers=OCTET_STREAM,
        timeout=600,
    )
    assert uploaded.status_code == 201, uploaded.text
    config = config_blob("big")
    push_blob(client, repo, config)
    image = push_manifest(client, repo, "big", manifest(config, [(digest, size)]))

    assert manual_sync(region.api(1), ORG, "big", ["big"], TARGET, MIRROR) == []
    [job] = wait_for(lambda: jobs(region.api(0), ORG, "big") or None, "the sync record")
    job_id = job["id"]

    # Whose lease is it? lease_owner is "host:pid:nonce"; wait until some chunks are acknowledged.
    pids = {worker.pid: worker for worker in region.workers}

    def running_with_progress() -> int | None:
        owner = region.lease_owners().get(job_id)
        if owner is None or region.transfers().get(job_id, 0) <= 0:
            return None
        return int(owner.split(":")[1])

    owner_pid = wait_for(running_with_progress, "the job to run and send a chunk", timeout=300)
    assert owner_pid in pids, (owner_pid, list(pids))
    victim = pids[owner_pid]
    [survivor] = [w for w in region.workers if w is not victim]
    sent = region.transfers()[job_id]
    assert sent < BIG, "the job finished before the worker could be killed"
    victim.kill()
    assert victim.process is not None and victim.process.returncode == -signal.SIGKILL

    final = wait_jobs_final(region.api(1), ORG, "big", 1, timeout=600)[0]
    assert final["status"] == "success", final
    assert final["attempts"] >= 2, final
    assert final["digest"] == image
    assert tag_digest(region.target, f"{MIRROR}/big", "big") == image
    target = RegistryClient(region.target.url, "admin", ADMIN_PASSWORD)
    head = target.head(f"/v2/{MIRROR}/big/blobs/{digest}")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == BIG

    # The survivor logged the success; the killed worker never got to.
    assert survivor.jobs_done().get(job_id) == "success", survivor.text()[-2000:]
    assert job_id not in victim.jobs_done()
    # It resumed from the acknowledged offset rather than from zero.
    assert 0 < final["bytes"] <= BIG - sent + 64 * 1024, (final["bytes"], sent)
    deadline = time.monotonic() + 5
    while region.lease_owners().get(job_id) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert region.lease_owners().get(job_id) is None
