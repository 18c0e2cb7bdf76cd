"""A full disk: clear errors, nothing kept from the failed upload, and recovery once space returns.

Each region here keeps its database and blobs on a small tmpfs of its own, so "full" is real:
the kernel answers ENOSPC to Ferry's writes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.support.images import digest_of, make_image, push_image
from tests.support.regions import make_regions
from tests.support.registry_client import RegistryClient
from tests.support.server import ADMIN_PASSWORD, FerryServer, free_port
from tests.support.sync_helpers import create_org, create_rule, jobs, wait_for, wait_tag

pytestmark = [
    pytest.mark.filesystem_only,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root"),
]
DISK = 24 * 1024 * 1024


@contextmanager
def mounted_disk(mount_point: Path) -> Iterator[Path]:
    """A DISK-sized tmpfs at `mount_point`; its logs are copied out before it goes away."""
    mount_point.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        keep = mount_point.with_name(mount_point.name + "-logs")  # for the sweep, and a person
        keep.mkdir(exist_ok=True)
        for log in mount_point.rglob("*.log"):
            shutil.copy(log, keep / f"{log.parent.name}-{log.name}")
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_disk(tmp_path / "disk") as disk:
        yield disk


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def fill(path: Path, leave: int) -> Path:
    """A file that takes all free space on `path`'s file system but `leave` bytes."""
    filler = path / "filler"
    with filler.open("wb") as out:
        while free_bytes(path) > leave + (1 << 20):
            out.write(b"\0" * (1 << 20))
            out.flush()
        while free_bytes(path) > leave:
            try:
                out.write(b"\0" * 4096)
                out.flush()
            except OSError:
                break
    return filler


def assert_storage_full(response: requests.Response) -> None:
    assert response.status_code == 507, (response.status_code, response.text)
    assert int(response.headers["Retry-After"]) > 0
    error = response.json()["errors"][0]
    assert error["code"] == "UNAVAILABLE"
    assert "storage is full" in error["message"]


def test_blob_upload_on_a_full_disk(small_disk: Path) -> None:
    server = FerryServer(small_disk / "region", free_port()).start()
    try:
        client = RegistryClient(server.url, "admin", ADMIN_PASSWORD)
        server.org("full")
        push_image(client, "full/app", "before", make_image("before"))
        free_before = free_bytes(small_disk)

        # A blob larger than the free space, streamed: refused clearly, its bytes freed at once.
        too_big = os.urandom(1 << 20) * (free_before // (1 << 20) + 4)
        response = client.post(
            f"/v2/full/app/blobs/uploads/?digest={digest_of(too_big)}",
            data=too_big,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert_storage_full(response)
        assert list((small_disk / "region" / "storage" / "uploads").iterdir()) == []
        assert free_bytes(small_disk) >= free_before - (1 << 20)

        # The region goes on taking pushes that fit: the failed session holds nothing back.
        push_image(client, "full/app", "after", make_image("after"))

        # With no space left at all, a push or a management call is refused, never a 500 ...
        filler = fill(small_disk, leave=0)
        image = make_image("no-space")
        blobs = [
            client.post(
                f"/v2/full/app/blobs/uploads/?digest={digest}",
                data=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            for digest, data in image.blobs.items()
        ]
        for blob in blobs:
            assert blob.status_code in (201, 507), blob.text
            if blob.status_code == 507:
                assert_storage_full(blob)
        created = requests.post(
            f"{server.url}/v2/manage/namespaces",
            json={"namespace": "fullorg"},
            headers={"X-Auth-Token": server.admin_token()},
            timeout=30,
        )
        assert created.status_code in (201, 507), created.text
        if created.status_code == 507:
            assert created.json()["error_code"].startswith("SVCSTG.SWR.507")
            assert int(created.headers["Retry-After"]) > 0

        # ... and once space returns, everything works again, with nothing lost.
        filler.unlink()
        push_image(client, "full/app", "recovered", make_image("no-space"))
        tags = client.get("/v2/full/app/tags/list").json()["tags"]
        assert tags == ["after", "before", "recovered"]
    finally:
        server.stop()


def test_sync_into_a_full_region_waits_and_completes_when_space_returns(tmp_path: Path) -> None:
    with mounted_disk(tmp_path / "cn-east-3") as target_disk:
        sync_into_full_region(tmp_path, target_disk)


def sync_into_full_region(tmp_path: Path, target_disk: Path) -> None:
    env = {"FERRY_SYNC_RETRY_SECONDS": "600", "FERRY_STORAGE_FULL_RETRY_SECONDS": "2"}
    regions = make_regions(tmp_path, ["cn-north-4", "cn-east-3"], env)
    try:
        a, b = regions["cn-north-4"], regions["cn-east-3"]
        create_org(a, "fullsync")
        create_org(b, "fullsync")
        push_image(RegistryClient(a.url, "admin", ADMIN_PASSWORD), "fullsync/app", "v0", make_image("v0"))
        assert create_rule(a, "fullsync", "app", "cn-east-3", "fullsync") == 200
        filler = fill(target_disk, leave=0)
        image = make_image("while-full")
        push_image(RegistryClient(a.url, "admin", ADMIN_PASSWORD), "fullsync/app", "v1", image)

        def retrying() -> dict[str, object] | None:
            found = [j for j in jobs(a, "fullsync", "app") if j["tag"] == "v1"]
            return found[0] if found and found[0]["attempts"] >= 2 else None

        job = wait_for(retrying, "the sync job to retry against the full region", 120)
        assert job["status"] in ("waiting", "running"), job  # not failed: it waits for space
        assert "storage is full" in str(job["message"]) or job["status"] == "running", job
        filler.unlink()
        wait_tag(b, "fullsync/app", "v1", image.digest, timeout=180)
        final = wait_for(
            lambda: [j for j in jobs(a, "fullsync", "app") if j["tag"] == "v1" and j["status"] == "success"],
            "the sync job to succeed",
        )
        assert final
    finally:
        regions.stop()
