"""Whose rights a sync copies with, checked when a rule is made, at a manual sync, and per job.

The rule (README "Who may sync what"):
- an automatic rule is made, changed and deleted by an administrator of the account that owns
  the source organization (as in SWR); a manual sync needs edit rights on the source;
- a job copies with the rights of one user, its actor: the rule's owner, or the caller of the
  manual sync. Each time it runs, the actor must still exist and may read the source here (and
  for a rule, still be an administrator of its account);
- in the target region the copy may write only where the user of the same name, in the account
  of the same name, may push by hand, and only within what that region grants the peer
  credential. The peer is told whom the copy is for and grants the intersection, so the
  credential is no master key: the target region decides what each peer may write.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.service import Principal, allowed_actions, principal_by_id
from ferry.metadata.db import Database
from ferry.metadata.models import Account, Organization, Repository, SyncJob
from ferry.names import ImageName
from ferry.sync.applied import AppliedRule
from ferry.sync.peer_client import Actor, PeerClient


class SyncRefused(Exception):
    """Why a sync may not run, in words a person can act on; nothing was copied."""


async def actor_of(session: AsyncSession, principal: Principal) -> Actor:
    account = await session.get(Account, principal.account_id)
    assert account is not None
    return Actor(account.name, principal.name)


def may_configure_rules(principal: Principal, organization: Organization) -> bool:
    """SWR: only the account's administrators configure automatic sync."""
    return principal.is_admin and principal.account_id == organization.account_id


async def check_target(client: PeerClient, actor: Actor, namespace: str, repository: str) -> None:
    """Raises SyncRefused unless the target region lets `actor` push to namespace/repository.

    The message is the same whether the organization is missing there or the user may not push
    to it, so nobody learns which organizations another region has.
    """
    granted = await client.authorize(f"{namespace}/{repository}", actor)
    if granted is not None and "push" not in granted:
        raise SyncRefused(
            f"organization '{namespace}' not found in region {client.peer.id}, or {actor} "
            "may not push to it there (pushing needs edit permission on the organization)"
        )


async def job_actor(db: Database, job: SyncJob) -> Actor:
    """The actor of a job about to run, after checking what it may still do here."""
    source = ImageName(job.namespace, job.repo_name)
    return await _checked_actor(
        db, job.actor_id, source, job.repository_id, rule_owner=job.trigger in ("auto", "delete")
    )


async def rule_actor(db: Database, rule: AppliedRule, source: ImageName) -> Actor:
    """Whom an automatic rule's copies act for (its owner), checked as an automatic job's actor
    is; an audit reads the target with these rights, and the reconciler's repairs copy with them."""
    return await _checked_actor(db, rule.creator_id, source, rule.repository_id, rule_owner=True)


async def _checked_actor(
    db: Database, actor_id: int | None, source: ImageName, repository_id: int | None, rule_owner: bool
) -> Actor:
    async with db.read() as session:
        principal = await principal_by_id(session, actor_id) if actor_id is not None else None
        if principal is None:
            raise SyncRefused(
                "the user this sync copies for no longer exists here; "
                "an administrator must create the rule (or run the manual sync) again"
            )
        if "pull" not in await allowed_actions(session, principal, source):
            raise SyncRefused(f"user {principal.name} may no longer read {source} here")
        if rule_owner:
            organization = await _organization_of(session, repository_id)
            if organization is None or not may_configure_rules(principal, organization):
                raise SyncRefused(
                    f"the rule's owner {principal.name} is no longer an administrator of the "
                    f"account owning {source.organization}; an administrator must create the rule again"
                )
        return await actor_of(session, principal)


async def _organization_of(session: AsyncSession, repository_id: int | None) -> Organization | None:
    repository = await session.get(Repository, repository_id) if repository_id is not None else None
    return await session.get(Organization, repository.organization_id) if repository else None
