"""No partial or unverified blob ever becomes visible: SIGKILL mid-upload, and digest mismatches."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.layouts import file_digest, pseudo_random, stream_digest
from tests.support.registry_client import RegistryClient
from tests.support.server import FerryServer

MiB = 1024 * 1024
BIG = 256 * MiB
KILL_AFTER = 100 * MiB
BIG_SEED = "crash-safety-big"


@pytest.fixture(scope="module")
def big_digest() -> str:
    digest, size = stream_digest(pseudo_random(BIG_SEED, BIG))
    assert size == BIG
    return digest


class SlowBody:
    """A request body of `size` bytes with a known length that stalls after `stall_after` bytes
    until released, so the server can be killed while the request is in flight."""

    def __init__(self, seed: str, size: int, stall_after: int) -> None:
        self.seed, self.size, self.stall_after = seed, size, stall_after
        self.sent = 0
        self.stalled = threading.Event()
        self.release = threading.Event()

    def __len__(self) -> int:  # requests sends Content-Length instead of chunked encoding
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        for chunk in pseudo_random(self.seed, self.size):
            if self.sent >= self.stall_after:
                self.stalled.set()
                self.release.wait(60)
                return
            self.sent += len(chunk)
            yield chunk


class FullBody:
    """A streamed body of known length (never held in memory)."""

    def __init__(self, seed: str, size: int) -> None:
        self.seed, self.size = seed, size

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        return pseudo_random(self.seed, self.size)


def with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def error_code(response: requests.Response) -> str:
    """The OCI error code of a response, which must carry a spec-shaped error body."""
    try:
        return str(response.json()["errors"][0]["code"])
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no OCI error body: {response.status_code} {response.text[:200]!r}") from None


def blob_files(data: Path) -> list[Path]:
    return [p for p in (data / "storage" / "blobs").rglob("*") if p.is_file()]


def assert_not_stored(server: FerryServer, client: RegistryClient, repo: str, *digests: str) -> None:
    """HEAD and GET say BLOB_UNKNOWN, and no file under storage/blobs holds these digests."""
    for digest in digests:
        head = client.head(f"/v2/{repo}/blobs/{digest}")
        assert head.status_code == 404, f"HEAD {digest}: {head.status_code}"
        get = client.get(f"/v2/{repo}/blobs/{digest}")
        assert get.status_code == 404, f"GET {digest}: {get.status_code}"
        assert error_code(get) == "BLOB_UNKNOWN"
        hexpart = digest.removeprefix("sha256:")
        assert [p for p in blob_files(server.data) if p.name == hexpart] == []


def assert_all_blobs_whole(server: FerryServer) -> None:
    """Whatever the store does hold under blobs/ is complete: its bytes match its name."""
    for path in blob_files(server.data):
        assert file_digest(path) == "sha256:" + path.name, path


def largest_upload(data: Path) -> int:
    uploads = data / "storage" / "uploads"
    return max((p.stat().st_size for p in uploads.iterdir() if p.is_file()), default=0)


@pytest.mark.slow
@pytest.mark.filesystem_only
@pytest.mark.parametrize("mode", ["post-digest", "patch"])
def test_sigkill_mid_upload_leaves_no_visible_blob(
    new_server: FerryServer, admin_password: str, big_digest: str, mode: str
) -> None:
    new_server.start(timeout=120)  # generous: CI machines can be busy
    new_server.org("crash")
    repo = "crash/big"
    client = RegistryClient(new_server.url, "admin", admin_password)
    started = client.post(f"/v2/{repo}/blobs/uploads/")  # also fetches the push token
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    body = SlowBody(BIG_SEED, BIG, KILL_AFTER)
    if mode == "post-digest":
        method, url, headers = "POST", f"/v2/{repo}/blobs/uploads/?digest={big_digest}", {}
    else:
        method, url, headers = "PATCH", location, {"Content-Range": f"0-{BIG - 1}"}
    headers["Content-Type"] = "application/octet-stream"
    outcome: list[object] = []

    def send() -> None:
        try:
            outcome.append(client.request(method, url, data=body, headers=headers, timeout=120))
        except requests.RequestException as error:
            outcome.append(error)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        assert body.stalled.wait(60), "the body never got to the stall point"
        deadline = time.monotonic() + 20
        while largest_upload(new_server.data) < KILL_AFTER - 16 * MiB and time.monotonic() < deadline:
            time.sleep(0.05)
        on_disk = largest_upload(new_server.data)
        assert on_disk >= KILL_AFTER - 16 * MiB, f"the server holds only {on_disk} bytes of the upload"
        assert on_disk < BIG
        new_server.kill()
    finally:
        body.release.set()
        sender.join(60)
    assert len(outcome) == 1
    assert not isinstance(outcome[0], requests.Response), "the interrupted upload got an answer"

    new_server.start(timeout=120)
    client = RegistryClient(new_server.url, "admin", admin_password)
    assert_not_stored(new_server, client, repo, big_digest)
    assert_all_blobs_whole(new_server)

    # The interrupted session cannot be completed into the blob: its bytes are not all there.
    if mode != "post-digest":
        finish = client.put(with_digest(location, big_digest))
        assert finish.status_code in (400, 404), finish.text
        assert error_code(finish) in ("DIGEST_INVALID", "BLOB_UPLOAD_UNKNOWN")
        assert_not_stored(new_server, client, repo, big_digest)

    # A complete fresh upload of the same blob is accepted and served whole.
    session = client.post(f"/v2/{repo}/blobs/uploads/")  # a push token before streaming
    assert session.status_code == 202, session.text
    fresh = client.put(
        with_digest(session.headers["Location"], big_digest),
        data=FullBody(BIG_SEED, BIG),
        headers={"Content-Type": "application/octet-stream"},
        timeout=300,
    )
    assert fresh.status_code == 201, fresh.text
    head = client.head(f"/v2/{repo}/blobs/{big_digest}")
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == BIG
    assert head.headers["Docker-Content-Digest"] == big_digest
    with client.get(f"/v2/{repo}/blobs/{big_digest}", stream=True) as response:
        assert response.status_code == 200
        assert stream_digest(response.iter_content(MiB)) == (big_digest, BIG)


def corrupted(seed: str, size: int) -> tuple[bytes, str, str]:
    """A body, its real digest, and the digest of the same bytes with one bit flipped."""
    body = b"".join(pseudo_random(seed, size))
    flipped = bytearray(body)
    flipped[size // 2] ^= 1
    return body, stream_digest(iter([body]))[0], stream_digest(iter([bytes(flipped)]))[0]


@pytest.fixture(scope="module")
def integrity_org(ferry_server: FerryServer) -> str:
    ferry_server.org("integrity")
    return "integrity"


@pytest.mark.parametrize("mode", ["monolithic-put", "post-digest", "chunked"])
def test_blob_not_matching_its_digest_is_rejected_and_never_stored(
    ferry_server: FerryServer, admin_password: str, integrity_org: str, mode: str
) -> None:
    repo = f"{integrity_org}/blobs"
    body, actual, claimed = corrupted(f"integrity-{mode}", 3 * MiB + 5)
    client = RegistryClient(ferry_server.url, "admin", admin_password)
    octets = {"Content-Type": "application/octet-stream"}
    if mode == "post-digest":
        response = client.post(f"/v2/{repo}/blobs/uploads/?digest={claimed}", data=body, headers=octets)
    else:
        started = client.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        if mode == "monolithic-put":
            response = client.put(with_digest(location, claimed), data=body, headers=octets)
        else:
            cut = len(body) // 3
            for start, end in ((0, cut), (cut, len(body))):
                chunk = client.patch(
                    location, data=body[start:end], headers=octets | {"Content-Range": f"{start}-{end - 1}"}
                )
                assert chunk.status_code == 202, chunk.text
                assert chunk.headers["Range"] == f"0-{end - 1}"
                location = chunk.headers["Location"]
            response = client.put(with_digest(location, claimed))
    assert response.status_code == 400, response.text
    assert error_code(response) == "DIGEST_INVALID"
    assert "Docker-Content-Digest" not in response.headers
    assert_not_stored(ferry_server, client, repo, claimed, actual)

    # The same bytes under their real digest are accepted: only the lie was refused.
    accepted = client.post(f"/v2/{repo}/blobs/uploads/?digest={actual}", data=body, headers=octets)
    assert accepted.status_code == 201, accepted.text
    served = client.get(f"/v2/{repo}/blobs/{actual}")
    assert served.status_code == 200
    assert served.content == body
    assert client.head(f"/v2/{repo}/blobs/{claimed}").status_code == 404


@pytest.mark.filesystem_only
def test_mismatching_upload_cannot_claim_a_blob_stored_elsewhere(
    ferry_server: FerryServer, admin_password: str, integrity_org: str
) -> None:
    """Bytes sent under the digest of a blob another repository holds link nothing and change
    nothing: the registry hashes what it received, not what the client claims."""
    owner, intruder = f"{integrity_org}/owner", f"{integrity_org}/intruder"
    genuine, digest, _ = corrupted("integrity-genuine", 2 * MiB + 3)
    forged = b"".join(pseudo_random("integrity-forged", len(genuine)))
    client = RegistryClient(ferry_server.url, "admin", admin_password)
    octets = {"Content-Type": "application/octet-stream"}
    stored = client.post(f"/v2/{owner}/blobs/uploads/?digest={digest}", data=genuine, headers=octets)
    assert stored.status_code == 201, stored.text

    response = client.post(f"/v2/{intruder}/blobs/uploads/?digest={digest}", data=forged, headers=octets)
    assert response.status_code == 400, response.text
    assert error_code(response) == "DIGEST_INVALID"
    assert client.head(f"/v2/{intruder}/blobs/{digest}").status_code == 404
    served = client.get(f"/v2/{owner}/blobs/{digest}")
    assert served.status_code == 200
    assert served.content == genuine
    hexpart = digest.removeprefix("sha256:")
    assert file_digest(ferry_server.data / "storage" / "blobs" / "sha256" / hexpart[:2] / hexpart) == digest
