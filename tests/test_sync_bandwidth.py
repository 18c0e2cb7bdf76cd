"""Bandwidth caps between real regions: A may send B 20 MiB/s. A 200 MiB image then copies at
the cap (within 10 %), and a small image pushed meanwhile is not held behind it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ferry.config import Peer
from ferry.sync.bandwidth import PIECE, Lane, PeerBandwidth
from tests.support.images import make_image, push_image, put_manifest
from tests.support.regions import make_regions
from tests.support.sync_helpers import create_org, create_repo, create_rule, manage, registry, tag_digest
from tests.test_sync_faults import MIB, push_big_image, started

A, B = "cn-north-4", "cn-east-3"
NS, REPO = "capped", "app"
NAME = f"{NS}/{REPO}"
CAP = 20 * MIB
SIZE = 200 * MIB


def _moment(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def explained(server: Any, tag: str) -> dict[str, Any]:
    path = f"/v2/manage/namespaces/{NS}/repos/{REPO}/sync_explain"
    response = manage(server).request("GET", path, params={"tag": tag, "target": f"{B}/{NS}"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_capped_peer_gets_the_cap_and_a_small_image_is_not_held_behind_a_big_one(tmp_path: Path) -> None:
    regions = make_regions(tmp_path, [A, B], peer_fields={(A, B): {"bandwidth": "20MiB"}})
    with started(regions):
        a, b = regions[A], regions[B]
        for server in (a, b):
            create_org(server, NS)
        create_repo(a, NS, REPO)
        assert create_rule(a, NS, REPO, B, NS, sync_auto=True) == 200

        big, _layer = push_big_image(registry(a), seed=20, name=NAME, size=SIZE)
        assert put_manifest(registry(a), NAME, "big", big).status_code == 201
        time.sleep(3)  # the big copy is well under way
        assert tag_digest(b, NAME, "big") is None

        small = make_image("capped-small")
        push_image(registry(a), NAME, "small", small)
        pushed = time.monotonic()
        while tag_digest(b, NAME, "small") != small.digest:
            assert time.monotonic() - pushed < 30, "the small image never arrived"
            time.sleep(0.02)
        small_seconds = time.monotonic() - pushed
        assert tag_digest(b, NAME, "big") is None, "the big image was meant to be still copying"

        deadline = time.monotonic() + 60
        while (job := explained(a, "big")["jobs"][0])["status"] != "success":
            assert job["status"] in ("waiting", "running"), job
            assert time.monotonic() < deadline, "the big image took over a minute"
            time.sleep(0.2)
        assert tag_digest(b, NAME, "big") == big.digest
        seconds = _moment(job["finishedAt"]) - _moment(job["startedAt"])
        rate = SIZE / seconds
        assert 0.9 * CAP <= rate <= 1.1 * CAP, f"{rate / MIB:.1f} MiB/s over {seconds:.1f} s, cap 20 MiB/s"
        assert small_seconds < 1.0, f"the small image took {small_seconds:.2f} s behind the big one"


# --- the pacing itself, in one process ----------------------------------------------------------


async def _body(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size


async def test_concurrent_streams_to_a_capped_peer_take_turns_piece_by_piece() -> None:
    pacer = PeerBandwidth(Peer(id="b", url="http://127.0.0.1:9", bandwidth=64 * PIECE))
    order: list[str] = []

    async def drain(name: str, body: AsyncIterator[bytes]) -> None:
        async for piece in pacer.paced(body):
            assert len(piece) <= PIECE
            order.append(name)

    big = asyncio.create_task(drain("big", _body(4, 8 * PIECE)))  # 32 pieces: half a second
    await asyncio.sleep(0.05)
    await drain("small", _body(1, PIECE // 4))
    await big
    assert order.count("big") == 32
    # By 0.05 s the big stream took its burst (0.05 s of pieces) and three or four more: about
    # seven. The small one's piece came next, not after the remaining 25 or so.
    assert 0 < order.index("small") <= 10, order


async def test_rules_sharing_a_capped_peer_get_equal_shares_whatever_their_number_of_copies() -> None:
    pacer = PeerBandwidth(Peer(id="b", url="http://127.0.0.1:9", bandwidth=200 * PIECE))
    order: list[str] = []

    async def drain(name: str, lane: Lane) -> None:
        async for _piece in pacer.paced(_body(4, 4 * PIECE), lane):  # 16 pieces each
            order.append(name)

    busy, quiet = Lane("rule:1"), Lane("rule:2")
    async with asyncio.TaskGroup() as group:
        group.create_task(drain("busy-1", busy))
        group.create_task(drain("busy-2", busy))
        group.create_task(drain("quiet", quiet))
    # While all three ran, the quiet rule's one copy got every other piece (half the peer),
    # and the busy rule's two copies shared the other half.
    first = order[:24]
    assert abs(first.count("quiet") - 12) <= 2, first
    assert abs(first.count("busy-1") - first.count("busy-2")) <= 2, first


def test_a_rule_cap_holds_for_its_copies_with_no_peer_cap(tmp_path: Path) -> None:
    regions = make_regions(tmp_path, [A, B])
    with started(regions):
        a, b = regions[A], regions[B]
        for server in (a, b):
            create_org(server, NS)
        body = {"remoteRegionId": B, "remoteNamespace": NS, "bandwidth": "8MiB"}
        created = manage(a).request("POST", f"/v2/manage/namespaces/{NS}/sync_rules", body)
        assert created.status_code == 200 and created.json()["bandwidth"] == 8 * MIB, created.text
        big, _layer = push_big_image(registry(a), seed=21, name=NAME, size=40 * MIB)
        assert put_manifest(registry(a), NAME, "big", big).status_code == 201
        deadline = time.monotonic() + 60
        while (job := explained(a, "big")["jobs"][0])["status"] != "success":
            assert job["status"] in ("waiting", "running"), job
            assert time.monotonic() < deadline, "the image took over a minute"
            time.sleep(0.2)
        seconds = _moment(job["finishedAt"]) - _moment(job["startedAt"])
        rate = 40 * MIB / seconds
        assert 0.9 * 8 * MIB <= rate <= 1.1 * 8 * MIB, f"{rate / MIB:.1f} MiB/s, the rule's cap 8 MiB/s"
        bad = {"remoteRegionId": B, "remoteNamespace": NS, "bandwidth": "fast"}
        refused = manage(a).request("POST", f"/v2/manage/namespaces/{NS}/sync_rules", bad)
        assert refused.status_code == 400 and "byte rate" in refused.json()["error_msg"]


def test_a_window_of_the_day_changes_the_cap_and_the_share_divides_it() -> None:
    peer = Peer.model_validate(
        {
            "id": "b",
            "url": "http://127.0.0.1:9",
            "bandwidth": "20MiB",
            "bandwidth_windows": [{"start": "22:00", "end": "06:00", "bandwidth": "100MiB"}],
        }
    )
    at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    pacer = PeerBandwidth(peer, share=2, wall=lambda: at)
    assert pacer.rate() == 10 * MIB
    at = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    assert pacer.rate() == 50 * MIB
    at = datetime(2026, 12, 7, 5, 59, tzinfo=UTC)
    assert pacer.rate() == 50 * MIB
    assert PeerBandwidth(Peer(id="c", url="http://127.0.0.1:9")).capped is False
