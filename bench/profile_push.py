"""A py-spy profile of Ferry during registry_bench's `many` push (200 small images, 8 parallel
skopeo), summarized as top functions by own and by total time, and by package.

Starts Ferry as a user runs it (`ferry serve`, default settings; `--ferry-args` adds arguments and
is recorded; FERRY_SRC=<dir> runs another source tree, e.g. the baseline worktree), attaches
`py-spy record --subprocesses --nonblocking --format raw --nolineno` to it (every worker process
of `ferry serve` is sampled), runs `registry_bench.py push --workload many --repeat 1`, stops
py-spy with SIGINT and summarizes the collapsed stacks. py-spy leaves out idle threads, so the
samples are time spent running (or waiting on the GIL), not time waiting for I/O.

    .venv/bin/python -m bench.profile_push [--label before] [--rate 100] [--top 40]

Writes bench/results/profile_many_push_<label>.txt (the summary) and .raw.gz (the stacks).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.servers import ADMIN_USER, REGISTRY_BENCH, load_average, start_ferry
from bench.small_requests import host_facts, log, tree_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*)\)$")
PACKAGES = (
    ("sqlalchemy", "SQLAlchemy"),
    ("aiosqlite", "aiosqlite"),
    ("asyncpg", "asyncpg"),
    ("aiohttp", "aiohttp"),
    ("multidict", "aiohttp"),
    ("yarl", "aiohttp"),
    ("asyncio", "asyncio"),
    ("selectors", "asyncio"),
    ("jwt", "JWT"),
    ("cryptography", "JWT"),
    ("pydantic", "pydantic"),
    ("prometheus_client", "prometheus_client"),
    ("ferry", "ferry"),
    ("logging", "logging"),
    ("threading", "threading / queue"),
    ("queue", "threading / queue"),
    ("concurrent", "threading / queue"),
    ("hashlib", "hashing"),
)


def package_of(frame: str) -> str:
    match = FRAME.match(frame)
    path = match.group("file") if match else frame
    for needle, name in PACKAGES:
        if re.search(rf"(^|/){needle}(/|\.py|$)", path):
            return name
    return "other"


def is_meta(frame: str) -> bool:
    """py-spy's process/thread pseudo frames (with --subprocesses / --threads)."""
    return frame.startswith("process ") or frame.startswith("thread ")


def _tables(stacks: list[tuple[list[str], int]], top: int, title: str) -> tuple[list[str], dict[str, object]]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    own_package: Counter[str] = Counter()
    total_package: Counter[str] = Counter()
    samples = 0
    for frames, count in stacks:
        samples += count
        own[frames[-1]] += count
        own_package[package_of(frames[-1])] += count
        for frame in set(frames):
            total[frame] += count
        for package in {package_of(f) for f in frames}:
            total_package[package] += count

    def pct(n: int) -> str:
        return f"{100 * n / samples:5.1f} %" if samples else "  n/a"

    out = [
        f"== {title}: {samples} samples",
        "",
        "by package (own time / total time: any frame of it on the stack)",
    ]
    for package, n in own_package.most_common():
        out.append(f"  {pct(n)}  {pct(total_package[package])}  {package}")
    out += ["", f"top {top} functions by own time"]
    out += [f"  {pct(n)}  {frame}" for frame, n in own.most_common(top)]
    out += ["", f"top {top} functions by total time"]
    out += [f"  {pct(n)}  {frame}" for frame, n in total.most_common(top)]
    out.append("")
    figures: dict[str, object] = {
        "samples": samples,
        "own_by_package": {k: round(v / samples, 4) for k, v in own_package.most_common()} if samples else {},
        "total_by_package": {k: round(v / samples, 4) for k, v in total_package.most_common()}
        if samples
        else {},
        "top_own": [[f, n] for f, n in own.most_common(top)],
    }
    return out, figures


def summarize(raw: str, top: int) -> tuple[str, dict[str, object]]:
    """Tables for every sample, and for the event-loop threads alone (stacks not under a
    threading.Thread: the aiosqlite and executor threads are the rest; C calls such as sqlite3's,
    fsync included, count as own time of the Python function that made them)."""
    processes: Counter[str] = Counter()
    stacks: list[tuple[list[str], int]] = []
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if frames and frames[0].startswith("process "):
            processes[frames[0][:120]] += int(count_text)
        frames = [f for f in frames if not is_meta(f)]
        if frames:
            stacks.append((frames, int(count_text)))
    loop = [(f, n) for f, n in stacks if not any(x.startswith("Thread._bootstrap ") for x in f)]
    total_samples = sum(n for _, n in stacks)
    loop_samples = sum(n for _, n in loop)
    out = [
        f"samples (not idle): {total_samples}; on event-loop threads: {loop_samples} "
        f"({100 * loop_samples / max(total_samples, 1):.1f} %), on other threads (aiosqlite, executors): "
        f"{total_samples - loop_samples}",
        "",
    ]
    every, figures = _tables(stacks, top, "all threads")
    on_loop, loop_figures = _tables(loop, top, "event-loop threads only")
    out += every + on_loop + ["samples per process"]
    out += [f"  {n:7d}  {p}" for p, n in processes.most_common()]
    return "\n".join(out), {"all": figures, "event_loop": loop_figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label", default="after", help="profile_many_push_<label>.txt (default after)")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second (default 100)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--ferry-args", default="", help="extra `ferry serve` arguments (recorded)")
    parser.add_argument("--workload", default="many")
    args = parser.parse_args(argv)
    if not PY_SPY.exists():
        raise SystemExit(f"{PY_SPY} missing: .venv/bin/pip install py-spy (or pip install -e '.[bench]')")
    stem = RESULTS / f"profile_{args.workload}_push_{args.label}"

    work = Path(tempfile.mkdtemp(prefix="ferry-profile-"))
    password = secrets.token_urlsafe(12)
    ferry_args = args.ferry_args.split()
    load_start = load_average()
    raw_file = work / "stacks.raw"
    bench_json = work / "push.json"
    try:
        server = start_ferry(work / "ferry", password, organizations=("bench",), args=ferry_args)
        try:
            time.sleep(1.0)  # worker processes start after the first answers
            spy_cmd = [str(PY_SPY), "record", "--pid", str(server.pid), "--subprocesses", "--nonblocking"]
            spy_cmd += ["--format", "raw", "--nolineno", "--rate", str(args.rate), "-o", str(raw_file)]
            spy = subprocess.Popen(spy_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            time.sleep(1.0)
            cpu_before = tree_cpu_seconds(server.pid)
            command = [sys.executable, str(REGISTRY_BENCH), "push", server.host, "--workload", args.workload]
            command += ["--repeat", "1", "--namespace", "bench", "--quiet", "--json", str(bench_json)]
            command += ["--creds", f"{ADMIN_USER}:{password}"]
            subprocess.run(command, check=True, timeout=1800)
            server_cpu = tree_cpu_seconds(server.pid) - cpu_before
            os.kill(spy.pid, signal.SIGINT)
            spy_out = spy.communicate(timeout=120)[0].decode(errors="replace")
        finally:
            server.stop()
        raw = raw_file.read_text() if raw_file.exists() else ""
        if not raw:
            raise SystemExit(f"py-spy wrote nothing: {spy_out[-2000:]}")
        (result,) = json.loads(bench_json.read_text())["results"]
    finally:
        load_end = load_average()
        shutil.rmtree(work, ignore_errors=True)

    summary, _figures = summarize(raw, args.top)
    seconds = result.get("seconds", {}).get("median")
    header = [
        f"py-spy profile of Ferry during `registry_bench.py push --workload {args.workload} --repeat 1` "
        f"({args.label})",
        f"host: {json.dumps(host_facts())}",
        f"ferry: ferry serve {' '.join(ferry_args)}".rstrip(),
        f"py-spy: {' '.join(spy_cmd[1:]).replace(str(raw_file), 'stacks.raw')}",
        f"push: {seconds} s, {result.get('images_per_s')} img/s; "
        f"server CPU (process tree) {server_cpu:.1f} s",
        f"load average: start {load_start}, end {load_end}",
        "percentages: share of all non-idle samples of every Ferry process",
        "",
    ]
    stem.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(header) + summary + "\n"
    stem.with_suffix(".txt").write_text(text)
    with gzip.open(stem.with_suffix(".raw.gz"), "wt") as out:
        out.write(raw)
    print(text)
    log(f"# wrote {stem.with_suffix('.txt')} and {stem.with_suffix('.raw.gz')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
