"""The oras Python SDK against a real Ferry process: artifacts round-trip, referrers attach."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import oras.client
import oras.oci
import pytest
import requests

from tests.support.layouts import pseudo_random
from tests.support.server import FerryServer

ORG = "oras"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
SBOM_TYPE = "application/vnd.example.sbom.v1+json"
SIGNATURE_TYPE = "application/vnd.example.signature.v1"


@pytest.fixture(scope="module")
def org(ferry_server: FerryServer) -> str:
    ferry_server.org(ORG)
    return ORG


def new_client(server: FerryServer, password: str) -> oras.client.OrasClient:
    """A client that logs in the SDK's way: Basic credentials for the token endpoint.

    No token is handed to it: it starts with a HEAD (a pull challenge), and when its pull token
    meets a push, Ferry's 403 with the challenged scope makes it fetch a wider token itself.
    """
    client = oras.client.OrasClient(hostname=server.host, insecure=True)
    client.auth.set_basic_auth("admin", password)
    return client


def ok(response: requests.Response) -> requests.Response:
    assert response.status_code in (200, 201, 202), f"{response.status_code} {response.text}"
    return response


def write_files(root: Path) -> dict[str, Path]:
    root.mkdir()
    big = root / "model.bin"
    with big.open("wb") as f:
        for chunk in pseudo_random("oras-model", 5 * 1024 * 1024 + 7):
            f.write(chunk)
    notes = root / "notes.txt"
    notes.write_text("ferry carries artifacts too\n" * 100)
    return {"model.bin": big, "notes.txt": notes}


def manifest_of(client: oras.client.OrasClient, target: str) -> tuple[bytes, str]:
    """The manifest's exact bytes and digest as the registry serves them."""
    container = client.get_container(target)
    response = ok(
        client.do_request(f"http://{container.manifest_url()}", "GET", headers={"Accept": OCI_MANIFEST})
    )
    return response.content, response.headers["Docker-Content-Digest"]


def referrers(client: oras.client.OrasClient, repo: str, digest: str, **query: str) -> requests.Response:
    url = f"http://{client.hostname}/v2/{repo}/referrers/{digest}"
    if query:
        url += "?" + urlencode(query)
    response = ok(client.do_request(url, "GET", headers={"Accept": OCI_INDEX}))
    assert response.headers["Content-Type"].startswith(OCI_INDEX)
    return response


def push_signature(
    client: oras.client.OrasClient, target: str, subject: dict[str, Any], tmp_path: Path
) -> str:
    """An OCI 1.1 artifact manifest (artifactType, empty config, subject) built by hand and pushed
    with the SDK's blob and manifest functions; returns its digest."""
    container = client.get_container(target)
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"{}")
    config = {"mediaType": EMPTY_CONFIG, "digest": oras.defaults.blank_config_hash, "size": 2}
    ok(client.upload_blob(str(empty), container, config))
    signature = tmp_path / "signature.sig"
    signature.write_bytes(b"not really a signature")
    layer = oras.oci.NewLayer(str(signature), media_type="application/octet-stream")
    ok(client.upload_blob(str(signature), container, layer))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE_TYPE,
        "config": config,
        "layers": [layer],
        "subject": subject,
        "annotations": {"org.example.signer": "e2e"},
    }
    response = ok(client.upload_manifest(manifest, container))
    assert response.headers.get("OCI-Subject") == subject["digest"]
    return str(response.headers["Docker-Content-Digest"])


def test_push_pull_round_trip_and_referrers(
    ferry_server: FerryServer, org: str, admin_password: str, tmp_path: Path
) -> None:
    repo = f"{org}/artifact"
    target = f"{ferry_server.host}/{repo}:v1"
    files = write_files(tmp_path / "in")
    client = new_client(ferry_server, admin_password)

    # Push: the big file through chunked PATCH uploads (1 MiB chunks), the rest monolithically.
    pushed = ok(
        client.push(
            target,
            files=[f"{files['model.bin']}:application/vnd.example.model", str(files["notes.txt"])],
            disable_path_validation=True,
            do_chunked=True,
            chunk_size=1024 * 1024,
            quiet=True,
        )
    )
    payload, artifact_digest = manifest_of(client, target)
    assert pushed.headers["Docker-Content-Digest"] == artifact_digest
    layers = json.loads(payload)["layers"]
    assert sorted(layer["annotations"]["org.opencontainers.image.title"] for layer in layers) == sorted(files)

    # Pull with a fresh client: every file comes back byte-identical.
    puller = new_client(ferry_server, admin_password)
    out = tmp_path / "out"
    pulled = puller.pull(target, outdir=str(out))
    assert sorted(Path(p).name for p in pulled) == sorted(files)
    for name, source in files.items():
        assert (out / name).read_bytes() == source.read_bytes(), name

    # Nothing refers to the artifact yet.
    empty = referrers(client, repo, artifact_digest).json()
    assert empty["manifests"] == []

    # Referrer 1: the SDK's own push with a subject (artifact type from its config's media type).
    subject = oras.oci.Subject(OCI_MANIFEST, artifact_digest, len(payload))
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps({"packages": ["ferry"]}))
    sbom_push = ok(
        client.push(
            f"{ferry_server.host}/{repo}:sbom",
            files=[str(sbom)],
            disable_path_validation=True,
            manifest_config=f"{tmp_path / 'missing-config'}:{SBOM_TYPE}",
            subject=subject,
            quiet=True,
        )
    )
    sbom_digest = sbom_push.headers["Docker-Content-Digest"]
    assert sbom_push.headers.get("OCI-Subject") == artifact_digest

    # Referrer 2: an OCI 1.1 manifest with an explicit artifactType, pushed by digest (no tag).
    signature_digest = push_signature(
        client,
        f"{ferry_server.host}/{repo}",
        {"mediaType": OCI_MANIFEST, "digest": artifact_digest, "size": len(payload)},
        tmp_path,
    )

    listed = referrers(client, repo, artifact_digest).json()
    assert listed["schemaVersion"] == 2
    assert listed["mediaType"] == OCI_INDEX
    by_digest = {m["digest"]: m for m in listed["manifests"]}
    assert set(by_digest) == {sbom_digest, signature_digest}
    assert by_digest[sbom_digest]["artifactType"] == SBOM_TYPE
    assert by_digest[signature_digest]["artifactType"] == SIGNATURE_TYPE
    assert by_digest[signature_digest]["annotations"] == {"org.example.signer": "e2e"}
    for digest, descriptor in by_digest.items():
        body, served_digest = manifest_of(client, f"{ferry_server.host}/{repo}@{digest}")
        assert served_digest == digest
        assert descriptor["mediaType"] == OCI_MANIFEST
        assert descriptor["size"] == len(body)

    # ?artifactType= keeps only the matching referrer and says that it filtered.
    for artifact_type, expected in ((SBOM_TYPE, sbom_digest), (SIGNATURE_TYPE, signature_digest)):
        filtered = referrers(client, repo, artifact_digest, artifactType=artifact_type)
        assert [m["digest"] for m in filtered.json()["manifests"]] == [expected]
        assert "artifactType" in filtered.headers.get("OCI-Filters-Applied", "")
    none = referrers(client, repo, artifact_digest, artifactType="application/vnd.example.none")
    assert none.json()["manifests"] == []

    # Referrers belong to their subject only: the sbom itself has none.
    assert referrers(client, repo, sbom_digest).json()["manifests"] == []


def test_readme_example_pushes_and_pulls_without_any_workaround(
    ferry_server: FerryServer, org: str, admin_password: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's oras example, as written: log in, push to two repositories, pull back."""
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("ferry carries artifacts\n")
    client = oras.client.OrasClient(hostname=ferry_server.host, insecure=True)
    client.login(username="admin", password=admin_password)
    for name in ("readme-a", "readme-b"):
        target = f"{ferry_server.host}/{org}/{name}:v1"
        assert client.push(files=["notes.txt"], target=target).status_code == 201
        pulled = client.pull(target=target, outdir=str(tmp_path / name))
        assert [Path(p).read_text() for p in pulled] == ["ferry carries artifacts\n"]
