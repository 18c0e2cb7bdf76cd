"""`make bench`: Ferry against distribution 2.8 (Debian's docker-registry) on this machine, every
part of issue 13's table, then the ratio table and the README's performance section.

Parts (each starts its own servers on free 127.0.0.1 ports and interleaves the two registries run
by run, alternating which goes first; each records the load average per run):

- small    bench.small_requests: wrk (ab for HEAD) at 16 connections, HEAD blob / GET manifest / GET
           tag list, req/s p50 p99; raw 512 MiB blob PUT and GET
- pushpull bench.compare: registry_bench push and pull of big, layers, many, shared
- sync     bench.sync_latency: registry_bench sync (Ferry's auto rule vs skopeo copy on push)
- burst    bench.sync_burst: 300 small images at concurrency 16 with an auto rule (Ferry only)
- memory   bench.memory_push: peak RSS while a 1 GiB layer is pushed (monolithic and chunked) and
           pulled (Ferry only; the other parts record RSS under load and after their runs)

Ferry runs as `ferry serve` with its defaults (what a user runs); `--ferry-args` adds arguments to
the parts that start `ferry serve` (small, pushpull) and is recorded. FERRY_SRC=<dir with ferry/>
runs another source tree (e.g. a baseline worktree).

    .venv/bin/python -m bench.run_all [--label latest] [--only small,pushpull] [--quick] [--no-readme]

About 7-10 minutes on this 2-core machine with the defaults; `--quick` runs each part once and
short (a few minutes, for checking the harness, not for numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import table, update_readme
from bench.servers import REGISTRY_BENCH, load_average
from bench.small_requests import host_facts

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PARTS = ("small", "pushpull", "sync", "burst", "memory")
LAYOUTS = Path(os.environ.get("REGISTRY_BENCH_CACHE", Path.home() / ".cache" / "registry-bench")) / "layouts"


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    py = [sys.executable, "-m"]
    label = args.label
    ferry = ["--ferry-args", args.ferry_args] if args.ferry_args else []
    if args.quick:
        small = ["--rounds", "1", "--duration", "3", "--big-mib", "64"]
        pushpull = ["--repeat", "1", "--workload", "layers,many"]
        sync = ["--repeat", "1", "--workloads", "shared,many"]
        burst = ["--images", "60"]
        memory = ["--size-mib", "128", "--chunk-mib", "32"]
    else:
        small = ["--rounds", str(args.rounds), "--duration", str(args.duration)]
        pushpull = ["--repeat", str(args.repeat)]
        sync = ["--repeat", str(args.sync_repeat)]
        burst = []
        memory = []
    return {
        "small": [*py, "bench.small_requests", *small, *ferry, "--label", label],
        "pushpull": [
            *py,
            "bench.compare",
            *pushpull,
            *ferry,
            "--quiet",
            "--json",
            str(RESULTS / f"push_pull_{label}.json"),
        ],
        "sync": [*py, "bench.sync_latency", *sync, "--out", str(RESULTS / f"sync_latency_{label}.json")],
        "burst": [*py, "bench.sync_burst", *burst, "--label", label],
        "memory": [*py, "bench.memory_push", *memory, "--json", str(RESULTS / f"memory_push_{label}.json")],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label", default="latest", help="results/<part>_<label>.json (default latest)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {','.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="one short run of each part (harness check)")
    parser.add_argument("--rounds", type=int, default=3, help="small: interleaved rounds (default 3)")
    parser.add_argument("--duration", type=int, default=10, help="small: seconds per wrk run (default 10)")
    parser.add_argument("--repeat", type=int, default=2, help="pushpull: registry_bench repeats (default 2)")
    parser.add_argument("--sync-repeat", type=int, default=2, help="sync: registry_bench repeats (default 2)")
    parser.add_argument("--ferry-args", default="", help="extra `ferry serve` arguments (recorded)")
    parser.add_argument("--no-readme", action="store_true", help="do not regenerate README's section")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown parts {sorted(unknown)}; choose from {PARTS}")

    if not all((LAYOUTS / w / "index.json").exists() for w in ("big", "layers", "many", "shared")):
        # registry_bench's workloads (about 870 MiB, deterministic): built once per machine.
        subprocess.run([sys.executable, str(REGISTRY_BENCH), "gen", "--verify"], check=True)
    started = time.monotonic()
    run: dict[str, Any] = {
        "benchmark": "bench_run",
        "label": args.label,
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "host": host_facts(),
        "ferry_command": " ".join(["ferry", "serve", *args.ferry_args.split()]),
        "quick": args.quick,
        "steps": [],
    }
    failed = []
    for part, command in commands(args).items():
        if part not in parts:
            continue
        print(f"## {part}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
        step_start, load_before = time.monotonic(), load_average()
        code = subprocess.run(command, cwd=ROOT).returncode
        step = {
            "part": part,
            "command": " ".join(command[1:]),
            "seconds": round(time.monotonic() - step_start, 1),
            "load_before": load_before,
            "load_after": load_average(),
            "exit_code": code,
        }
        run["steps"].append(step)
        print(f"## {part}: exit {code}, {step['seconds']:.0f} s, load {step['load_after']}", file=sys.stderr)
        if code:
            failed.append(part)
    run["finished"] = datetime.now(UTC).strftime("%H:%M")
    run["minutes"] = round((time.monotonic() - started) / 60, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"bench_run_{args.label}.json").write_text(json.dumps(run, indent=1) + "\n")
    text = table(args.label)
    print("\n" + text)
    if not args.no_readme and not args.quick:
        update_readme(text, args.label)
        print("# README.md performance section regenerated", file=sys.stderr)
    if failed:
        print(f"parts that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
