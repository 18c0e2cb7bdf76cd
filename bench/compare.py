"""Ferry against distribution 2.8 (Debian's docker-registry), push and pull, side by side.

Starts one Ferry server and one docker-registry (registry_bench's `reference-config`), both on
free 127.0.0.1 ports with temporary data directories, then runs
/work/shared/bench/registry_bench.py `push` and `pull` for every workload against each of them,
interleaved (workload by workload, operation by operation, alternating which registry goes
first) so that a change in machine load hits both alike. Stops both servers by PID at the end.

Writes bench/results/push_pull.json and prints a markdown table.

    .venv/bin/python -m bench.compare [--repeat 3] [--workload all] [--ops push,pull]
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.servers import (
    ADMIN_USER,
    REGISTRY_BENCH,
    Registry,
    load_average,
    machine_facts,
    start_distribution,
    start_ferry,
)
from bench.small_requests import host_facts, process_tree, tree_cpu_seconds, tree_memory_mib

WORKLOADS = ("big", "layers", "many", "shared")
NAMESPACE = "bench"  # registry_bench pushes to <namespace>/<workload>-<run>-<n>: one Ferry organization
RESULTS = Path(__file__).resolve().parent / "results" / "push_pull.json"
RUN_TIMEOUT = 3600


def vm_hwm_mib(pid: int) -> float | None:
    """The largest peak RSS (VmHWM) of any process of the server's tree (`ferry serve` workers)."""
    peaks = []
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(round(int(line.split()[1]) / 1024, 1))
        except (OSError, ValueError):
            pass
    return max(peaks, default=None)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a server's process tree (its worker processes included)."""
    return tree_cpu_seconds(pid)


def run_bench(
    op: str,
    workload: str,
    name: str,
    server: Registry,
    creds: str | None,
    repeat: int,
    out: Path,
    quiet: bool,
) -> dict[str, Any]:
    """One registry_bench invocation; returns its single result record plus load averages."""
    command = [sys.executable, str(REGISTRY_BENCH), op, server.host]
    command += ["--workload", workload, "--repeat", str(repeat), "--namespace", NAMESPACE]
    command += ["--json", str(out)]
    if creds:
        command += ["--creds", creds]
    if quiet:
        command.append("--quiet")
    shown = " ".join(c if not c.startswith(f"{ADMIN_USER}:") else f"{ADMIN_USER}:***" for c in command)
    print(f"# {name}: {shown}", file=sys.stderr, flush=True)
    cpu_before, client_before = cpu_seconds(server.pid), _children_cpu_seconds()
    subprocess.run(command, check=True, timeout=RUN_TIMEOUT)
    server_cpu = cpu_seconds(server.pid) - cpu_before
    client_cpu = _children_cpu_seconds() - client_before
    doc = json.loads(out.read_text())
    (result,) = doc["results"]
    result["loadavg_start"] = doc["loadavg_start"]
    result["loadavg_end"] = doc["loadavg_end"]
    result["host"] = doc["host"]
    # Includes the untimed seeding of `pull`; a load-independent view of each registry's cost.
    result["server_cpu_seconds"] = round(server_cpu, 2)
    # registry_bench and the skopeo processes it ran: on this 2-core machine the clients share
    # the cores with the server, so a server that needs less CPU leaves more to them.
    result["client_cpu_seconds"] = round(client_cpu, 2)
    return dict(result)


def _children_cpu_seconds() -> float:
    """User + system CPU of every child process waited for so far, and of their waited children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ratio(ferry: float | None, distribution: float | None) -> float | None:
    if not ferry or not distribution:
        return None
    return round(ferry / distribution, 3)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | operation | Ferry MiB/s | distribution MiB/s | ratio (Ferry / distribution) "
        "| server CPU-s Ferry / distribution |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        r = row["ratio"]
        flag = "" if r is None or r >= 0.9 else " (below 0.90)"
        shown = "n/a" if r is None else f"{r:.2f}{flag}"
        lines.append(
            f"| {row['workload']} | {row['operation']} | {row['ferry_mib_per_s']:.1f} | "
            f"{row['distribution_mib_per_s']:.1f} | {shown} | "
            f"{row['ferry']['server_cpu_seconds']:.1f} / {row['distribution']['server_cpu_seconds']:.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats per result, median (default 3)")
    parser.add_argument("--workload", default="all", help="comma-separated workloads or all (default all)")
    parser.add_argument("--ops", default="push,pull", help="operations (default push,pull)")
    parser.add_argument("--json", default=str(RESULTS), help="results file (default bench/results/...)")
    parser.add_argument("--quiet", action="store_true", help="hide registry_bench progress lines")
    parser.add_argument("--keep", action="store_true", help="keep the servers' data directories")
    parser.add_argument("--ferry-args", default="", help="extra `ferry serve` arguments (recorded)")
    args = parser.parse_args()
    workloads = WORKLOADS if args.workload == "all" else tuple(args.workload.split(","))
    ops = tuple(args.ops.split(","))
    ferry_args = args.ferry_args.split()

    root = Path(tempfile.mkdtemp(prefix="ferry-compare-"))
    password = secrets.token_urlsafe(12)
    servers: dict[str, Registry] = {}
    rows: list[dict[str, Any]] = []
    load_start = load_average()
    try:
        ferry = servers["ferry"] = start_ferry(
            root / "ferry", password, organizations=(NAMESPACE,), args=ferry_args
        )
        distribution = servers["distribution"] = start_distribution(root / "distribution")
        print(f"# ferry pid {ferry.pid} at {ferry.url}", file=sys.stderr)
        print(f"# distribution pid {distribution.pid} at {distribution.url}", file=sys.stderr)
        creds = {"ferry": f"{ADMIN_USER}:{password}", "distribution": None}
        step = 0
        for workload in workloads:
            for op in ops:
                # Alternate which registry goes first, so that neither always runs on a
                # warmer (or busier) machine.
                order = ["ferry", "distribution"] if step % 2 == 0 else ["distribution", "ferry"]
                step += 1
                records: dict[str, dict[str, Any]] = {}
                for name in order:
                    out = root / f"{name}-{op}-{workload}.json"
                    records[name] = run_bench(
                        op, workload, name, servers[name], creds[name], args.repeat, out, args.quiet
                    )
                f_mib = records["ferry"]["mib_per_s"]
                d_mib = records["distribution"]["mib_per_s"]
                rows.append(
                    {
                        "workload": workload,
                        "operation": op,
                        "ferry_mib_per_s": f_mib,
                        "distribution_mib_per_s": d_mib,
                        "ratio": ratio(f_mib, d_mib),
                        "order": order,
                        "ferry": records["ferry"],
                        "distribution": records["distribution"],
                    }
                )
        peak_rss = {name: vm_hwm_mib(s.pid) for name, s in servers.items()}
        time.sleep(3.0)  # let the last run's buffers go back
        rss_after = {name: tree_memory_mib(s.pid)["now"] for name, s in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
        if args.keep:
            print(f"# kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    record = {
        "benchmark": "push_pull",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "host": host_facts(),
        "ferry_command": " ".join(["ferry", "serve", *ferry_args]),
        "repeat": args.repeat,
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "server_peak_rss_mib": peak_rss,
        "server_rss_after_run_mib": rss_after,
        "results": rows,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(rows))
    print(
        f"\nload average at start {load_start}, at end {record['load_average_end']}; "
        f"server peak RSS (VmHWM) {peak_rss}"
    )
    print(f"# wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
