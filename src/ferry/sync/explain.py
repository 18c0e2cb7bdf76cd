"""Why a tag is (not) in a target yet: the rules, the state, every job, what the target holds now
(asked live, as the jobs would ask), and one sentence saying what happens next."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from ferry.metadata.db import Database
from ferry.metadata.models import Repository, SyncJob, utcnow
from ferry.names import ImageName
from ferry.sync import reasons
from ferry.sync import replication as r
from ferry.sync.applied import AppliedRule, applied_rules
from ferry.sync.authorization import SyncRefused, job_actor, rule_actor
from ferry.sync.errors import PeerError
from ferry.sync.holds import pause_of
from ferry.sync.peer_client import Actor, PeerClient
from ferry.sync.rules import RuleError
from ferry.sync.target import OciTarget

# How long explain waits for the target to say what its tag holds.
LIVE_SECONDS = 5.0
JOBS_SHOWN = 50


class NoReplication(RuleError):
    """Nothing replicates the tag (to the named target): no rule, no job (a 400)."""


@dataclass(frozen=True)
class LiveDigest:
    """What the target's tag resolves to now; `error` when the target could not say."""

    digest: str | None
    error: str | None


@dataclass(frozen=True)
class Explanation:
    rules: list[AppliedRule]
    state: r.TagState
    jobs: list[SyncJob]
    live: LiveDigest
    next_step: str


async def explain(
    db: Database,
    peers: Mapping[str, PeerClient],
    repository: Repository,
    source: ImageName,
    tag: str,
    target: r.Target,
) -> Explanation:
    async with db.read() as session:
        rules = [
            rule
            for rule in await applied_rules(session, [repository.id])
            if r.Target(rule.remote_region_id, rule.remote_namespace) == target
        ]
        states = await r.tag_states(session, [repository.id], tag, target)
        jobs = list(
            await session.scalars(
                select(SyncJob)
                .where(
                    SyncJob.repository_id == repository.id,
                    SyncJob.tag == tag,
                    SyncJob.remote_region_id == target.region,
                    SyncJob.remote_namespace == target.namespace,
                )
                .order_by(SyncJob.id.desc())
                .limit(JOBS_SHOWN)
            )
        )
        pause = await pause_of(session, jobs[0]) if jobs else None
    if not states:
        raise NoReplication(f"no sync rule or sync job copies {source}:{tag} to {target}")
    state = states[0]
    live = await live_digest(db, peers, source, tag, target, rules, jobs)
    held_by = ""
    if pause is not None:
        resume = (
            f"`ferry sync resume {source if pause.repo_name else source.organization} --to {target}`"
            if pause.remote_namespace
            else f"`ferry peer resume {target.region}` in this region"
        )
        held_by = f"{pause.paused_by} paused it at {_when(pause.paused_at)}; {resume} lets it go"
    return Explanation(rules, state, jobs, live, next_step(state, rules, source, target, held_by))


async def live_digest(
    db: Database,
    peers: Mapping[str, PeerClient],
    source: ImageName,
    tag: str,
    target: r.Target,
    rules: list[AppliedRule],
    jobs: list[SyncJob],
) -> LiveDigest:
    """The target tag's digest, asked as the jobs ask: with the rights of the rule's owner (or of
    the newest job's actor). A peer that does not answer is said so, never an error here."""
    client = peers.get(target.region)
    if client is None:
        return LiveDigest(None, f"region {target.region} is not a configured peer")
    try:
        actor: Actor
        if rules:
            actor = await rule_actor(db, rules[0], source)
        elif jobs:
            actor = await job_actor(db, jobs[0])
        else:
            return LiveDigest(None, "no rule or job says whose rights to ask with")
        remote = OciTarget(client, f"{target.namespace}/{source.repository}", actor)
        digest = await asyncio.wait_for(remote.manifest_digest(tag), LIVE_SECONDS)
    except SyncRefused as refused:
        return LiveDigest(None, f"not asked: {refused}")
    except PeerError as error:
        return LiveDigest(None, str(error))
    except TimeoutError:
        return LiveDigest(None, f"region {target.region} did not answer within {LIVE_SECONDS:.0f} s")
    return LiveDigest(digest, None)


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "an unknown time"


def next_step(
    state: r.TagState, rules: list[AppliedRule], source: ImageName, target: r.Target, held_by: str = ""
) -> str:
    """One sentence: what will happen next to this tag in this target, and what to do if nothing."""
    now_cmd = f"`ferry sync now {source} {state.tag} --to {target}`"
    clause = reasons.describe(state.reason, target.region)
    if state.state == r.IN_SYNC:
        return f"nothing to do: in sync since {_when(state.visible_at)}"
    if state.state == r.PENDING:
        if state.phase == "running":
            running = f"copying now: attempt {state.attempt}, {_size(state.bytes_sent)} sent"
            return f"{running}; the attempt before failed: {clause}" if state.reason else running
        if state.phase == "paused":
            return f"paused: {held_by}; it keeps its place and copies when resumed" if held_by else "paused"
        if state.phase == "retrying" and state.next_attempt_at is not None:
            seconds = max(0.0, (state.next_attempt_at - utcnow()).total_seconds())
            return f"retrying in {seconds:.0f} s: {clause}"
        ahead = state.position or 0
        queued = f"queued: {ahead} job{'s' if ahead != 1 else ''} ahead"
        # A retry whose time came waits for a slot like a new job; the failure still explains it.
        return f"{queued}; the last attempt failed: {clause}" if state.reason else queued
    if state.state == r.CONFLICT:
        return (
            f"left alone: {target.region} holds another image and override is off; "
            f"to replace it, turn override on for the rule or run {now_cmd[:-1]} --override`"
        )
    if state.state == r.FAILED:
        if state.reason == reasons.TARGET_ORG_MISSING:
            return (
                f"will not retry: target organization missing in {target.region} (or the user may "
                f"not push to it there); create it and run {now_cmd}"
            )
        return f"will not retry: {clause}; fix that and run {now_cmd}"
    if state.state == r.BEHIND:
        return f"not copied: the target holds an older digest of this tag and no job is queued; run {now_cmd}"
    if state.state == r.EXCLUDED:
        return f"not copied: {state.message}; change the rule's filters or run {now_cmd}"
    if not rules:
        return f"not copied: no rule targets {target}; run {now_cmd} or add one with `ferry sync add`"
    if not any(rule.sync_auto for rule in rules):
        return f"not copied: the rule is not automatic; run a manual sync: {now_cmd}"
    return f"not copied: the tag has not moved since the rule was made; run {now_cmd}"
