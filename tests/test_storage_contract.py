"""The BlobStore contract, checked on every driver (as CNCF distribution's storage driver suite does).

Each test runs once on the filesystem store and once on the S3 store against a real moto S3
server. A driver that fails here is wrong, not the test: everything above `ferry.storage` relies
on these behaviours without knowing which driver it has.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ferry.images.digests import sha256_digest as digest_of
from ferry.storage import BlobMissing, BlobStore, FilesystemBlobStore, StoredObject, UploadMissing
from ferry.storage.base import LIST_BATCH
from ferry.storage.filesystem import READ_CHUNK as FS_READ_CHUNK
from ferry.storage.s3 import PART_BYTES, S3BlobStore
from ferry.storage.s3 import READ_CHUNK as S3_READ_CHUNK
from tests.support.s3server import KEY, REGION, S3Server

MISSING = "sha256:" + "0" * 64
OpenStore = Callable[[], BlobStore]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto server for the module; each test still gets a bucket of its own."""
    server = S3Server(tmp_path_factory.mktemp("storage-s3")).start()
    yield server
    server.stop()


@pytest.fixture(params=["filesystem", "s3"])
def open_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> OpenStore:
    """Opens a new store object over one fresh location; calling it again is a reopen."""
    if request.param == "filesystem":
        root = tmp_path_factory.mktemp("storage")
        return lambda: FilesystemBlobStore(root)
    # Asked for lazily, so `-k filesystem` runs without starting moto.
    server: S3Server = request.getfixturevalue("s3_server")
    url = f"s3://{server.bucket()}/blobs"
    return lambda: S3BlobStore.from_url(
        url, endpoint=server.endpoint, region=REGION, access_key=KEY, secret_key=KEY
    )


@pytest.fixture
def store(open_store: OpenStore) -> BlobStore:
    return open_store()


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def payload(size: int, seed: int = 1) -> bytes:
    """Bytes without repeats, so a misplaced or reordered chunk cannot compare equal."""
    return random.Random(seed).randbytes(size)


async def new_upload(store: BlobStore) -> str:
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    return upload_id


async def put_blob(store: BlobStore, *parts: bytes) -> str:
    upload_id = await new_upload(store)
    await store.append_upload(upload_id, chunks(*parts))
    digest = digest_of(b"".join(parts))
    await store.commit_upload(upload_id, digest)
    return digest


# Uploads


async def test_new_upload_is_empty(store: BlobStore) -> None:
    upload_id = await new_upload(store)
    assert await store.upload_size(upload_id) == 0
    assert await collect(store.read_upload(upload_id)) == b""


async def test_append_returns_new_size(store: BlobStore) -> None:
    upload_id = await new_upload(store)
    assert await store.append_upload(upload_id, chunks(b"abc")) == 3
    assert await store.append_upload(upload_id, chunks()) == 3
    assert await store.append_upload(upload_id, chunks(b"")) == 3
    assert await store.append_upload(upload_id, chunks(b"de", b"", b"fgh")) == 8
    assert await store.upload_size(upload_id) == 8
    assert await collect(store.read_upload(upload_id)) == b"abcdefgh"


async def test_upload_survives_reopen(store: BlobStore, open_store: OpenStore) -> None:
    upload_id = await new_upload(store)
    await store.append_upload(upload_id, chunks(b"first "))
    reopened = open_store()
    assert await reopened.upload_size(upload_id) == 6
    assert await reopened.append_upload(upload_id, chunks(b"second")) == 12
    assert await store.upload_size(upload_id) == 12
    assert await collect(store.read_upload(upload_id)) == b"first second"


async def test_missing_upload_raises_upload_missing(store: BlobStore) -> None:
    with pytest.raises(UploadMissing):
        await store.upload_size("never-started")
    with pytest.raises(UploadMissing):
        await collect(store.read_upload("never-started"))
    with pytest.raises(UploadMissing):
        await store.append_upload("never-started", chunks(b"x"))
    with pytest.raises(UploadMissing):
        await store.upload_size("never-started")  # the failed append did not create it


async def test_abort_removes_the_upload(store: BlobStore) -> None:
    upload_id = await new_upload(store)
    await store.append_upload(upload_id, chunks(b"abc"))
    await store.abort_upload(upload_id)
    with pytest.raises(UploadMissing):
        await store.upload_size(upload_id)
    with pytest.raises(UploadMissing):
        await collect(store.read_upload(upload_id))
    with pytest.raises(UploadMissing):
        await store.make_durable(upload_id)
    with pytest.raises(UploadMissing):
        await store.commit_upload(upload_id, digest_of(b"abc"))
    assert await store.stat(digest_of(b"abc")) is None


async def test_abort_of_missing_upload_is_harmless(store: BlobStore) -> None:
    await store.abort_upload("never-started")
    upload_id = await new_upload(store)
    await store.abort_upload(upload_id)
    await store.abort_upload(upload_id)


# Commit


async def test_commit_is_all_or_nothing(store: BlobStore) -> None:
    data = b"hello, contract"
    upload_id = await new_upload(store)
    await store.append_upload(upload_id, chunks(data[:5]))
    await store.append_upload(upload_id, chunks(data[5:]))
    digest = digest_of(data)
    assert await store.stat(digest) is None
    await store.commit_upload(upload_id, digest)
    assert await store.stat(digest) == len(data)
    assert await collect(store.read(digest)) == data


async def test_made_durable_the_upload_goes_on_and_commits(store: BlobStore) -> None:
    upload_id = await new_upload(store)
    await store.append_upload(upload_id, chunks(b"durable "))
    await store.make_durable(upload_id)
    assert await store.upload_size(upload_id) == 8
    await store.append_upload(upload_id, chunks(b"then more"))
    await store.make_durable(upload_id)
    await store.commit_upload(upload_id, digest_of(b"durable then more"))
    assert await collect(store.read(digest_of(b"durable then more"))) == b"durable then more"


async def test_upload_is_gone_after_commit(store: BlobStore) -> None:
    upload_id = await new_upload(store)
    await store.append_upload(upload_id, chunks(b"abc"))
    await store.commit_upload(upload_id, digest_of(b"abc"))
    with pytest.raises(UploadMissing):
        await store.upload_size(upload_id)
    with pytest.raises(UploadMissing):
        await collect(store.read_upload(upload_id))
    with pytest.raises(UploadMissing):
        await store.commit_upload(upload_id, digest_of(b"abc"))
    assert await collect(store.read(digest_of(b"abc"))) == b"abc"


async def test_commit_of_missing_upload_raises_upload_missing(store: BlobStore) -> None:
    with pytest.raises(UploadMissing):
        await store.commit_upload("never-started", digest_of(b"x"))
    assert await store.stat(digest_of(b"x")) is None


async def test_empty_blob(store: BlobStore) -> None:
    digest = await put_blob(store)
    assert await store.stat(digest) == 0
    assert await collect(store.read(digest)) == b""
    assert await collect(store.read(digest, 0, 10)) == b""


async def test_committing_a_stored_digest_again_keeps_the_blob(store: BlobStore) -> None:
    """Two pushes of one layer race to commit the same digest; both succeed, the blob stays whole."""
    data = payload(1000)
    digest = await put_blob(store, data)
    assert await put_blob(store, data[:300], data[300:]) == digest
    assert await store.stat(digest) == len(data)
    assert await collect(store.read(digest)) == data


# Reads

SMALL = payload(100)


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 100), (0, None), (10, 20), (0, 1), (99, 100), (42, 43), (37, None), (99, None), (50, 50), (5, 300)],
)
async def test_ranged_read(store: BlobStore, start: int, end: int | None) -> None:
    digest = await put_blob(store, SMALL)
    assert await collect(store.read(digest, start, end)) == SMALL[start:end]


@pytest.mark.parametrize(("start", "end"), [(100, None), (100, 120), (130, None), (130, 140)])
async def test_read_from_the_end_or_past_it_is_empty(store: BlobStore, start: int, end: int | None) -> None:
    digest = await put_blob(store, SMALL)
    assert await collect(store.read(digest, start, end)) == b""


async def test_reads_of_a_blob_larger_than_a_chunk(store: BlobStore) -> None:
    """Past every driver's read chunk and S3 part size, appended in pieces so S3 commits multipart."""
    read_chunk = max(FS_READ_CHUNK, S3_READ_CHUNK)
    data = payload(PART_BYTES + read_chunk + 12345)
    piece = 64 * 1024
    upload_id = await new_upload(store)
    first = PART_BYTES + 1  # one append above a part: S3 writes that chunk multipart too
    pieces = [data[i : min(i + piece, first)] for i in range(0, first, piece)]
    assert await store.append_upload(upload_id, chunks(*pieces)) == first
    assert await store.append_upload(upload_id, chunks(data[first:])) == len(data)
    digest = digest_of(data)
    await store.commit_upload(upload_id, digest)
    assert await store.stat(digest) == len(data)

    streamed = [chunk async for chunk in store.read(digest)]
    assert b"".join(streamed) == data
    assert len(streamed) > 1 and max(map(len, streamed)) <= PART_BYTES  # streamed, not whole

    n = len(data)
    for start, end in [
        (read_chunk - 1, read_chunk + 1),
        (PART_BYTES - 5, PART_BYTES + 5),
        (3, n - 3),
        (read_chunk, 2 * read_chunk),
        (PART_BYTES, None),
        (n - 1, None),
        (n - 1, n),
    ]:
        got = await collect(store.read(digest, start, end))
        assert got == data[start:end], f"read({start}, {end})"


async def test_missing_blob(store: BlobStore) -> None:
    assert await store.stat(MISSING) is None
    with pytest.raises(BlobMissing):
        await collect(store.read(MISSING))
    with pytest.raises(BlobMissing):
        await collect(store.read(MISSING, 1, 3))


def test_blob_missing_is_still_a_file_not_found_error() -> None:
    """Code written against the drivers' old FileNotFoundError keeps working."""
    error = BlobMissing(MISSING)
    assert isinstance(error, FileNotFoundError)
    assert error.digest == MISSING


async def test_blob_survives_reopen(store: BlobStore, open_store: OpenStore) -> None:
    digest = await put_blob(store, SMALL[:40], SMALL[40:])
    reopened = open_store()
    assert await reopened.stat(digest) == len(SMALL)
    assert await collect(reopened.read(digest, 5, 50)) == SMALL[5:50]


# Delete


async def test_delete_removes_the_blob(store: BlobStore) -> None:
    kept = await put_blob(store, b"kept")
    digest = await put_blob(store, b"deleted")
    await store.delete(digest)
    assert await store.stat(digest) is None
    with pytest.raises(BlobMissing):
        await collect(store.read(digest))
    assert await collect(store.read(kept)) == b"kept"


async def test_delete_of_missing_blob_is_harmless(store: BlobStore) -> None:
    await store.delete(MISSING)
    digest = await put_blob(store, b"twice")
    await store.delete(digest)
    await store.delete(digest)
    assert await store.stat(digest) is None


async def listed(stream: AsyncIterator[list[StoredObject]]) -> dict[str, StoredObject]:
    found: dict[str, StoredObject] = {}
    async for batch in stream:
        assert len(batch) <= LIST_BATCH
        found.update((item.name, item) for item in batch)
    return found


async def test_list_blobs_names_every_blob_with_its_size(store: BlobStore) -> None:
    assert await listed(store.list_blobs()) == {}
    before = datetime.now(UTC) - timedelta(seconds=5)
    first = await put_blob(store, b"one")
    second = await put_blob(store, b"second", b"blob")
    found = await listed(store.list_blobs())
    assert {name: item.size for name, item in found.items()} == {first: 3, second: 10}
    assert all(item.modified > before for item in found.values())
    await store.delete(first)
    assert set(await listed(store.list_blobs())) == {second}


async def test_list_uploads_names_uploads_in_progress(store: BlobStore) -> None:
    upload_id = await new_upload(store)
    await store.append_upload(upload_id, chunks(b"abc"))
    await store.append_upload(upload_id, chunks(b"de"))
    other = await new_upload(store)
    await store.check()  # its probe is no upload
    found = await listed(store.list_uploads())
    assert set(found) == {upload_id, other}
    assert found[upload_id].size == 5
    await store.abort_upload(upload_id)
    await put_blob(store, b"committed")  # a committed upload is no longer listed
    assert set(await listed(store.list_uploads())) == {other}
