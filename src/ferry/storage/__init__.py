"""Content-addressed blob storage behind one small interface.

Everything above this package sees blobs only through `BlobStore`; drivers know nothing about
repositories, permissions or the database.
"""

from ferry.storage.base import BlobStore, UploadMissing
from ferry.storage.filesystem import FilesystemBlobStore

__all__ = ["BlobStore", "FilesystemBlobStore", "UploadMissing"]
