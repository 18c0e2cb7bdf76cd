"""What images/ tells the rest of Ferry about, inside the transaction that made the change.

images/ defines the listener and never learns who listens: app.py plugs in sync's triggers, so
a job commits together with the tag move that calls for it (SYNC.md, the transactional outbox).
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import Operator
from ferry.metadata.models import Repository


class TagEvents(Protocol):
    async def tag_moved(
        self, session: AsyncSession, repository: Repository, tag: str, digest: str, operator: Operator
    ) -> None:
        """A tag was created, or now points at another digest (`digest`)."""
        ...

    async def referrer_added(
        self, session: AsyncSession, repository: Repository, subject: str, operator: Operator
    ) -> None:
        """A new manifest whose `subject` is `subject` (a signature, an SBOM) was stored."""
        ...

    async def tag_removed(
        self,
        session: AsyncSession,
        repository: Repository,
        tag: str,
        digest: str,
        operator: Operator,
        by_retention: bool,
    ) -> None:
        """A tag that pointed at `digest` was deleted (by a person, or by a retention policy)."""
        ...


class NoTagEvents:
    """For tools that move tags with nobody listening (tests, maintenance)."""

    async def tag_moved(
        self, session: AsyncSession, repository: Repository, tag: str, digest: str, operator: Operator
    ) -> None:
        return None

    async def referrer_added(
        self, session: AsyncSession, repository: Repository, subject: str, operator: Operator
    ) -> None:
        return None

    async def tag_removed(
        self,
        session: AsyncSession,
        repository: Repository,
        tag: str,
        digest: str,
        operator: Operator,
        by_retention: bool,
    ) -> None:
        return None


class FanOut:
    """Several listeners, each told of every change in turn, in the same transaction (sync's
    triggers and webhooks' events, wired by region.py)."""

    def __init__(self, *listeners: TagEvents) -> None:
        self.listeners = listeners

    async def tag_moved(
        self, session: AsyncSession, repository: Repository, tag: str, digest: str, operator: Operator
    ) -> None:
        for listener in self.listeners:
            await listener.tag_moved(session, repository, tag, digest, operator)

    async def referrer_added(
        self, session: AsyncSession, repository: Repository, subject: str, operator: Operator
    ) -> None:
        for listener in self.listeners:
            await listener.referrer_added(session, repository, subject, operator)

    async def tag_removed(
        self,
        session: AsyncSession,
        repository: Repository,
        tag: str,
        digest: str,
        operator: Operator,
        by_retention: bool,
    ) -> None:
        for listener in self.listeners:
            await listener.tag_removed(session, repository, tag, digest, operator, by_retention)
