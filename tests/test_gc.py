"""`ferry gc`: the dry run lists exactly what the real run deletes, the store shrinks by the
bytes reported, kept images pull byte-identical and SWR's repository size follows; on the
filesystem and on S3 (moto).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ferry.identity.caller import Operator
from ferry.images import manifests
from ferry.images.events import NoTagEvents
from ferry.images.gc import GarbageCollector, GcPolicy
from ferry.storage import BlobStore, FilesystemBlobStore
from tests.support.images import Image, digest_of, make_image, make_index, push_image
from tests.support.inprocess import World
from tests.support.inprocess import image as built_image
from tests.support.inprocess import index as built_index
from tests.support.registry_client import RegistryClient
from tests.support.s3server import S3Server
from tests.support.server import ADMIN_PASSWORD, FerryServer, free_port, store_of

ORG, REPO = "gcorg", "app"
NAME = f"{ORG}/{REPO}"
EMPTY = b"{}"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
GC_ENV = {"FERRY_GC_GRACE_SECONDS": "0", "FERRY_UPLOAD_EXPIRY_SECONDS": "0.2", "FERRY_SYNC_WORKERS": "0"}


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("gc-s3")).start()
    yield server
    server.stop()


@pytest.fixture(params=["filesystem", "s3"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FerryServer]:
    env = dict(GC_ENV)
    if request.param == "s3":
        env |= request.getfixturevalue("s3_server").server_env()
    ferry = FerryServer(tmp_path / "ferry", free_port(), env=env).start()
    yield ferry
    ferry.stop()


def blob_bytes_stored(server: FerryServer, store: BlobStore) -> int:
    """`du` of the blob directory (file sizes under it); for S3 the sizes of the blob objects."""
    if isinstance(store, FilesystemBlobStore):
        return sum(
            os.path.getsize(os.path.join(root, name))
            for root, _, names in os.walk(store.blobs)
            for name in names
        )

    async def listed() -> int:
        return sum([item.size async for batch in store.list_blobs() for item in batch])

    return asyncio.run(listed())


def referrer(subject: Image, seed: str) -> Image:
    """An artifact whose subject is `subject` (a signature, say), pushed by digest: untagged."""
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.example.sig",
            "config": {"mediaType": EMPTY_TYPE, "digest": digest_of(EMPTY), "size": len(EMPTY)},
            "layers": [{"mediaType": "text/plain", "digest": digest_of(seed.encode()), "size": len(seed)}],
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest,
                "size": len(subject.manifest),
            },
        }
    ).encode()
    return Image(manifest, {digest_of(EMPTY): EMPTY, digest_of(seed.encode()): seed.encode()})


def push_by_digest(client: RegistryClient, image: Image) -> None:
    push_image(client, NAME, image.digest, image)


def gc(server: FerryServer, *flags: str) -> dict[str, Any]:
    result = server.cli("gc", "--json", *flags)
    return dict(json.loads(result.stdout))


def items(report: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {(item["kind"], item["name"], item["size"]) for item in report["items"]}


def repository_size(server: FerryServer) -> int:
    response = requests.get(
        f"{server.url}/v2/manage/namespaces/{ORG}/repos/{REPO}",
        headers={"X-Auth-Token": server.admin_token()},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return int(response.json()["size"])


def overview_space(server: FerryServer) -> float:
    """The domain overview's store_space: every repository of the account (here only one)."""
    response = requests.get(
        f"{server.url}/v2/manage/overview", headers={"X-Auth-Token": server.admin_token()}, timeout=30
    )
    assert response.status_code == 200, response.text
    return float(response.json()["store_space"])


def swr_size(*images: Image) -> int:
    """SWR's repository size: each distinct blob once, plus every manifest."""
    blobs: dict[str, bytes] = {}
    manifests: dict[str, bytes] = {}
    for image in images:
        blobs |= image.all_blobs()
        manifests |= image.all_manifests()
    return sum(map(len, blobs.values())) + sum(map(len, manifests.values()))


def pulls_identical(client: RegistryClient, reference: str, image: Image) -> None:
    response = client.get(f"/v2/{NAME}/manifests/{reference}", headers={"Accept": image.media_type})
    assert response.status_code == 200, response.text
    assert response.content == image.manifest
    for digest, data in image.all_blobs().items():
        blob = client.get(f"/v2/{NAME}/blobs/{digest}")
        assert blob.status_code == 200 and digest_of(blob.content) == digest and blob.content == data
    for child in image.children:
        pulls_identical(client, child.digest, child)


def abandoned_upload(client: RegistryClient) -> tuple[str, int]:
    start = client.post(f"/v2/{NAME}/blobs/uploads/")
    assert start.status_code == 202, start.text
    location = start.headers["Location"]
    data = b"half of a layer"
    patch = client.patch(location, data=data, headers={"Content-Type": "application/octet-stream"})
    assert patch.status_code == 202, patch.text
    return location.rstrip("/").split("?")[0].rsplit("/", 1)[1], len(data)


def test_dry_run_lists_what_gc_then_deletes(server: FerryServer) -> None:
    server.org(ORG)
    client = RegistryClient(server.url, "admin", ADMIN_PASSWORD)
    kept, dropped, multi, loose = (
        make_image("kept"),
        make_image("dropped"),
        make_index("multi"),
        make_index("loose"),
    )
    kept_sig, dropped_sig = referrer(kept, "sig-kept"), referrer(dropped, "sig-dropped")
    push_image(client, NAME, "kept", kept)
    push_image(client, NAME, "dropped", dropped)
    push_image(client, NAME, "multi", multi)
    push_by_digest(client, loose)  # an untagged index, and its untagged children
    push_by_digest(client, kept_sig)
    push_by_digest(client, dropped_sig)
    assert client.delete(f"/v2/{NAME}/manifests/dropped").status_code == 202  # the tag only
    upload_id, upload_size = abandoned_upload(client)
    store = store_of(server)
    orphan = b"bytes no row knows"
    asyncio.run(_put_orphan(store, orphan))
    everything = (kept, dropped, multi, loose, kept_sig, dropped_sig)
    assert repository_size(server) == swr_size(*everything) == overview_space(server)
    before = blob_bytes_stored(server, store)

    dry = gc(server, "--dry-run")
    shown = server.cli("gc", "--dry-run").stdout  # what an operator reads: every item, the totals
    assert all(name in shown for _, name, _ in items(dry)) and "would delete" in shown
    assert blob_bytes_stored(server, store) == before  # a dry run deletes nothing
    real = gc(server)

    assert dry["dry_run"] and not real["dry_run"]
    assert items(dry) == items(real)
    assert dry["totals"] == real["totals"]
    gone_images = (dropped, loose, dropped_sig)
    gone_manifests = {f"{NAME}@{d}" for image in gone_images for d in image.all_manifests()}
    assert {name for kind, name, _ in items(real) if kind == "manifest"} == gone_manifests
    kept_blobs = {d for image in (kept, multi, kept_sig) for d in image.all_blobs()}
    gone_blobs = {
        d: len(b) for image in gone_images for d, b in image.all_blobs().items() if d not in kept_blobs
    }
    assert {(name, size) for kind, name, size in items(real) if kind == "blob"} == set(gone_blobs.items())
    assert {(kind, name, size) for kind, name, size in items(real) if kind in ("upload", "orphan")} == {
        ("upload", upload_id, upload_size),
        ("orphan", digest_of(orphan), len(orphan)),
    }
    freed = real["totals"]["blob"]["bytes"] + real["totals"]["orphan"]["bytes"]
    assert freed == sum(gone_blobs.values()) + len(orphan)
    assert blob_bytes_stored(server, store) == before - freed

    for tag, image in (("kept", kept), ("multi", multi)):
        pulls_identical(client, tag, image)
    pulls_identical(client, kept_sig.digest, kept_sig)
    for image in gone_images:
        assert client.get(f"/v2/{NAME}/manifests/{image.digest}").status_code == 404
    assert repository_size(server) == swr_size(kept, multi, kept_sig) == overview_space(server)
    assert client.get(f"/v2/{NAME}/blobs/uploads/{upload_id}").status_code == 404
    # What was kept stays kept: a second run finds nothing.
    assert gc(server)["items"] == []
    # A collected blob can be pushed again, and its image then pulls.
    push_image(client, NAME, "again", dropped)
    pulls_identical(client, "again", dropped)


async def _put_orphan(store: BlobStore, data: bytes) -> None:
    """Bytes in the store that no blob row names (a crash between the two, say)."""
    await store.start_upload("orphan-upload")

    async def chunks() -> Any:
        yield data

    await store.append_upload("orphan-upload", chunks())
    await store.commit_upload("orphan-upload", digest_of(data))


def test_gc_without_a_region_refuses(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    result = subprocess.run(
        [sys.executable, "-m", "ferry", "gc", "--dry-run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--data" in result.stdout + result.stderr
    assert not (tmp_path / "ferry-data").exists()


# --- the policy, in process (tests/support/inprocess.py) -----------------------------------------


@pytest.fixture
async def world(tmp_path: Path) -> Any:
    region = await World(f"sqlite+aiosqlite:///{tmp_path / 'ferry.db'}", tmp_path).open()
    yield region
    await region.close()


async def collected(world: World, **policy: Any) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def on_item(kind: str, name: str, _size: int) -> None:
        found.setdefault(kind, set()).add(name.rsplit("@", 1)[-1])

    await GarbageCollector(world.db, world.store, GcPolicy(**policy)).run(on_item=on_item)
    return found


async def test_keep_untagged_keeps_untagged_images_but_not_orphaned_referrers(world: World) -> None:
    untagged = built_image("untagged")
    subject = built_image("subject")
    signature = built_image("sig", subject=subject)
    await world.push(untagged, untagged.digest)
    await world.push(subject, subject.digest)
    await world.push(signature, signature.digest)
    await manifests.delete_manifest(
        world.db, NoTagEvents(), world.name, subject.digest, Operator("", "root")
    )  # the signature dangles
    found = await collected(world, grace_seconds=0, keep_untagged=True)
    assert found["manifest"] == {signature.digest}
    assert found["blob"] == set(signature.blobs) - set(untagged.blobs) | set(subject.blobs)
    # Without the setting the untagged image goes too.
    found = await collected(world, grace_seconds=0)
    assert found["manifest"] == {untagged.digest}


async def test_nothing_younger_than_the_grace_period_is_collected(world: World) -> None:
    old, young = built_image("old"), built_image("young")
    await world.push(old, old.digest)
    await world.push(young, young.digest)
    assert await collected(world, grace_seconds=3600) == {}
    assert (await collected(world, grace_seconds=0))["manifest"] == {old.digest, young.digest}


async def test_children_of_a_tagged_index_and_referrers_of_a_tagged_image_stay(world: World) -> None:
    children = (built_image("arm"), built_image("amd"))
    multi = built_index(*children)
    await world.push(multi, "multi", *children)
    subject = built_image("app")
    await world.push(subject, "app")
    signature = built_image("app-sig", subject=subject)
    await world.push(signature, signature.digest)
    assert await collected(world, grace_seconds=0) == {}
