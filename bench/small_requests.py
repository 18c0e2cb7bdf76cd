"""Small-request rates (wrk) and raw 512 MiB blob PUT / GET: Ferry against distribution 2.8.

Starts Ferry as a user runs it (`ferry serve` with default settings, unless `--ferry-args` says
otherwise; what ran is recorded) and Debian's docker-registry with registry_bench's reference
config, both on free 127.0.0.1 ports, seeds both with the same small image (a 64 KiB layer, a
config and an OCI manifest, tag `v1` in `bench/small`), then runs, interleaved round by round and
alternating which registry goes first:

- `wrk -t2 -c16` for HEAD blob, GET manifest by tag (with the OCI/Docker Accept header) and GET tag
  list; a Lua script sets the method and headers and prints req/s, p50 and p99 as JSON. Ferry's
  requests carry a bearer token fetched once per run from /v2/token (Basic admin, pull scope);
  distribution's reference config has no auth.
- a raw monolithic blob PUT (POST, then PUT ?digest= with a streamed 512 MiB body) and a GET of it
  (aiohttp, one stream, body discarded), MiB/s.

The load average is read before and after every run.

    .venv/bin/python -m bench.small_requests [--rounds 3] [--duration 10] [--label after]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.servers import (
    ADMIN_USER,
    Registry,
    load_average,
    machine_facts,
    start_distribution,
    start_ferry,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REPO = "bench/small"
TAG = "v1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
MiB = 1 << 20
WRK_SCRIPT = """
wrk.method = "{method}"
{headers}
done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local errors = summary.errors
  local bad = errors.connect + errors.read + errors.write + errors.timeout + errors.status
  io.write(string.format(
    'WRKJSON {{"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.3f, "p90_ms": %.3f, '
    .. '"p99_ms": %.3f, "max_ms": %.3f, "errors": %d, "non_2xx_3xx": %d}}\\n',
    summary.requests, secs, summary.requests / secs, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    bad, errors.status))
end
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def git_commit() -> str:
    """The commit of the tree being measured (FERRY_SRC's checkout if set, else this one)."""
    src = os.environ.get("FERRY_SRC")
    where = Path(src) if src else ROOT
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip()
    except OSError:
        return "unknown"


def host_facts() -> dict[str, Any]:
    return machine_facts() | {
        "git_commit": git_commit(),
        "ferry_src": os.environ.get("FERRY_SRC") or "venv install",
    }


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (for CPU time and worker counts)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_memory_mib(pid: int) -> dict[str, float | None]:
    """The largest peak RSS (VmHWM) and the largest RSS now (VmRSS) of any process of the tree:
    the aim is per process (`ferry serve` runs one per core)."""
    figures: dict[str, list[float]] = {"VmHWM": [], "VmRSS": []}
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                field, _, value = line.partition(":")
                if field in figures:
                    figures[field].append(round(int(value.split()[0]) / 1024, 1))
        except (OSError, ValueError, IndexError):
            continue
    return {"peak": max(figures["VmHWM"], default=None), "now": max(figures["VmRSS"], default=None)}


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process tree: every live member's own, plus its waited-for exited
    children's (cutime, cstime), so that `ferry serve`'s worker processes count."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


async def bearer_token(base: str, password: str, scope: str) -> str:
    """A registry token from Ferry's /v2/token: Basic admin credentials, the given scope."""
    basic = base64.b64encode(f"{ADMIN_USER}:{password}".encode()).decode()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/v2/") as response:
            challenge = response.headers.get("WWW-Authenticate", "")
        service = ""
        if 'service="' in challenge:
            service = challenge.split('service="', 1)[1].split('"', 1)[0]
        params = {"service": service, "scope": scope}
        async with session.get(
            f"{base}/v2/token", params=params, headers={"Authorization": f"Basic {basic}"}
        ) as response:
            response.raise_for_status()
            return str((await response.json())["token"])


class Client:
    """Just enough of the distribution API to seed a registry (no auth, or one bearer token)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str | None) -> None:
        self.session = session
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def upload(self, repo: str, digest: str, body: Any, length: int) -> None:
        async with self.session.post(f"{self.base}/v2/{repo}/blobs/uploads/", headers=self.headers) as r:
            if r.status != 202:
                raise RuntimeError(f"POST upload: HTTP {r.status} {(await r.text())[:300]}")
            location = r.headers["Location"]
        if location.startswith("/"):
            location = self.base + location
        sep = "&" if "?" in location else "?"
        headers = self.headers | {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
        async with self.session.put(f"{location}{sep}digest={digest}", data=body, headers=headers) as r:
            if r.status != 201:
                raise RuntimeError(f"PUT upload: HTTP {r.status} {(await r.text())[:300]}")

    async def put_manifest(self, repo: str, tag: str, manifest: bytes) -> None:
        headers = self.headers | {"Content-Type": OCI_MANIFEST}
        async with self.session.put(
            f"{self.base}/v2/{repo}/manifests/{tag}", data=manifest, headers=headers
        ) as r:
            if r.status != 201:
                raise RuntimeError(f"PUT manifest: HTTP {r.status} {(await r.text())[:300]}")


def small_image() -> tuple[bytes, bytes, bytes]:
    """The same layer (64 KiB), config and manifest for every registry and run."""
    layer = hashlib.shake_128(b"ferry-bench-small-layer").digest(64 * 1024)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return layer, config, manifest


async def seed_small(base: str, token: str | None, repo: str = REPO, tag: str = TAG) -> str:
    """Pushes the small image; returns its layer digest (the blob the HEAD runs ask for)."""
    layer, config, manifest = small_image()
    async with aiohttp.ClientSession() as session:
        client = Client(session, base, token)
        for blob in (layer, config):
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            await client.upload(repo, digest, blob, len(blob))
        await client.put_manifest(repo, tag, manifest)
    return "sha256:" + hashlib.sha256(layer).hexdigest()


def ab_head(
    url: str, headers: dict[str, str], duration: int, work: Path, connections: int = 16
) -> dict[str, Any]:
    """HEAD through ApacheBench (`ab -k -i`): wrk 4.1's parser waits for the body a HEAD answer's
    Content-Length announces and so completes no request at all."""
    csv = work / "ab-percentiles.csv"
    command = [
        "ab",
        "-q",
        "-k",
        "-i",
        "-c",
        str(connections),
        "-t",
        str(duration),
        "-n",
        "10000000",
        "-s",
        "10",
    ]
    command += ["-e", str(csv)]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, timeout=duration + 60)
    figures: dict[str, Any] = {"client": "ab -k -i", "non_2xx_3xx": 0}
    for line in out.stdout.splitlines():
        if line.startswith("Complete requests:"):
            figures["requests"] = int(line.split()[-1])
        elif line.startswith("Failed requests:"):
            figures["errors"] = int(line.split()[-1])
        elif line.startswith("Non-2xx responses:"):
            figures["non_2xx_3xx"] = int(line.split()[-1])
        elif line.startswith("Time taken for tests:"):
            figures["seconds"] = float(line.split()[-2])
        elif line.startswith("Requests per second:"):
            figures["rps"] = float(line.split()[3])
    percentiles = {}
    for line in csv.read_text().splitlines()[1:]:
        pct, ms = line.split(",")
        percentiles[int(float(pct))] = float(ms)
    figures |= {"p50_ms": percentiles[50], "p90_ms": percentiles[90], "p99_ms": percentiles[99]}
    if "rps" not in figures:
        raise RuntimeError(f"ab printed no result: {out.stdout[-1000:]} {out.stderr[-1000:]}")
    return figures


def wrk_run(
    url: str, method: str, headers: dict[str, str], duration: int, work: Path, connections: int = 16
) -> dict[str, Any]:
    if method == "HEAD":
        return ab_head(url, headers, duration, work, connections)
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script = work / f"wrk-{method.lower()}.lua"
    script.write_text(WRK_SCRIPT.format(method=method, headers=lines))
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            result: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
            return result
    raise RuntimeError(f"wrk printed no result: {out.stdout[-1000:]} {out.stderr[-1000:]}")


async def _stream(first: bytes, chunk: bytes, count: int) -> AsyncIterator[bytes]:
    yield first
    for _ in range(count - 1):
        yield chunk


def big_blob(salt: str, mib: int) -> tuple[bytes, bytes, str]:
    """A `mib` MiB blob as (first MiB, the repeated MiB, digest): new bytes per salt, no RAM cost."""
    first = hashlib.shake_128(f"big-first-{salt}".encode()).digest(MiB)
    chunk = hashlib.shake_128(b"big-rest").digest(MiB)
    hasher = hashlib.sha256(first)
    for _ in range(mib - 1):
        hasher.update(chunk)
    return first, chunk, "sha256:" + hasher.hexdigest()


async def raw_put_get(base: str, token: str | None, salt: str, mib: int) -> dict[str, float]:
    first, chunk, digest = big_blob(salt, mib)
    timeout = aiohttp.ClientTimeout(total=1800)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = Client(session, base, token)
        started = time.perf_counter()
        await client.upload(REPO, digest, _stream(first, chunk, mib), mib * MiB)
        put_s = time.perf_counter() - started
        started = time.perf_counter()
        got = 0
        async with session.get(f"{base}/v2/{REPO}/blobs/{digest}", headers=client.headers) as response:
            response.raise_for_status()
            async for data in response.content.iter_chunked(4 * MiB):
                got += len(data)
        get_s = time.perf_counter() - started
    if got != mib * MiB:
        raise RuntimeError(f"GET returned {got} bytes, expected {mib * MiB}")
    return {
        "put_s": round(put_s, 3),
        "get_s": round(get_s, 3),
        "put_mib_s": round(mib / put_s, 1),
        "get_mib_s": round(mib / get_s, 1),
    }


def median(values: list[float]) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


ENDPOINTS = {
    "head_blob": ("HEAD", "blobs/{digest}", {}),
    "get_manifest": ("GET", "manifests/" + TAG, {"Accept": ACCEPT}),
    "get_tags": ("GET", "tags/list", {}),
}


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per registry and endpoint: medians over the rounds of req/s, p50 and p99."""
    out: dict[str, Any] = {}
    for sample in samples:
        key = (sample["registry"], sample["endpoint"])
        out.setdefault(key, []).append(sample)
    result: dict[str, Any] = {}
    for (registry, endpoint), rows in out.items():
        fields = ("rps", "p50_ms", "p99_ms") if endpoint in ENDPOINTS else ("put_mib_s", "get_mib_s")
        result.setdefault(endpoint, {})[registry] = {f: median([r[f] for r in rows]) for f in fields}
    return result


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| workload | Ferry | distribution | ratio | aim met? |",
        "|---|---:|---:|---:|---|",
    ]
    names = {"head_blob": "HEAD blob", "get_manifest": "GET manifest", "get_tags": "GET tag list"}
    for endpoint, label in names.items():
        row = summary.get(endpoint)
        if not row or "ferry" not in row or "distribution" not in row:
            continue
        f, d = row["ferry"], row["distribution"]
        r = f["rps"] / d["rps"] if d["rps"] else 0
        met = r >= 2.0 and f["p99_ms"] <= d["p99_ms"]
        lines.append(
            f"| {label}, 16 conn, req/s (p50 / p99 ms) "
            f"| {f['rps']:.0f} ({f['p50_ms']:.1f} / {f['p99_ms']:.1f}) "
            f"| {d['rps']:.0f} ({d['p50_ms']:.1f} / {d['p99_ms']:.1f}) | {r:.2f} | "
            f"{'yes' if met else 'no'} (≥ 2x, p99 ≤) |"
        )
    raw = summary.get("raw_blob")
    if raw and "ferry" in raw and "distribution" in raw:
        for op in ("put", "get"):
            f, d = raw["ferry"][f"{op}_mib_s"], raw["distribution"][f"{op}_mib_s"]
            lines.append(
                f"| raw blob {op.upper()}, MiB/s | {f:.0f} | {d:.0f} | {f / d:.2f} "
                f"| {'yes' if f >= d else 'no'} (≥ 1x) |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median; default 3)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--big-mib", type=int, default=512, help="raw blob size; 0 skips it (default 512)")
    parser.add_argument("--ferry-args", default="", help="extra `ferry serve` arguments (recorded)")
    parser.add_argument("--label", default="", help="results/small_requests_<label>.json")
    parser.add_argument("--only-ferry", action="store_true", help="no distribution")
    args = parser.parse_args(argv)
    name = f"small_requests_{args.label}.json" if args.label else "small_requests.json"
    out_path = RESULTS / name

    work = Path(tempfile.mkdtemp(prefix="ferry-small-"))
    password = secrets.token_urlsafe(12)
    servers: dict[str, Registry] = {}
    samples: list[dict[str, Any]] = []
    load_start = load_average()
    ferry_args = args.ferry_args.split()
    processes: dict[str, int] = {}
    # Per registry: peak RSS after the first round's small requests (16 connections), peak after
    # everything (the raw 512 MiB PUT and GET too), and RSS after the run and a short rest.
    memory: dict[str, dict[str, float | None]] = {}
    try:
        ferry = start_ferry(work / "ferry", password, organizations=("bench",), args=ferry_args)
        servers["ferry"] = ferry
        if not args.only_ferry:
            servers["distribution"] = start_distribution(work / "distribution")
        time.sleep(1.0)  # worker processes of `ferry serve` start after the first answers
        processes = {n: len(process_tree(s.pid)) for n, s in servers.items()}
        log(f"# servers {[(n, s.url, s.pid) for n, s in servers.items()]}; processes {processes}")
        scope = f"repository:{REPO}:pull,push"
        tokens = {"ferry": asyncio.run(bearer_token(ferry.url, password, scope)), "distribution": None}
        digests = {n: asyncio.run(seed_small(s.url, tokens[n])) for n, s in servers.items()}
        for round_no in range(args.rounds):
            order = list(servers) if round_no % 2 == 0 else list(reversed(servers))
            for endpoint, (method, path, headers) in ENDPOINTS.items():
                for registry in order:
                    server = servers[registry]
                    token = None
                    if registry == "ferry":
                        token = asyncio.run(bearer_token(server.url, password, f"repository:{REPO}:pull"))
                    h = dict(headers) | ({"Authorization": f"Bearer {token}"} if token else {})
                    url = f"{server.url}/v2/{REPO}/{path.format(digest=digests[registry])}"
                    la_before, cpu_before = load_average(), tree_cpu_seconds(server.pid)
                    result = wrk_run(url, method, h, args.duration, work, args.connections)
                    result |= {
                        "registry": registry,
                        "endpoint": endpoint,
                        "round": round_no,
                        "load_before": la_before,
                        "load_after": load_average(),
                        "server_cpu_s": round(tree_cpu_seconds(server.pid) - cpu_before, 2),
                    }
                    log(
                        f"# round {round_no} {endpoint} {registry}: {result['rps']:.0f} req/s p50 "
                        f"{result['p50_ms']:.1f} p99 {result['p99_ms']:.1f} ms, load {result['load_after']}"
                    )
                    samples.append(result)
            if round_no == 0:
                for registry, server in servers.items():
                    memory[registry] = {"small_requests_peak": tree_memory_mib(server.pid)["peak"]}
            if args.big_mib:
                for registry in order:
                    server = servers[registry]
                    token = None
                    if registry == "ferry":
                        token = asyncio.run(
                            bearer_token(server.url, password, f"repository:{REPO}:pull,push")
                        )
                    la_before = load_average()
                    raw = asyncio.run(raw_put_get(server.url, token, f"{registry}-{round_no}", args.big_mib))
                    raw |= {
                        "registry": registry,
                        "endpoint": "raw_blob",
                        "round": round_no,
                        "mib": args.big_mib,
                    }
                    raw |= {"load_before": la_before, "load_after": load_average()}
                    log(
                        f"# round {round_no} raw {registry}: "
                        f"PUT {raw['put_mib_s']} GET {raw['get_mib_s']} MiB/s"
                    )
                    samples.append(raw)
        time.sleep(3.0)  # let a finished burst's buffers go back
        for registry, server in servers.items():
            figures = tree_memory_mib(server.pid)
            memory.setdefault(registry, {}).update(peak=figures["peak"], after_run=figures["now"])
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    summary = summarize(samples)
    record = {
        "benchmark": "small_requests",
        "label": args.label,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": host_facts(),
        "ferry_command": " ".join(["ferry", "serve", *ferry_args]),
        "server_processes": processes,
        "server_memory_mib": memory,
        "wrk": f"wrk -t2 -c{args.connections} -d{args.duration}s",
        "rounds": args.rounds,
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "summary": summary,
        "samples": samples,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(record, indent=1) + "\n")
    print(table(summary))
    print(
        f"\nload average: start {load_start}, end {record['load_average_end']}; "
        f"ferry: {record['ferry_command']}"
    )
    log(f"# wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
