"""The registry API's one table from domain errors to OCI error bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ferry.errors import STORAGE_FULL_MESSAGE, OCIError
from ferry.images import errors as image
from ferry.metadata.db import DatabaseFull
from ferry.storage import StorageFull

# Each domain error's OCI error, built from the error's own data. The lookup walks the error's
# class hierarchy, so a subclass without its own row takes its parent's.
_TABLE: dict[type[Exception], Callable[[Any], OCIError]] = {
    image.RepositoryUnknown: lambda e: OCIError(404, "NAME_UNKNOWN", detail={"name": e.name}),
    image.OrganizationMissing: lambda e: OCIError(404, "NAME_UNKNOWN", str(e), {"name": e.name}),
    image.BlobUnknown: lambda e: OCIError(404, "BLOB_UNKNOWN", detail={"digest": e.digest}),
    image.ManifestUnknown: lambda e: OCIError(404, "MANIFEST_UNKNOWN", detail={"reference": e.reference}),
    image.ManifestInvalid: lambda e: OCIError(400, "MANIFEST_INVALID", str(e)),
    image.ManifestBlobUnknown: lambda e: OCIError(
        400, "MANIFEST_BLOB_UNKNOWN", str(e), {"digest": e.missing[0], "missing": e.missing}
    ),
    image.DigestInvalid: lambda e: OCIError(400, "DIGEST_INVALID", str(e), {"digest": e.digest}),
    image.UploadUnknown: lambda e: OCIError(404, "BLOB_UPLOAD_UNKNOWN", detail={"uuid": e.upload_id}),
    # Range says where the upload ends, so the client resumes there (distribution-spec).
    image.UploadOutOfOrder: lambda e: OCIError(
        416, "BLOB_UPLOAD_INVALID", str(e), headers={"Range": f"0-{max(e.size - 1, 0)}"}
    ),
}


def oci_error(error: Exception, retry_seconds: int) -> OCIError:
    """The OCI error for a domain error (an ImageError, StorageFull or DatabaseFull)."""
    if isinstance(error, StorageFull | DatabaseFull):
        # 507 with Retry-After: the region takes writes again once space returns, and clients
        # that honour the header (and Ferry's own sync) come back then.
        return OCIError(507, "UNAVAILABLE", STORAGE_FULL_MESSAGE, headers={"Retry-After": str(retry_seconds)})
    for kind in type(error).__mro__:
        if kind in _TABLE:
            return _TABLE[kind](error)
    return OCIError(400, "UNSUPPORTED", str(error))
