"""skopeo copies OCI layouts into a real Ferry process and back, digests preserved."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.layouts import (
    OCI_INDEX,
    OCI_MANIFEST,
    Layout,
    big_layer_layout,
    many_layers_layout,
    multi_platform_layout,
    referenced_blobs,
    tagged_digest,
    verify_blobs,
)
from tests.support.registry_client import RegistryClient
from tests.support.server import FerryServer

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")

ORG = "skopeo"
BIG_LAYER = 256 * 1024 * 1024 + 12_345  # not a multiple of any chunk size


@pytest.fixture(scope="module")
def org(ferry_server: FerryServer) -> str:
    ferry_server.org(ORG)
    return ORG


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"skopeo {' '.join(args)} failed:\n{result.stderr[-4000:]}"
    return result


def push(server: FerryServer, password: str, layout: Layout, image: str, *extra: str) -> None:
    skopeo(
        "copy",
        "--preserve-digests",
        *extra,
        "--dest-tls-verify=false",
        f"--dest-creds=admin:{password}",
        f"oci:{layout.root}:{layout.tag}",
        f"docker://{server.host}/{image}",
    )


def pull(server: FerryServer, password: str, image: str, dest: Path, tag: str, *extra: str) -> None:
    skopeo(
        "copy",
        "--preserve-digests",
        *extra,
        "--src-tls-verify=false",
        f"--src-creds=admin:{password}",
        f"docker://{server.host}/{image}",
        f"oci:{dest}:{tag}",
    )


def round_trip(
    server: FerryServer, password: str, layout: Layout, image: str, tmp_path: Path, *extra: str
) -> Path:
    """Pushes the layout, checks what the registry serves, pulls it into a new layout."""
    push(server, password, layout, image, *extra)
    client = RegistryClient(server.url, "admin", password)
    name, _, tag = image.partition(":")
    served = client.get(f"/v2/{name}/manifests/{tag}", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
    assert served.status_code == 200, served.text
    assert served.headers["Docker-Content-Digest"] == layout.digest
    source_manifest = (layout.root / "blobs" / "sha256" / layout.digest.removeprefix("sha256:")).read_bytes()
    assert served.content == source_manifest
    dest = tmp_path / "pulled"
    pull(server, password, image, dest, "pulled", *extra)
    return dest


def assert_same_image(source: Layout, dest: Path, tag: str) -> None:
    assert tagged_digest(dest, tag) == source.digest
    pulled = verify_blobs(dest)  # every pulled blob's bytes match its digest
    assert referenced_blobs(dest, source.digest) == referenced_blobs(source.root, source.digest)
    assert pulled == source.blobs


@pytest.mark.slow
def test_single_big_layer_round_trips(
    ferry_server: FerryServer, org: str, admin_password: str, tmp_path: Path
) -> None:
    layout = big_layer_layout(tmp_path / "source", BIG_LAYER)
    dest = round_trip(ferry_server, admin_password, layout, f"{org}/big:v1", tmp_path)
    assert_same_image(layout, dest, "pulled")
    big = max((dest / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    assert big.stat().st_size > BIG_LAYER  # the layer really is the ≥256 MiB one
    client = RegistryClient(ferry_server.url, "admin", admin_password)
    head = client.head(f"/v2/{org}/big/blobs/sha256:{big.name}")
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == big.stat().st_size


def test_image_with_many_layers_round_trips(
    ferry_server: FerryServer, org: str, admin_password: str, tmp_path: Path
) -> None:
    layout = many_layers_layout(tmp_path / "source", 55)
    assert len(layout.blobs) == 55 + 2  # layers, config, manifest
    dest = round_trip(ferry_server, admin_password, layout, f"{org}/many:v1", tmp_path)
    assert_same_image(layout, dest, "pulled")


def test_multi_platform_index_round_trips_with_all(
    ferry_server: FerryServer, org: str, admin_password: str, tmp_path: Path
) -> None:
    layout = multi_platform_layout(tmp_path / "source", ("amd64", "arm64"))
    dest = round_trip(ferry_server, admin_password, layout, f"{org}/multi:v1", tmp_path, "--all")
    assert_same_image(layout, dest, "pulled")
    raw = skopeo(
        "inspect",
        "--raw",
        "--tls-verify=false",
        f"--creds=admin:{admin_password}",
        f"docker://{ferry_server.host}/{org}/multi:v1",
    ).stdout
    platforms = {(m["platform"]["os"], m["platform"]["architecture"]) for m in json.loads(raw)["manifests"]}
    assert platforms == {("linux", "amd64"), ("linux", "arm64")}
    # Each platform's image resolves on its own by digest.
    client = RegistryClient(ferry_server.url, "admin", admin_password)
    index = json.loads((layout.root / "blobs" / "sha256" / layout.digest.removeprefix("sha256:")).read_text())
    assert len(index["manifests"]) == 2
    for child in index["manifests"]:
        response = client.get(
            f"/v2/{org}/multi/manifests/{child['digest']}", headers={"Accept": OCI_MANIFEST}
        )
        assert response.status_code == 200
        assert response.headers["Docker-Content-Digest"] == child["digest"]
