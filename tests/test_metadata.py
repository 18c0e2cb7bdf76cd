"""Metadata and service behaviour on both supported databases: SQLite and PostgreSQL.

Every test runs once per database, against a freshly migrated, empty schema.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from ferry.identity.caller import Operator
from ferry.identity.service import (
    IdentityError,
    Principal,
    allowed_actions,
    create_organization,
    create_user,
    grant,
)
from ferry.images import blobs, manifests
from ferry.images.digests import sha256_digest
from ferry.images.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestUnknown,
    OrganizationMissing,
    RepositoryUnknown,
    UploadOutOfOrder,
    UploadUnknown,
)
from ferry.images.events import NoTagEvents
from ferry.images.repositories import find_repository, repository_for_push
from ferry.images.upload_ids import UploadIds
from ferry.images.uploads import Uploads
from ferry.metadata.db import Database
from ferry.metadata.migrate import alembic_config, upgrade
from ferry.metadata.models import Base
from ferry.names import ImageName
from ferry.registry.errors import oci_error
from ferry.storage import FilesystemBlobStore

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
ALL = frozenset({"pull", "push", "delete"})

ROOT = Operator("", "root")
KEY = "test secret key"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'ferry.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await upgrade(database)
    yield database
    await database.close()


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "storage")


@pytest.fixture
def uploads(db: Database, store: FilesystemBlobStore) -> Uploads:
    return Uploads(db, store, UploadIds(KEY))


async def _admin(db: Database) -> Principal:
    async with db.write() as session:
        user = await create_user(session, "acme", "root", "root-password", is_admin=True)
        return Principal(user.id, user.name, user.account_id, True)


@pytest.fixture
async def image(db: Database) -> ImageName:
    """org/app, in an organization that exists (the repository itself does not yet)."""
    admin = await _admin(db)
    async with db.write() as session:
        await create_organization(session, admin, "org")
    return ImageName("org", "app")


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _repository_id(db: Database, image: ImageName) -> int:
    async with db.read() as session:
        repository = await find_repository(session, image)
        assert repository is not None
        return repository.id


async def _linked_size(db: Database, image: ImageName, digest: str) -> int | None:
    repository_id = await _repository_id(db, image)
    async with db.read() as session:
        return await blobs.linked_size(session, repository_id, digest)


# --- migrations -------------------------------------------------------------------------------


async def test_migrations_bring_an_empty_database_to_head(database_url: str) -> None:
    database = Database(database_url)
    try:
        await upgrade(database)
        await upgrade(database)  # a second run is a no-op, as at every server start
        head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
        async with database.read() as session:
            versions = list(await session.scalars(text("SELECT version_num FROM alembic_version")))
            tables = await session.run_sync(lambda s: set(inspect(s.connection()).get_table_names()))
    finally:
        await database.close()
    assert versions == [head]
    assert set(Base.metadata.tables) <= tables


# --- users, organizations, permissions --------------------------------------------------------


async def test_users_are_unique_and_checked(db: Database) -> None:
    async with db.write() as session:
        user = await create_user(session, "acme", "alice", "alice-password")
    assert user.id is not None and not user.is_admin
    with pytest.raises(IdentityError, match="already exists"):
        async with db.write() as session:
            await create_user(session, "acme", "alice", "another-password")
    with pytest.raises(IdentityError, match="too short"):
        async with db.write() as session:
            await create_user(session, "acme", "bob", "short")
    with pytest.raises(IdentityError, match="invalid user name"):
        async with db.write() as session:
            await create_user(session, "acme", "bob@x", "bob-password")


async def test_organizations_are_unique_and_creator_may_manage(db: Database) -> None:
    admin = await _admin(db)
    async with db.write() as session:
        org = await create_organization(session, admin, "team")
        alice = await create_user(session, "acme", "alice", "alice-password")
    assert org.creator_name == "root"
    with pytest.raises(IdentityError, match="already exists"):
        async with db.write() as session:
            await create_organization(session, admin, "team")
    with pytest.raises(IdentityError, match="invalid organization name"):
        async with db.write() as session:
            await create_organization(session, admin, "Team")
    # A non-admin creator gets manage rights on what they created.
    principal = Principal(alice.id, alice.name, alice.account_id, False)
    async with db.write() as session:
        await create_organization(session, principal, "alices")
    async with db.read() as session:
        assert await allowed_actions(session, principal, ImageName("alices", "x")) == ALL
        assert await allowed_actions(session, principal, ImageName("team", "x")) == frozenset()


async def test_permissions_decide_allowed_actions(db: Database) -> None:
    admin = await _admin(db)
    async with db.write() as session:
        await create_organization(session, admin, "org")
        users = {
            name: await create_user(session, "acme", name, f"{name}-password")
            for name in ("reader", "editor", "manager", "stranger")
        }
    async with db.write() as session:
        await grant(session, "reader", "org", 1)
        await grant(session, "editor", "org", 1)
        await grant(session, "manager", "org", 7)
    async with db.write() as session:
        await grant(session, "editor", "org", 3)  # a second grant updates the first
    with pytest.raises(IdentityError, match="no organization"):
        async with db.write() as session:
            await grant(session, "reader", "missing", 1)
    with pytest.raises(IdentityError, match="no user"):
        async with db.write() as session:
            await grant(session, "nobody", "org", 1)
    with pytest.raises(IdentityError, match="auth must be"):
        async with db.write() as session:
            await grant(session, "reader", "org", 2)

    principals = {n: Principal(u.id, u.name, u.account_id, False) for n, u in users.items()}
    private, public = ImageName("org", "private"), ImageName("org", "public")
    async with db.write() as session:
        await repository_for_push(session, public, "root")
        repository = await find_repository(session, public)
        assert repository is not None
        repository.is_public = True

    async with db.read() as session:

        async def may(principal: Principal | None, image: ImageName) -> frozenset[str]:
            return await allowed_actions(session, principal, image)

        assert await may(admin, private) == ALL
        assert await may(principals["reader"], private) == {"pull"}
        assert await may(principals["editor"], private) == ALL
        assert await may(principals["manager"], private) == ALL
        assert await may(principals["stranger"], private) == frozenset()
        assert await may(None, private) == frozenset()
        # A public repository adds pull for everybody, and nothing more.
        assert await may(principals["stranger"], public) == {"pull"}
        assert await may(None, public) == {"pull"}
        assert await may(principals["editor"], public) == ALL
        # A missing organization: nobody gets anything (a right granted now would carry over
        # into an organization of that name that another account creates later).
        assert await may(admin, ImageName("missing", "x")) == frozenset()
        assert await may(principals["manager"], ImageName("missing", "x")) == frozenset()
        assert await may(None, ImageName("missing", "x")) == frozenset()


async def test_admin_of_another_account_has_no_rights(db: Database) -> None:
    admin = await _admin(db)
    async with db.write() as session:
        await create_organization(session, admin, "org")
        other = await create_user(session, "other", "otheradmin", "other-password", is_admin=True)
    principal = Principal(other.id, other.name, other.account_id, True)
    async with db.read() as session:
        assert await allowed_actions(session, principal, ImageName("org", "x")) == frozenset()


# --- uploads --------------------------------------------------------------------------------------


async def test_chunked_upload_with_correct_digest_becomes_visible(
    db: Database, uploads: Uploads, store: FilesystemBlobStore, image: ImageName
) -> None:
    parts = [b"a" * 1000, b"b" * 3000, b"c" * 17]
    content = b"".join(parts)
    digest = sha256_digest(content)
    upload_id = await uploads.start(image, "root")
    assert await uploads.append(image, upload_id, _chunks(parts[0]), start=0) == 1000
    assert await uploads.append(image, upload_id, _chunks(parts[1]), start=1000) == 4000
    assert await uploads.size(image, upload_id) == 4000
    assert await _linked_size(db, image, digest) is None  # nothing visible before the digest check
    size = await uploads.finish(image, upload_id, digest, _chunks(parts[2]))
    assert size == len(content)
    assert await _linked_size(db, image, digest) == len(content)
    assert b"".join([c async for c in store.read(digest)]) == content
    with pytest.raises(UploadUnknown):
        await uploads.size(image, upload_id)


async def test_upload_finished_by_another_process_rehashes_from_the_store(
    db: Database, uploads: Uploads, store: FilesystemBlobStore, image: ImageName
) -> None:
    upload_id = await uploads.start(image, "root")
    await uploads.append(image, upload_id, _chunks(b"first half "), start=0)
    other_process = Uploads(db, store, UploadIds(KEY))  # has no cached hash state for this upload
    digest = sha256_digest(b"first half second half")
    await other_process.finish(image, upload_id, digest, _chunks(b"second half"))
    assert await _linked_size(db, image, digest) == len(b"first half second half")


async def test_chunk_at_the_wrong_offset_is_refused(uploads: Uploads, image: ImageName) -> None:
    upload_id = await uploads.start(image, "root")
    await uploads.append(image, upload_id, _chunks(b"12345"), start=0)
    with pytest.raises(UploadOutOfOrder) as refused:
        await uploads.append(image, upload_id, _chunks(b"678"), start=3)
    assert refused.value.size == 5
    assert oci_error(refused.value, 1).headers["Range"] == "0-4"  # where the client resumes
    assert await uploads.size(image, upload_id) == 5


async def test_upload_ids_are_refused_when_forged_or_used_under_another_repository(
    db: Database, uploads: Uploads, store: FilesystemBlobStore, image: ImageName
) -> None:
    content = b"a layer"
    upload_id = await uploads.start(image, "root")
    await uploads.append(image, upload_id, _chunks(content), start=0)
    other = ImageName(image.organization, "other")
    await uploads.start(other, "root")  # the other repository exists and the caller may push there
    nonce, repository_id, mac = upload_id.split("-")
    forged = [
        f"{nonce}-{repository_id}-{'0' * 32}",  # a made-up MAC
        f"{'f' * 32}-{repository_id}-{mac}",  # another session's bytes under this MAC
        f"{nonce}-{int(repository_id) + 1}-{mac}",  # another repository's id
        "..",
        nonce,  # the bare store name
    ]
    elsewhere = Uploads(db, store, UploadIds("another region's key"))
    digest = sha256_digest(content)
    for attempt in (
        lambda: uploads.append(other, upload_id, _chunks(b"more"), start=len(content)),
        lambda: uploads.finish(other, upload_id, digest, None),
        lambda: uploads.cancel(other, upload_id),
        lambda: elsewhere.finish(image, upload_id, digest, None),
        *(lambda bad=bad: uploads.size(image, bad) for bad in forged),
        *(lambda bad=bad: uploads.finish(image, bad, digest, None) for bad in forged),
    ):
        with pytest.raises(UploadUnknown):
            await attempt()
    assert await _linked_size(db, other, digest) is None
    assert await uploads.size(image, upload_id) == len(content)  # the session itself is intact
    assert await uploads.finish(image, upload_id, digest, None) == len(content)
    assert await _linked_size(db, image, digest) == len(content)
    with pytest.raises(UploadUnknown):  # a genuine id whose session is over
        await uploads.finish(image, upload_id, digest, None)
    cancelled = await uploads.start(image, "root")
    await uploads.cancel(image, cancelled)
    for attempt in (
        lambda: uploads.finish(image, cancelled, digest, _chunks(content)),
        lambda: uploads.append(image, cancelled, _chunks(content)),
        lambda: uploads.cancel(image, cancelled),
    ):
        with pytest.raises(UploadUnknown):
            await attempt()


async def test_an_upload_does_not_outlive_its_repository(
    db: Database, uploads: Uploads, store: FilesystemBlobStore, image: ImageName
) -> None:
    upload_id = await uploads.start(image, "root")
    await uploads.append(image, upload_id, _chunks(b"orphaned"), start=0)
    async with db.write() as session:
        repository = await find_repository(session, image)
        await session.delete(repository)
    with pytest.raises(UploadUnknown):
        await uploads.finish(image, upload_id, sha256_digest(b"orphaned"), None)
    assert await store.stat(sha256_digest(b"orphaned")) is None


async def test_upload_with_wrong_digest_links_nothing(
    db: Database, uploads: Uploads, store: FilesystemBlobStore, image: ImageName
) -> None:
    content = b"the real content"
    claimed = sha256_digest(b"something else")
    upload_id = await uploads.start(image, "root")
    await uploads.append(image, upload_id, _chunks(content), start=0)
    with pytest.raises(DigestInvalid):
        await uploads.finish(image, upload_id, claimed, None)
    for digest in (claimed, sha256_digest(content)):
        assert await _linked_size(db, image, digest) is None
        assert await store.stat(digest) is None
    with pytest.raises(UploadUnknown):
        await uploads.size(image, upload_id)


async def test_upload_into_a_missing_organization_is_refused(uploads: Uploads) -> None:
    with pytest.raises(OrganizationMissing):
        await uploads.start(ImageName("nowhere", "app"), "root")


# --- manifests, tags, referrers ---------------------------------------------------------------------


async def _blob(uploads: Uploads, image: ImageName, content: bytes) -> dict[str, Any]:
    digest = sha256_digest(content)
    await uploads.monolithic(image, "root", digest, _chunks(content))
    return {"digest": digest, "size": len(content)}


async def _image_manifest(uploads: Uploads, image: ImageName, seed: str, **extra: Any) -> bytes:
    """Uploads a config and a layer and returns an OCI image manifest referencing them."""
    config = await _blob(uploads, image, json.dumps({"seed": seed, "os": "linux"}).encode())
    layer = await _blob(uploads, image, f"layer {seed}".encode())
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, **config},
        "layers": [{"mediaType": OCI_LAYER, **layer}],
        **extra,
    }
    return json.dumps(document).encode()


async def _put(db: Database, image: ImageName, reference: str, payload: bytes) -> manifests.PutResult:
    return await manifests.put_manifest(db, NoTagEvents(), image, reference, payload, OCI_MANIFEST, ROOT)


async def _get(db: Database, image: ImageName, reference: str) -> manifests.StoredManifest:
    return await manifests.get_manifest(db, image, reference)


async def test_manifest_with_missing_blob_is_refused(
    db: Database, uploads: Uploads, image: ImageName
) -> None:
    config = await _blob(uploads, image, b"{}")
    missing = sha256_digest(b"never uploaded")
    payload = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **config},
            "layers": [{"mediaType": OCI_LAYER, "digest": missing, "size": 14}],
        }
    ).encode()
    with pytest.raises(ManifestBlobUnknown) as refused:
        await _put(db, image, "latest", payload)
    assert refused.value.missing == [missing]
    with pytest.raises(ManifestUnknown):
        await _get(db, image, "latest")
    with pytest.raises(ManifestUnknown):
        await _get(db, image, sha256_digest(payload))


async def test_blob_of_another_repository_does_not_count(
    db: Database, uploads: Uploads, image: ImageName
) -> None:
    payload = await _image_manifest(uploads, image, "one")
    with pytest.raises(ManifestBlobUnknown):
        await _put(db, ImageName("org", "other"), "latest", payload)


async def test_index_with_missing_child_is_refused(db: Database, image: ImageName) -> None:
    child = sha256_digest(b"no such manifest")
    payload = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": 16}],
        }
    ).encode()
    with pytest.raises(ManifestBlobUnknown):
        await manifests.put_manifest(db, NoTagEvents(), image, "multi", payload, OCI_INDEX, ROOT)


async def test_put_then_get_by_tag_and_by_digest(db: Database, uploads: Uploads, image: ImageName) -> None:
    payload = await _image_manifest(uploads, image, "one")
    result = await _put(db, image, "v1", payload)
    assert result.digest == sha256_digest(payload)
    by_tag = await _get(db, image, "v1")
    by_digest = await _get(db, image, result.digest)
    for stored in (by_tag, by_digest):
        assert stored.payload == payload
        assert stored.digest == result.digest
        assert stored.media_type == OCI_MANIFEST
    with pytest.raises(ManifestUnknown):
        await _get(db, image, "v2")
    with pytest.raises(DigestInvalid):
        await _put(db, image, sha256_digest(b"other"), payload)


async def test_tag_move_reports_previous_digest(db: Database, uploads: Uploads, image: ImageName) -> None:
    first = await _image_manifest(uploads, image, "one")
    second = await _image_manifest(uploads, image, "two")
    created = await _put(db, image, "latest", first)
    assert (created.previous_digest, created.tag_moved) == (None, True)
    same = await _put(db, image, "latest", first)
    assert (same.previous_digest, same.tag_moved) == (created.digest, False)
    moved = await _put(db, image, "latest", second)
    assert (moved.previous_digest, moved.tag_moved) == (created.digest, True)
    assert (await _get(db, image, "latest")).digest == moved.digest
    by_digest = await _put(db, image, sha256_digest(first), first)
    assert (by_digest.previous_digest, by_digest.tag_moved) == (None, False)
    # The old manifest stays reachable by digest.
    assert (await _get(db, image, created.digest)).payload == first


async def test_list_tags_pages_in_lexical_order(db: Database, uploads: Uploads, image: ImageName) -> None:
    payload = await _image_manifest(uploads, image, "one")
    for tag in ("v3", "a", "v10", "b", "latest"):
        await _put(db, image, tag, payload)
    ordered = ["a", "b", "latest", "v10", "v3"]
    assert await manifests.list_tags(db, image, None, None) == (ordered, False)
    assert await manifests.list_tags(db, image, 2, None) == (ordered[:2], True)
    assert await manifests.list_tags(db, image, 2, "b") == (ordered[2:4], True)
    assert await manifests.list_tags(db, image, 2, "v10") == (["v3"], False)
    assert await manifests.list_tags(db, image, 2, "v3") == ([], False)
    assert await manifests.list_tags(db, image, 5, None) == (ordered, False)
    assert await manifests.list_tags(db, image, None, "latest") == (ordered[3:], False)
    with pytest.raises(RepositoryUnknown):
        await manifests.list_tags(db, ImageName("org", "none"), None, None)


async def test_delete_by_digest_removes_its_tags(db: Database, uploads: Uploads, image: ImageName) -> None:
    first = await _image_manifest(uploads, image, "one")
    second = await _image_manifest(uploads, image, "two")
    gone = await _put(db, image, "x", first)
    await _put(db, image, "y", first)
    kept = await _put(db, image, "z", second)
    await manifests.delete_manifest(db, NoTagEvents(), image, gone.digest, ROOT)
    assert await manifests.list_tags(db, image, None, None) == (["z"], False)
    for reference in ("x", "y", gone.digest):
        with pytest.raises(ManifestUnknown):
            await _get(db, image, reference)
    assert (await _get(db, image, "z")).digest == kept.digest
    with pytest.raises(ManifestUnknown):
        await manifests.delete_manifest(db, NoTagEvents(), image, gone.digest, ROOT)
    # Deleting a tag removes only the tag; the manifest stays.
    await manifests.delete_manifest(db, NoTagEvents(), image, "z", ROOT)
    assert await manifests.list_tags(db, image, None, None) == ([], False)
    assert (await _get(db, image, kept.digest)).payload == second
    # The deleted manifest can be pushed again.
    assert (await _put(db, image, "x", first)).digest == gone.digest


async def test_referrers_filtered_by_artifact_type(db: Database, uploads: Uploads, image: ImageName) -> None:
    subject_payload = await _image_manifest(uploads, image, "subject")
    subject = await _put(db, image, "latest", subject_payload)
    empty = await _blob(uploads, image, b"{}")
    subject_descriptor = {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": len(subject_payload)}

    def artifact(artifact_type: str, note: str) -> bytes:
        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": {"mediaType": OCI_EMPTY, **empty},
                "layers": [{"mediaType": OCI_EMPTY, **empty}],
                "subject": subject_descriptor,
                "annotations": {"note": note},
            }
        ).encode()

    sbom, signature = (
        artifact("application/vnd.example.sbom", "s"),
        artifact("application/vnd.example.sig", "g"),
    )
    sbom_result = await _put(db, image, sha256_digest(sbom), sbom)
    assert sbom_result.subject == subject.digest
    await _put(db, image, sha256_digest(signature), signature)
    await _put(db, image, "unrelated", await _image_manifest(uploads, image, "other"))

    def listed(body: bytes) -> dict[str, dict[str, Any]]:
        index = json.loads(body)
        assert index["mediaType"] == OCI_INDEX
        return {d["digest"]: d for d in index["manifests"]}

    everything = listed(await manifests.referrers(db, image, subject.digest, None))
    assert set(everything) == {sha256_digest(sbom), sha256_digest(signature)}
    assert everything[sha256_digest(sbom)] == {
        "mediaType": OCI_MANIFEST,
        "digest": sha256_digest(sbom),
        "size": len(sbom),
        "artifactType": "application/vnd.example.sbom",
        "annotations": {"note": "s"},
    }
    only_sboms = listed(await manifests.referrers(db, image, subject.digest, "application/vnd.example.sbom"))
    assert set(only_sboms) == {sha256_digest(sbom)}
    assert listed(await manifests.referrers(db, image, subject.digest, "application/none")) == {}
    assert listed(await manifests.referrers(db, image, sha256_digest(b"nothing"), None)) == {}
