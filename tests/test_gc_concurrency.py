"""GC competes with pushes, deletes and syncs, and never takes a blob an image still needs.

Two regions (A syncs every tag to B) each run the background GC every 0.2 s with a 1 s grace,
and a thread runs `ferry gc` against A too, for a bounded time while threads push images that
share layers (so layers keep becoming garbage and being needed again), move tags and delete
tags and manifests. Afterwards every tag left in either region must pull byte-identical. A GC
that collected a blob a racing push (or sync) relied on leaves a tag whose blob is gone, and
this test fails.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.support.images import OCTET_STREAM, Image, digest_of, put_manifest
from tests.support.layouts import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST
from tests.support.regions import Regions, make_regions
from tests.support.registry_client import RegistryClient
from tests.support.server import ADMIN_PASSWORD, FerryServer
from tests.support.sync_helpers import FINAL, create_org, create_repo, create_rule, jobs, wait_for

A, B = "cn-north-4", "cn-east-3"
ORG, REPO = "gcrace", "app"
NAME = f"{ORG}/{REPO}"
HAMMER_SECONDS = 15
LAYERS = [random.Random(n).randbytes(512 + n) for n in range(6)]


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    env = {
        "FERRY_GC_INTERVAL_SECONDS": "0.2",
        "FERRY_GC_GRACE_SECONDS": "1",
        "FERRY_SYNC_RETRY_SECONDS": "1",
    }
    started = make_regions(tmp_path_factory.mktemp("gc-race"), [A, B], extra_env=env)
    yield started
    started.stop()


def build(seed: str, rng: random.Random) -> Image:
    """An image of a unique config and one layer from a small shared pool."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layers = rng.sample(LAYERS, 1)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": digest_of(x), "size": len(x)} for x in layers],
        }
    ).encode()
    return Image(manifest, {digest_of(config): config} | {digest_of(x): x for x in layers})


def push(client: RegistryClient, tag: str, image: Image) -> bool:
    """As a client does: HEAD each blob, upload the missing ones, PUT the manifest; when GC took
    a blob between the HEAD and the PUT (MANIFEST_BLOB_UNKNOWN) push again."""
    for _attempt in range(10):
        for digest, data in image.blobs.items():
            if client.head(f"/v2/{NAME}/blobs/{digest}").status_code != 200:
                response = client.post(
                    f"/v2/{NAME}/blobs/uploads/?digest={digest}", data=data, headers=OCTET_STREAM
                )
                assert response.status_code == 201, response.text
        response = put_manifest(client, NAME, tag, image)
        if response.status_code == 201:
            return True
        assert response.status_code == 400 and "MANIFEST_BLOB_UNKNOWN" in response.text, response.text
    return False


class Hammer:
    def __init__(self, a: FerryServer) -> None:
        self.a = a
        self.stop_at = time.monotonic() + HAMMER_SECONDS
        self.errors: list[BaseException] = []
        self.pushed: dict[str, Image] = {}  # every image pushed, by digest
        self.latest: dict[str, str] = {}  # keep-tag → the digest last pushed to it
        self.lock = threading.Lock()
        self.deletable: list[tuple[str, str]] = []  # (tag, digest) pushes the deleter may remove
        self.gc_runs = 0

    def running(self) -> bool:
        return time.monotonic() < self.stop_at and not self.errors

    def guarded(self, work: object) -> threading.Thread:
        def run() -> None:
            try:
                work()  # type: ignore[operator]
            except BaseException as error:  # reported by the test
                self.errors.append(error)

        return threading.Thread(target=run, daemon=True)

    def pusher(self, worker: int) -> None:
        client = RegistryClient(self.a.url, "admin", ADMIN_PASSWORD)
        rng = random.Random(worker)
        n = 0
        while self.running():
            n += 1
            image = build(f"{worker}-{n}", rng)
            with self.lock:
                self.pushed[image.digest] = image
            if n % 3:
                tag = f"tmp-{worker}-{n}"
                if push(client, tag, image):
                    with self.lock:
                        self.deletable.append((tag, image.digest))
            else:
                tag = f"keep-{worker}"  # moved again and again: old images become garbage
                if push(client, tag, image):
                    self.latest[tag] = image.digest

    def deleter(self) -> None:
        client = RegistryClient(self.a.url, "admin", ADMIN_PASSWORD)
        n = 0
        while self.running():
            with self.lock:
                victim = self.deletable.pop(0) if self.deletable else None
            if victim is None:
                time.sleep(0.05)
                continue
            n += 1
            tag, digest = victim
            reference = digest if n % 2 else tag  # by digest: the manifest; by tag: the tag only
            response = client.delete(f"/v2/{NAME}/manifests/{reference}")
            assert response.status_code in (202, 404), response.text

    def collector(self) -> None:
        while self.running():
            result = self.a.cli("gc", check=False)
            # 1: another collector (the background one) held the lease; anything else is a failure.
            assert result.returncode in (0, 1), result.stdout + result.stderr
            self.gc_runs += result.returncode == 0


def verify_tags(server: FerryServer, pushed: dict[str, Image]) -> dict[str, str]:
    """Every tag of the repository pulls byte-identical to the image pushed; returns tag → digest."""
    client = RegistryClient(server.url, "admin", ADMIN_PASSWORD)
    tags = client.get(f"/v2/{NAME}/tags/list?n=10000").json()["tags"] or []
    found = {}
    for tag in tags:
        response = client.get(f"/v2/{NAME}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        assert response.status_code == 200, f"{server.url} {tag}: {response.text}"
        digest = digest_of(response.content)
        assert response.headers["Docker-Content-Digest"] == digest
        image = pushed[digest]
        assert response.content == image.manifest
        for blob_digest, data in image.blobs.items():
            blob = client.get(f"/v2/{NAME}/blobs/{blob_digest}")
            assert blob.status_code == 200, (
                f"{server.url} {tag}: blob {blob_digest} is gone ({blob.status_code})"
            )
            assert blob.content == data
        found[tag] = digest
    return found


def gc_successes(server: FerryServer) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=30).text
    lines = [line for line in text.splitlines() if line.startswith('ferry_gc_runs_total{outcome="success"}')]
    return float(lines[0].split()[-1]) if lines else 0.0


def test_gc_never_collects_what_a_racing_push_or_sync_needs(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    create_org(a, ORG)
    create_org(b, ORG)
    create_repo(a, ORG, REPO)
    assert create_rule(a, ORG, REPO, B, ORG, sync_auto=True) == 200
    hammer = Hammer(a)
    threads = [hammer.guarded(lambda w=w: hammer.pusher(w)) for w in range(2)]
    threads += [hammer.guarded(hammer.deleter), hammer.guarded(hammer.collector)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=HAMMER_SECONDS + 120)
    if hammer.errors:
        raise hammer.errors[0]

    def all_final() -> bool:
        return all(job["status"] in FINAL for job in jobs(a, ORG, REPO))

    wait_for(all_final, "every sync job to finish", timeout=90)
    in_a = verify_tags(a, hammer.pushed)
    in_b = verify_tags(b, hammer.pushed)
    assert {tag: in_a[tag] for tag in hammer.latest} == hammer.latest
    assert set(hammer.latest) <= set(in_b)  # every kept tag reached B (a version of it)
    assert len(hammer.pushed) > 10 and len(in_b) > 2  # the hammer really ran
    assert hammer.gc_runs + gc_successes(a) > 5 and gc_successes(b) > 5
