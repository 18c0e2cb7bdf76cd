"""The per-peer job limit's arithmetic (sync/concurrency.py): halved by a throttle, at most once
a second, grown back by 1/limit per success, never below one nor above the cap."""

from __future__ import annotations

from ferry.sync.concurrency import PeerConcurrency


def test_a_throttle_halves_the_limit_once_a_second_and_successes_grow_it_back() -> None:
    now = [100.0]
    limit = PeerConcurrency("cn-east-3", 32, clock=lambda: now[0])
    assert limit.allowed() == 32
    limit.throttled()
    limit.throttled()  # the same push-back, told by another answer in flight: once
    assert limit.allowed() == 16
    now[0] += 1.0
    limit.throttled()
    assert limit.allowed() == 8
    for _ in range(9):  # about a round of jobs at 8: one more
        limit.succeeded()
    assert limit.allowed() == 9
    for _ in range(10_000):
        limit.succeeded()
    assert limit.allowed() == 32  # back to the cap, never above it
    for _ in range(10):
        now[0] += 1.0
        limit.throttled()
    assert limit.allowed() == 1  # never below one job
