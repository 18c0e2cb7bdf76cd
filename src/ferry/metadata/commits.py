"""A callback after each commit in this process that did a certain thing: the in-process half
of waking a loop (sync workers, webhook deliveries) the moment its work is committed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session


class CommitWakeup:
    """Calls `wake` after every commit in this process whose session set `key` in its info
    (what marks it is the caller's: `sync.wakeup.jobs_recorded`, `webhooks.outbox.record`)."""

    def __init__(self, key: str, wake: Callable[[], None]) -> None:
        self.key = key
        self.wake = wake
        self._listening = False

    def start(self) -> None:
        if not self._listening:
            event.listen(Session, "after_commit", self._after_commit)
            self._listening = True

    def stop(self) -> None:
        if self._listening:
            event.remove(Session, "after_commit", self._after_commit)
            self._listening = False

    def _after_commit(self, session: Session, *_args: Any) -> None:
        if session.info.get(self.key):
            self.wake()
