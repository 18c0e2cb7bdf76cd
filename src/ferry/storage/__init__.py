"""Content-addressed blob storage behind one small interface.

Everything above this package sees blobs only through `BlobStore`; drivers know nothing about
repositories, permissions or the database.
"""

from ferry.config import Settings
from ferry.storage.base import (
    BlobMissing,
    BlobStore,
    StorageFull,
    StorageUnavailable,
    StoredObject,
    UploadMissing,
)
from ferry.storage.filesystem import FilesystemBlobStore
from ferry.storage.instrumented import InstrumentedStore

__all__ = [
    "BlobMissing",
    "BlobStore",
    "FilesystemBlobStore",
    "StorageFull",
    "StorageUnavailable",
    "StoredObject",
    "UploadMissing",
    "open_store",
]


def open_store(settings: Settings) -> BlobStore:
    """The blob store the settings name: S3 for an s3:// URL, else the local filesystem."""
    if settings.storage_url.startswith("s3://"):
        from ferry.storage.s3 import S3BlobStore

        s3 = S3BlobStore.from_url(
            settings.storage_url,
            endpoint=settings.s3_endpoint,
            region=settings.s3_region,
            access_key=settings.s3_access_key_id,
            secret_key=settings.s3_secret_access_key.get_secret_value(),
            redirect_seconds=settings.s3_redirect_seconds,
        )
        return InstrumentedStore(s3, "s3")
    return InstrumentedStore(FilesystemBlobStore(settings.data_dir / "storage"), "filesystem")
