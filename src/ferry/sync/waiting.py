"""Wait until visible: a bounded long poll over the tag's states.

It returns as soon as no target of the tag (or the named one) is pending; `done` only when each
of them is in sync. The job table is read every POLL_SECONDS (a read each, no writer taken),
so a wait costs nothing on the queue and works whichever process runs the job.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ferry.metadata.db import Database
from ferry.names import ImageName
from ferry.sync import replication as r
from ferry.sync.explain import NoReplication

POLL_SECONDS = 0.2
MAX_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class WaitResult:
    done: bool  # every target (or the named one) is in sync
    states: list[r.TagState]
    waited: float


async def wait_visible(
    db: Database,
    repository_id: int,
    source: ImageName,
    tag: str,
    target: r.Target | None,
    timeout: float,  # noqa: ASYNC109 (a bound on the answer, not an error raised)
) -> WaitResult:
    """The tag's states once none is pending, or when `timeout` (at most MAX_WAIT_SECONDS) ends."""
    began = time.monotonic()
    deadline = began + max(0.0, min(timeout, MAX_WAIT_SECONDS))
    while True:
        async with db.read() as session:
            states = await r.tag_states(session, [repository_id], tag, target)
        if not states:
            where = f" to {target}" if target else ""
            raise NoReplication(
                f"no sync rule or sync job copies {source}:{tag}{where}; "
                "add a rule with `ferry sync add` or copy it with `ferry sync now`"
            )
        if all(s.state != r.PENDING for s in states) or time.monotonic() >= deadline:
            # A target whose filter leaves the tag out is no target to wait for.
            counted = [s for s in states if s.state != r.EXCLUDED]
            done = bool(counted) and all(s.state == r.IN_SYNC for s in counted)
            return WaitResult(done, states, time.monotonic() - began)
        await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
