"""How a copy to a peer fails, in words and one flag: whether trying again later can help."""

from __future__ import annotations


class PeerError(Exception):
    """A failed call to a peer; `retryable` says whether trying later can help."""

    def __init__(
        self,
        message: str,
        retryable: bool,
        retry_after: float | None = None,
        status: int = 0,
        cause: str = "",
    ):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self._cause = cause

    @property
    def cause(self) -> str:
        """A short, stable word for metrics: what kind of failure this was."""
        if self._cause:
            return self._cause
        if self.status == 429:
            return "throttled"
        if self.status >= 500:
            return "peer_5xx"
        if self.status in (401, 403):
            return "refused"
        if self.status >= 400:
            return "peer_4xx"
        return "unreachable"  # no answer: refused connection, reset, timeout


class UploadPositionLost(Exception):
    """The target refused a chunk (416): it holds a different amount of the upload than we sent.

    The copier asks the target where the upload ends and goes on from there.
    """


class RuleError(Exception):
    """A refused sync rule or manual sync; `str(error)` is a message for a person."""
