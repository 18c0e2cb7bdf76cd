"""How a copy to a peer fails, in words and one flag: whether trying again later can help."""

from __future__ import annotations


class PeerError(Exception):
    """A failed call to a peer; `retryable` says whether trying later can help."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None, status: int = 0):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


class UploadPositionLost(Exception):
    """The target refused a chunk (416): it holds a different amount of the upload than we sent.

    The copier asks the target where the upload ends and goes on from there.
    """
