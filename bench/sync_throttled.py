"""Does a throttling peer slow the others? Push-to-visible at a healthy peer, with and without a
second rule to a peer that answers every third request with 429 and `Retry-After: 2`.

Three real regions on loopback: A (the source), B behind tests/support/throttle_proxy.py, and
C. Rounds interleave the two cases (alone, throttled, alone, throttled, …): each pushes
`--images` small images to a repository of A whose rules go to C only ("alone"), or to B and C
("throttled"), and reads each tag's push-to-visible at C from A's own records (sync_explain:
the job's createdAt → visibleAt, in milliseconds). Issue 14's aim: the healthy peer's p50
with the throttled rule within 1.2x of its p50 alone.

    .venv/bin/python -m bench.sync_throttled [--rounds 3] [--images 20]

Writes bench/results/sync_throttled.json and prints a table with the load average.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.servers import load_average
from tests.support.images import make_image, push_image
from tests.support.regions import make_regions
from tests.support.sync_helpers import create_org, create_repo, create_rule, manage, registry
from tests.support.throttle_proxy import ThrottleProxy

A, B, C = "cn-north-4", "cn-east-3", "cn-south-1"
NS = "throttled"
RESULTS = Path(__file__).resolve().parent / "results" / "sync_throttled.json"
AIM = 1.2


def _moment(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def lags(server: Any, repository: str, tags: list[str], deadline: float) -> list[float]:
    """Each tag's push-to-visible at C, from A's records, once every one is visible there."""
    found: dict[str, float] = {}
    while len(found) < len(tags):
        if time.monotonic() > deadline:
            raise SystemExit(f"{repository}: {len(tags) - len(found)} tag(s) never reached {C}")
        for tag in tags:
            if tag in found:
                continue
            path = f"/v2/manage/namespaces/{NS}/repos/{repository}/sync_explain"
            answer = manage(server).request("GET", path, params={"tag": tag, "target": f"{C}/{NS}"})
            jobs = answer.json().get("jobs") or [] if answer.status_code == 200 else []
            done = [j for j in jobs if j.get("visibleAt")]
            if done:
                found[tag] = _moment(done[0]["visibleAt"]) - _moment(done[0]["createdAt"])
        time.sleep(0.1)
    return [found[tag] for tag in tags]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    proxy = ThrottleProxy(every=3, retry_after=2.0).start()
    results: dict[str, list[float]] = {"alone": [], "throttled": []}
    loads: list[list[float]] = []
    with tempfile.TemporaryDirectory(prefix="ferry-throttled-") as scratch:
        regions = make_regions(Path(scratch), [A, B, C], peer_urls={(A, B): proxy.url})
        try:
            proxy.upstream = regions[B].url
            for region in (A, B, C):
                create_org(regions[region], NS)
            for round_number in range(args.rounds):
                for case in ("alone", "throttled"):
                    repository = f"{case}-{round_number}"
                    create_repo(regions[A], NS, repository)
                    targets = [C] if case == "alone" else [B, C]
                    for target in targets:
                        create_rule(regions[A], NS, repository, target, NS, sync_auto=True)
                    loads.append(load_average())
                    tags = [f"t{i}" for i in range(args.images)]
                    for tag in tags:
                        image = make_image(f"{repository}-{tag}")
                        push_image(registry(regions[A]), f"{NS}/{repository}", tag, image)
                    measured = lags(regions[A], repository, tags, time.monotonic() + 120)
                    results[case] += measured
                    print(f"round {round_number} {case}: p50 {statistics.median(measured):.3f} s")
        finally:
            regions.stop()
            proxy.stop()
    p50 = {case: statistics.median(values) for case, values in results.items()}
    ratio = p50["throttled"] / p50["alone"]
    document = {
        "rounds": args.rounds,
        "images": args.images,
        "load_average": loads,
        "lags": results,
        "p50": p50,
        "ratio": ratio,
        "aim": AIM,
        "throttled_requests": len(proxy.throttled()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2))
    print("| healthy peer C | p50 push-to-visible |")
    print("|---|---|")
    print(f"| rule to C only | {p50['alone']:.3f} s |")
    print(f"| rules to C and to B (429 on every third request) | {p50['throttled']:.3f} s |")
    print(f"| ratio (aim ≤ {AIM}) | {ratio:.2f} |")
    print(f"load average during the rounds: {', '.join(f'{la[0]:.2f}' for la in loads)}")
    return 0 if ratio <= AIM else 1


if __name__ == "__main__":
    raise SystemExit(main())
