"""Push-to-visible latency of Ferry's region sync, side by side with a reference.

Starts two Ferry regions with `ferry dev`, creates the organization in both and, for every workload,
a source repository with an automatic sync rule (syncAuto) to the other region; then runs
`registry_bench.py sync` against them. In the same run it starts two Debian `docker-registry`
(distribution 2.8) instances and runs the same measurement with `--emulate-replication` (the harness
runs `skopeo copy SRC→DST` the moment each push completes), plus `registry_bench.py copy` of the
`big` workload between them (a plain registry-to-registry skopeo copy).

    .venv/bin/python -m bench.sync_latency [--repeat 3] [--workloads big,shared,many]

Writes every raw result to bench/results/sync_latency.json and prints a markdown table. Every
process it starts listens on 127.0.0.1 only and is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from bench.servers import REGISTRY_BENCH, load_average, start_distribution
from tests.support.server import free_port_run, stop_process, wait_http

ROOT = Path(__file__).resolve().parent.parent
FERRY = ROOT / ".venv" / "bin" / "ferry"
RESULTS = ROOT / "bench" / "results" / "sync_latency.json"
NAMESPACE = "bench"
START_TIMEOUT = 90.0
AIMS = {
    "many": "small image visible in B within 0.5 s of its push (median)",
    "big": "within 1.2x of a plain registry-to-registry skopeo copy",
    "shared": "second image at most 1/4 of the first image's time",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ferry_src_env() -> dict[str, str]:
    """PYTHONPATH for FERRY_SRC=<dir containing ferry/> (another source tree, e.g. a baseline)."""
    src = os.environ.get("FERRY_SRC")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))} if src else {}


@contextmanager
def ferry_dev(root: Path, env: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """`ferry dev` (two regions) in the foreground as a child, with `env` added; its dev.json."""
    data = root / "ferry"
    base = free_port_run(2)
    dev_log = root / "ferry-dev.log"
    with dev_log.open("wb") as out:
        process = subprocess.Popen(
            [str(FERRY), "dev", "--data", str(data), "--base-port", str(base)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ | {"HOME": str(root)} | ferry_src_env() | (env or {}),
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (data / "dev.json").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ferry dev did not start: {dev_log.read_text()[-2000:]}")
            time.sleep(0.2)
        time.sleep(0.2)  # the file is written once; let the writer finish
        dev: dict[str, Any] = json.loads((data / "dev.json").read_text())
        for region in dev["regions"]:
            wait_http(
                region["endpoint"] + "/readyz",
                process=process,
                log=dev_log,
                timeout=START_TIMEOUT,
                name="ferry dev",
            )
        dev["pid"] = process.pid
        yield dev
    finally:
        stop_process(process, grace=30)


@contextmanager
def distribution_pair(root: Path) -> Iterator[list[str]]:
    """Two Debian docker-registry instances configured by `registry_bench.py reference-config`."""
    with ExitStack() as stack:
        endpoints = []
        for name in ("ref-src", "ref-dst"):
            server = start_distribution(root / name)
            stack.callback(server.stop)
            endpoints.append(server.url)
        yield endpoints


def dev_client(dev: dict[str, Any], region: int) -> Any:
    """The SWR SDK signed with `ferry dev`'s admin AK/SK, for region number `region` of dev.json."""
    from tests.support.swr import endpoint_client

    admin = dev["admin"]
    return endpoint_client(dev["regions"][region]["endpoint"], admin["ak"], admin["sk"], admin["project_id"])


def create_namespaces(dev: dict[str, Any], namespace: str = NAMESPACE) -> None:
    """The organization in the source and the target region."""
    from huaweicloudsdkswr.v2 import CreateNamespaceRequest, CreateNamespaceRequestBody

    for region in (0, 1):
        dev_client(dev, region).create_namespace(
            CreateNamespaceRequest(body=CreateNamespaceRequestBody(namespace=namespace))
        )


def create_sync_rules(dev: dict[str, Any], repos: list[str], create_repos: bool = True) -> None:
    """In the source, each repository (unless it exists) and a rule syncAuto → the target."""
    from huaweicloudsdkswr.v2 import (
        CreateImageSyncRepoRequest,
        CreateImageSyncRepoRequestBody,
        CreateRepoRequest,
        CreateRepoRequestBody,
    )

    target = dev["regions"][1]
    swr = dev_client(dev, 0)
    for repo in repos:
        if create_repos:
            swr.create_repo(
                CreateRepoRequest(
                    namespace=NAMESPACE,
                    body=CreateRepoRequestBody(repository=repo, is_public=False, category="other"),
                )
            )
        swr.create_image_sync_repo(
            CreateImageSyncRepoRequest(
                namespace=NAMESPACE,
                repository=repo,
                body=CreateImageSyncRepoRequestBody(
                    remote_region_id=target["id"], remote_namespace=NAMESPACE, sync_auto=True, override=False
                ),
            )
        )


def setup_ferry(dev: dict[str, Any], repos: list[str]) -> None:
    """The organization in both regions; in the source, each repository and a rule syncAuto → target."""
    create_namespaces(dev)
    create_sync_rules(dev, repos)


def registry_bench(arguments: list[str], json_file: Path, timeout: float) -> dict[str, Any]:
    """One registry_bench.py command; its JSON document plus our own load averages and exit code."""
    command = [sys.executable, str(REGISTRY_BENCH), *arguments, "--json", str(json_file)]
    shown = [a if not a.startswith(("admin:",)) else "admin:***" for a in command]
    log("$ " + " ".join(shown[1:]))
    before = load_average()
    finished = subprocess.run(command, timeout=timeout, stdout=subprocess.PIPE, text=True)
    sys.stderr.write(finished.stdout)
    document: dict[str, Any] = json.loads(json_file.read_text()) if json_file.exists() else {}
    document["exit_code"] = finished.returncode
    document["load_before"], document["load_after"] = before, load_average()
    return document


def result_of(document: dict[str, Any]) -> dict[str, Any]:
    results = document.get("results") or [{}]
    return dict(results[0])


def sync_figures(result: dict[str, Any], workload: str) -> dict[str, float | None]:
    """The medians the table shows, from a `registry_bench.py sync` result."""

    def median_of(key: str) -> float | None:
        entry = result.get(key, {}).get("visible_after_push_seconds")
        return float(entry["median"]) if entry else None

    if workload == "shared":
        first, second = median_of("first"), median_of("second")
        return {
            "latency": first,
            "first": first,
            "second": second,
            "second_over_first": second / first if first and second is not None else None,
        }
    figures: dict[str, float | None] = {"latency": median_of("all")}
    if workload == "many":
        rounds = result.get("rounds", [])
        groups = [g for r in rounds for g in r["groups"] if g["latency_median_s"] is not None]
        figures["worst"] = figures["latency"]
        figures["latency"] = statistics.median(g["latency_median_s"] for g in groups) if groups else None
        figures["p95"] = statistics.median(g["latency_p95_s"] for g in groups) if groups else None
    return figures


def fmt(value: float | None, digits: int = 3, unit: str = " s") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| workload | Ferry push→visible (median) | reference: skopeo copy on push (median) "
        "| Ferry / reference |",
        "|---|---|---|---|",
    ]
    for workload, row in summary["workloads"].items():
        ferry, reference = row["ferry"], row.get("reference", {})
        label = workload
        if workload == "many":
            label = "many (per-image median, 64 KiB images)"
        if workload == "shared":
            label = "shared (first image)"
        lines.append(
            f"| {label} | {fmt(ferry.get('latency'))} | {fmt(reference.get('latency'))} "
            f"| {fmt(ratio(ferry.get('latency'), reference.get('latency')), 2, '')} |"
        )
        if workload == "shared":
            lines.append(
                f"| shared (second image) | {fmt(ferry.get('second'))} | {fmt(reference.get('second'))} "
                f"| {fmt(ratio(ferry.get('second'), reference.get('second')), 2, '')} |"
            )
    lines.append("")
    lines.append("| aim | measured | met |")
    lines.append("|---|---|---|")
    for aim in summary["aims"]:
        lines.append(f"| {aim['aim']} | {aim['measured']} | {'yes' if aim['met'] else 'NO'} |")
    return "\n".join(lines)


def aims(summary: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    rows = summary["workloads"]
    if "many" in rows and rows["many"]["ferry"].get("latency") is not None:
        value = rows["many"]["ferry"]["latency"]
        found.append({"aim": AIMS["many"], "measured": fmt(value), "met": value <= 0.5})
    copy = summary.get("copy_big_median_s")
    if "big" in rows and rows["big"]["ferry"].get("latency") is not None and copy:
        value = rows["big"]["ferry"]["latency"] / copy
        measured = f"{fmt(rows['big']['ferry']['latency'])} vs copy {fmt(copy)} = {value:.2f}x"
        found.append({"aim": AIMS["big"], "measured": measured, "met": value <= 1.2})
    if "shared" in rows and rows["shared"]["ferry"].get("second_over_first") is not None:
        value = rows["shared"]["ferry"]["second_over_first"]
        found.append({"aim": AIMS["shared"], "measured": f"second/first = {value:.3f}", "met": value <= 0.25})
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workloads", default="big,shared,many")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--interval", default="0.02", help="poll interval of the harness (s)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--no-reference", action="store_true", help="measure Ferry only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    common = ["--repeat", str(args.repeat), "--interval", args.interval, "--timeout", str(args.timeout)]
    limit = args.timeout * args.repeat * 3 + 600
    summary: dict[str, Any] = {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_start": load_average(),
        "workloads": {},
        "raw": {},
    }

    with tempfile.TemporaryDirectory(prefix="ferry-sync-bench-") as scratch:
        root = Path(scratch)
        with ferry_dev(root) as dev, distribution_pair(root) as reference:
            setup_ferry(dev, [f"sync-{w}" for w in workloads])
            source, target = (r["endpoint"] for r in dev["regions"][:2])
            creds = f"{dev['admin']['user']}:{dev['admin']['password']}"
            for workload in workloads:
                repo = f"{NAMESPACE}/sync-{workload}"
                ferry_doc = registry_bench(
                    [
                        "sync",
                        source,
                        target,
                        "--dst-repo",
                        repo,
                        "--workload",
                        workload,
                        "--src-creds",
                        creds,
                        "--dst-creds",
                        creds,
                        *common,
                    ],
                    root / f"ferry-{workload}.json",
                    limit,
                )
                row: dict[str, Any] = {"ferry": sync_figures(result_of(ferry_doc), workload)}
                summary["raw"][f"ferry_sync_{workload}"] = ferry_doc
                if not args.no_reference:
                    reference_doc = registry_bench(
                        [
                            "sync",
                            reference[0],
                            reference[1],
                            "--dst-repo",
                            f"{NAMESPACE}/ref-{workload}",
                            "--workload",
                            workload,
                            "--emulate-replication",
                            *common,
                        ],
                        root / f"reference-{workload}.json",
                        limit,
                    )
                    row["reference"] = sync_figures(result_of(reference_doc), workload)
                    summary["raw"][f"reference_sync_{workload}"] = reference_doc
                summary["workloads"][workload] = row
            if "big" in workloads and not args.no_reference:
                copy_doc = registry_bench(
                    ["copy", reference[0], reference[1], "--workload", "big", "--repeat", str(args.repeat)],
                    root / "reference-copy-big.json",
                    limit,
                )
                summary["raw"]["reference_copy_big"] = copy_doc
                with suppress(KeyError, TypeError):
                    summary["copy_big_median_s"] = result_of(copy_doc)["seconds"]["median"]

    summary["load_end"] = load_average()
    summary["aims"] = aims(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    print(table(summary))
    print(f"\nload average: start {summary['load_start']}, end {summary['load_end']} ({os.cpu_count()} CPUs)")
    print(f"results: {args.out}")
    failed = [k for k, v in summary["raw"].items() if v.get("exit_code")]
    if failed:
        print(f"commands that failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
