"""Request bodies are read to their end, however they arrive: in pieces, large, or repeatedly.

A body that reaches the server in several TCP segments must be taken whole. The client here
writes the request by hand on a socket, pausing between pieces, so the server sees the body
arrive in parts.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import pytest

from tests.support.images import OCI_MANIFEST, digest_of, make_image, push_blobs
from tests.support.layouts import many_layers_layout
from tests.support.registry_client import RegistryClient, parse_challenge
from tests.support.server import ADMIN_PASSWORD, FerryServer
from tests.support.sync_helpers import skopeo

ORG = "bodies"


@pytest.fixture(scope="module")
def org(ferry_server: FerryServer) -> str:
    ferry_server.org(ORG)
    return ORG


def push_token(server: FerryServer, repository: str) -> str:
    client = RegistryClient(server.url, "admin", ADMIN_PASSWORD)
    base = client.session.get(f"{server.url}/v2/", timeout=30)
    challenge = parse_challenge(base.headers["WWW-Authenticate"])
    challenge["scope"] = f"repository:{repository}:pull,push"
    return client.token(challenge)


def send_in_pieces(
    server: FerryServer, method: str, path: str, headers: dict[str, str], body: bytes, pieces: int = 5
) -> tuple[int, bytes]:
    """Sends one HTTP/1.1 request, the body in `pieces` writes 0.15 s apart; returns status, body."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {server.host}", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head += ["Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall("\r\n".join(head).encode())
        step = max(1, -(-len(body) // pieces))
        for start in range(0, len(body), step):
            time.sleep(0.15)
            sock.sendall(body[start : start + step])
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    status_line, _, rest = response.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), payload


def put_manifest_in_pieces(server: FerryServer, name: str, tag: str, manifest: bytes) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {push_token(server, name)}", "Content-Type": OCI_MANIFEST}
    return send_in_pieces(server, "PUT", f"/v2/{name}/manifests/{tag}", headers, manifest)


def served_manifest(server: FerryServer, name: str, reference: str) -> bytes:
    client = RegistryClient(server.url, "admin", ADMIN_PASSWORD)
    response = client.get(f"/v2/{name}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200, response.text
    return response.content


def test_manifest_sent_in_pieces_is_taken_whole(ferry_server: FerryServer, org: str) -> None:
    name, image = f"{org}/pieces", make_image("pieces")
    client = RegistryClient(ferry_server.url, "admin", ADMIN_PASSWORD)
    assert all(r.status_code == 201 for r in push_blobs(client, name, image))
    status, body = put_manifest_in_pieces(ferry_server, name, "v1", image.manifest)
    assert status == 201, body
    assert served_manifest(ferry_server, name, "v1") == image.manifest


def padded_manifest(manifest: bytes, size: int) -> bytes:
    """A valid manifest of about `size` bytes: the padding is an annotation."""
    document = json.loads(manifest)
    document["annotations"] = {"org.example.padding": "p" * (size - len(manifest) - 60)}
    return json.dumps(document).encode()


def test_three_mebibyte_manifest_round_trips(ferry_server: FerryServer, org: str) -> None:
    name, image = f"{org}/large", make_image("large")
    client = RegistryClient(ferry_server.url, "admin", ADMIN_PASSWORD)
    assert all(r.status_code == 201 for r in push_blobs(client, name, image))
    manifest = padded_manifest(image.manifest, 3 * 1024 * 1024)
    status, body = put_manifest_in_pieces(ferry_server, name, "big", manifest)
    assert status == 201, body
    assert served_manifest(ferry_server, name, digest_of(manifest)) == manifest


def test_manifest_past_the_limit_is_413(ferry_server: FerryServer, org: str) -> None:
    name, image = f"{org}/toolarge", make_image("toolarge")
    client = RegistryClient(ferry_server.url, "admin", ADMIN_PASSWORD)
    assert all(r.status_code == 201 for r in push_blobs(client, name, image))
    status, body = put_manifest_in_pieces(ferry_server, name, "big", padded_manifest(image.manifest, 5 << 20))
    assert status == 413
    assert json.loads(body)["errors"][0]["code"] == "SIZE_INVALID"


def test_management_body_sent_in_pieces(ferry_server: FerryServer) -> None:
    body = json.dumps({"namespace": "bodies-pieces"}).encode()
    headers = {"X-Auth-Token": ferry_server.admin_token(), "Content-Type": "application/json"}
    status, answer = send_in_pieces(ferry_server, "POST", "/v2/manage/namespaces", headers, body, pieces=4)
    assert status == 201, answer


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_skopeo_pushes_150_layer_images_repeatedly(
    ferry_server: FerryServer, org: str, tmp_path: Path
) -> None:
    """A 150-layer manifest is about 30 KB; each push must succeed, not one in four fail."""
    layout = many_layers_layout(tmp_path / "layout", 150)
    for attempt in range(6):
        skopeo(
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"--dest-creds=admin:{ADMIN_PASSWORD}",
            f"oci:{layout.root}:{layout.tag}",
            f"docker://{ferry_server.host}/{org}/layers{attempt}:{layout.tag}",
        )
        assert digest_of(served_manifest(ferry_server, f"{org}/layers{attempt}", layout.tag)) == layout.digest
