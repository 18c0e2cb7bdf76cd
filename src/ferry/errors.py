"""Error bodies in one place: the OCI distribution format and SWR's combined format."""

from __future__ import annotations

from typing import Any

OCI_MESSAGES = {
    "BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UPLOAD_INVALID": "blob upload invalid",
    "BLOB_UPLOAD_UNKNOWN": "blob upload unknown to registry",
    "DIGEST_INVALID": "provided digest did not match uploaded content",
    "MANIFEST_BLOB_UNKNOWN": "manifest references a manifest or blob unknown to registry",
    "MANIFEST_INVALID": "manifest invalid",
    "MANIFEST_UNKNOWN": "manifest unknown to registry",
    "NAME_INVALID": "invalid repository name",
    "NAME_UNKNOWN": "repository name not known to registry",
    "SIZE_INVALID": "provided length did not match content length",
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "UNSUPPORTED": "the operation is unsupported",
    "TOOMANYREQUESTS": "too many requests",
}


STORAGE_FULL_MESSAGE = (
    "storage is full: this region cannot store more data until space is freed; try again later"
)


class OCIError(Exception):
    """An error a registry client sees as `{"errors": [{code, message, detail}]}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or OCI_MESSAGES.get(code, code))
        self.status = status
        self.code = code
        self.message = message or OCI_MESSAGES.get(code, code)
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"errors": [{"code": self.code, "message": self.message, "detail": self.detail}]}


class SWRError(Exception):
    """A management API error in SWR's combined body format (old and new field names)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "errors": [{"errorCode": self.code, "errorMessage": self.message, "detail": ""}],
            "error_code": self.code,
            "error_msg": self.message,
            "details": [{"error_code": self.code, "error_msg": self.message}],
        }


def swr_bad_request(message: str, code: str = "SVCSTG.SWR.4001025") -> SWRError:
    return SWRError(400, code, message)


def swr_forbidden(message: str = "Insufficient permissions") -> SWRError:
    return SWRError(403, "SVCSTG.SWR.4030170", message)


def swr_unauthorized(message: str, code: str = "APIGW.0301") -> SWRError:
    return SWRError(401, code, message)


def organization_not_found(name: str) -> SWRError:
    return SWRError(404, "SVCSTG.SWR.4040058", f"organization '{name}' not found")


def repository_not_found(name: str) -> SWRError:
    return SWRError(404, "SVCSTG.SWR.4040113", f"repository '{name}' not found")


def tag_not_found(tag: str) -> SWRError:
    return SWRError(404, "SVCSTG.SWR.4040115", f"image tag '{tag}' not found")
