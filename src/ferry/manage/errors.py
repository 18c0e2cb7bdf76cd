"""The management API's one table from domain errors to SWR error bodies."""

from __future__ import annotations

from ferry.errors import STORAGE_FULL_MESSAGE, SWRError
from ferry.images import errors as image
from ferry.metadata.db import DatabaseFull
from ferry.storage import StorageFull

# SWR's codes where SWR has one for the case; the message is always the domain error's own.
_TABLE: dict[type[Exception], tuple[int, str]] = {
    image.RepositoryUnknown: (404, "SVCSTG.SWR.4040113"),
    image.OrganizationMissing: (404, "SVCSTG.SWR.4040058"),
    image.ManifestUnknown: (404, "SVCSTG.SWR.4040115"),
    image.BlobUnknown: (404, "SVCSTG.SWR.4040115"),
    image.ManifestInvalid: (400, "SVCSTG.SWR.4001025"),
    image.ManifestBlobUnknown: (400, "SVCSTG.SWR.4001025"),
    image.DigestInvalid: (400, "SVCSTG.SWR.4001025"),
    image.UploadUnknown: (404, "SVCSTG.SWR.4040000"),
    image.UploadOutOfOrder: (416, "SVCSTG.SWR.4160000"),
}


def swr_error(error: Exception, retry_seconds: int) -> SWRError:
    """The SWR error for a domain error (an ImageError, StorageFull or DatabaseFull)."""
    if isinstance(error, StorageFull | DatabaseFull):
        return SWRError(507, "SVCSTG.SWR.5070000", STORAGE_FULL_MESSAGE, {"Retry-After": str(retry_seconds)})
    for kind in type(error).__mro__:
        if kind in _TABLE:
            status, code = _TABLE[kind]
            return SWRError(status, code, str(error))
    return SWRError(400, "SVCSTG.SWR.4001025", str(error))
