"""What can go wrong with image content, in words and data, without HTTP.

Each API maps these to its own wire format in one table: registry/errors.py (OCI error bodies),
manage/errors.py (SWR error bodies), and the CLI prints the message.
"""

from __future__ import annotations


class ImageError(Exception):
    """A refused image operation; `str(error)` is a message for a person."""


class RepositoryUnknown(ImageError):
    def __init__(self, name: str) -> None:
        super().__init__(f"repository {name} not known to registry")
        self.name = name


class OrganizationMissing(ImageError):
    """A push into an organization that does not exist (pushing never creates one)."""

    def __init__(self, organization: str, name: str) -> None:
        super().__init__(
            f"organization '{organization}' does not exist: create it first "
            f"(ferry org create {organization}, or POST /v2/manage/namespaces)"
        )
        self.organization = organization
        self.name = name


class BlobUnknown(ImageError):
    def __init__(self, digest: str) -> None:
        super().__init__(f"blob {digest} unknown to registry")
        self.digest = digest


class ManifestUnknown(ImageError):
    def __init__(self, reference: str) -> None:
        super().__init__(f"manifest {reference} unknown to registry")
        self.reference = reference


class ManifestInvalid(ImageError):
    """A manifest (or a tag name) the registry will not store; the message says why."""


class ManifestBlobUnknown(ImageError):
    """A manifest that references blobs or child manifests the repository does not hold."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"manifest references {len(missing)} unknown blob(s) or manifest(s)")
        self.missing = missing


class DigestInvalid(ImageError):
    def __init__(self, digest: str, message: str) -> None:
        super().__init__(message)
        self.digest = digest


class UploadUnknown(ImageError):
    def __init__(self, upload_id: str) -> None:
        super().__init__(f"blob upload {upload_id} unknown to registry")
        self.upload_id = upload_id


class UploadOutOfOrder(ImageError):
    """A chunk that does not start where the upload ends: the client resumes from `size`."""

    def __init__(self, size: int) -> None:
        super().__init__(f"chunk does not start at the upload's current size {size}")
        self.size = size


class RepositoryExists(ImageError):
    def __init__(self, name: str) -> None:
        super().__init__(f"repository '{name}' already exists")
        self.name = name


class TagUnknown(ImageError):
    def __init__(self, tag: str) -> None:
        super().__init__(f"image tag '{tag}' not found")
        self.tag = tag


class TagExists(ImageError):
    """A retag onto a tag that exists, without leave to override it."""

    def __init__(self, tag: str) -> None:
        super().__init__(f"tag '{tag}' exists and override is false")
        self.tag = tag
