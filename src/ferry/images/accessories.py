"""A tag's accessories and references, SWR's names for what signs or describes an image:
- accessories: the referrers of the tag's manifest (OCI `subject`: signatures, SBOMs, attestations),
  with the tag that points at each, if one does;
- references: the tags of the cosign tag scheme for its digest (`sha256-<hex>.sig`, `.att`,
  `.sbom`: signatures pushed as tags by clients without the referrers API).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.identity.caller import READ
from ferry.identity.organizations import account_of
from ferry.identity.service import Principal
from ferry.images.errors import TagUnknown
from ferry.images.repositories import repository_for
from ferry.metadata.models import Account, Manifest, Tag


@dataclass(frozen=True)
class Accessory:
    manifest: Manifest
    tag: str  # a tag pointing at the referrer ("" when none does)


@dataclass(frozen=True)
class AccessoryPage:
    accessories: list[Accessory]
    total: int
    account: Account
    target_digest: str


async def _tagged(
    session: AsyncSession, principal: Principal, namespace: str, name: str, tag: str
) -> tuple[int, str, Account]:
    visible, repository = await repository_for(session, principal, namespace, name, READ)
    digest = await session.scalar(
        select(Tag.digest).where(Tag.repository_id == repository.id, Tag.name == tag)
    )
    if digest is None:
        raise TagUnknown(tag)
    return repository.id, digest, await account_of(session, visible.organization.account_id)


async def accessories_of(
    session: AsyncSession, principal: Principal, namespace: str, name: str, tag: str, offset: int, limit: int
) -> AccessoryPage:
    repository_id, digest, account = await _tagged(session, principal, namespace, name, tag)
    where = (Manifest.repository_id == repository_id, Manifest.subject_digest == digest)
    total = await session.scalar(select(func.count()).select_from(Manifest).where(*where))
    rows = list(
        await session.scalars(
            select(Manifest).where(*where).order_by(Manifest.id).offset(offset).limit(limit)
        )
    )
    tags: dict[str, str] = {}
    if rows:
        found = await session.execute(
            select(Tag.digest, Tag.name)
            .where(Tag.repository_id == repository_id, Tag.digest.in_([m.digest for m in rows]))
            .order_by(Tag.name)
        )
        for tagged, tag_name in found.all():
            tags.setdefault(tagged, tag_name)
    accessories = [Accessory(m, tags.get(m.digest, "")) for m in rows]
    return AccessoryPage(accessories, int(total or 0), account, digest)


async def references_of(
    session: AsyncSession,
    principal: Principal,
    namespace: str,
    name: str,
    tag: str,
    after: str | None,
    limit: int,
) -> tuple[list[str], bool]:
    """The cosign-scheme tags of the tag's digest, by name after `after`, and whether more follow."""
    repository_id, digest, _ = await _tagged(session, principal, namespace, name, tag)
    prefix = digest.replace(":", "-", 1) + "."
    query = select(Tag.name).where(
        Tag.repository_id == repository_id, Tag.name.startswith(prefix, autoescape=True)
    )
    if after is not None:
        query = query.where(Tag.name > after)
    names = list(await session.scalars(query.order_by(Tag.name).limit(limit + 1)))
    return names[:limit], len(names) > limit
