"""Peak server memory while a 1 GiB layer is pushed to Ferry, monolithically and in chunks.

Starts a Ferry server on a free loopback port with a temporary data directory (a fresh server per
mode, so each peak is its own), streams a deterministic 1 GiB blob to it without ever holding it
in memory on either side, samples the server's RSS from /proc/<pid>/status, then pulls the blob
back and checks its digest. Prints the peak RSS, throughput and PASS/FAIL against the bound, and
writes bench/results/memory_push.json.

    .venv/bin/python -m bench.memory_push [--size-mib 1024] [--chunk-mib 64] [--bound-mib 150]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.servers import ADMIN_USER, load_average, machine_facts, start_ferry
from tests.support.server import FerryServer

MiB = 1024 * 1024
BLOCK = MiB
REPOSITORY = "bench/mem"
RESULTS = Path(__file__).resolve().parent / "results" / "memory_push.json"
SAMPLE_INTERVAL = 0.02


class Blob:
    """A deterministic blob of `size` bytes, produced 1 MiB at a time and never held whole."""

    def __init__(self, size: int, seed: int = 1) -> None:
        self.size = size
        self._block = random.Random(seed).randbytes(BLOCK)
        self.digest = self._digest()

    def blocks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes [start, end) in pieces of at most 1 MiB; start must be block-aligned."""
        end = self.size if end is None else end
        assert start % BLOCK == 0
        for offset in range(start, end, BLOCK):
            index = offset // BLOCK
            piece = index.to_bytes(8, "big") + self._block[8:]
            yield piece[: min(BLOCK, end - offset)]

    async def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        for piece in self.blocks(start, end):
            yield piece

    def _digest(self) -> str:
        hasher = hashlib.sha256()
        for piece in self.blocks():
            hasher.update(piece)
        return "sha256:" + hasher.hexdigest()


def _status_kib(pid: int, keys: tuple[str, ...]) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in keys:
                    values[key] = int(rest.split()[0])
    except (OSError, ValueError):
        pass
    return values


def _descendants(pid: int) -> list[int]:
    """pid and its children, grandchildren... (Ferry may run worker processes)."""
    found, queue = [pid], [pid]
    for _ in range(64):  # bounded: process trees here are shallow
        if not queue:
            break
        parent = queue.pop()
        try:
            for task in Path(f"/proc/{parent}/task").iterdir():
                children = (task / "children").read_text().split()
                for child in map(int, children):
                    if child not in found:
                        found.append(child)
                        queue.append(child)
        except OSError:
            continue
    return found


def _reset_hwm(pid: int) -> bool:
    """Resets the kernel's peak-RSS counter (VmHWM) so it covers only what follows."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class RssSampler:
    """Samples VmRSS of the server's processes every 20 ms in a thread: the largest one's, as
    the bound is per process (`ferry serve` runs one per core; the upload lands in one of them,
    and a sum would count the pages the workers share with their parent several times)."""

    pid: int
    peak_rss_kib: int = 0
    samples: int = 0
    baseline_kib: int = 0
    lifetime_hwm_kib: int = 0
    hwm_reset: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def current_kib(self) -> int:
        return max(_status_kib(p, ("VmRSS",)).get("VmRSS", 0) for p in _descendants(self.pid))

    def __enter__(self) -> RssSampler:
        self.lifetime_hwm_kib = self.hwm_kib()
        self.hwm_reset = all([_reset_hwm(p) for p in _descendants(self.pid)])
        self.baseline_kib = self.current_kib()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self.peak_rss_kib = max(self.peak_rss_kib, self.current_kib())
            self.samples += 1

    def hwm_kib(self) -> int:
        """VmHWM: the kernel's own peak RSS (the largest process's) since start or the reset."""
        return max(_status_kib(p, ("VmHWM",)).get("VmHWM", 0) for p in _descendants(self.pid))


async def _token(session: aiohttp.ClientSession, base: str, password: str) -> str:
    params = {"scope": f"repository:{REPOSITORY}:pull,push", "service": "ferry"}
    basic = base64.b64encode(f"{ADMIN_USER}:{password}".encode()).decode()
    async with session.get(
        f"{base}/v2/token", params=params, headers={"Authorization": f"Basic {basic}"}
    ) as response:
        response.raise_for_status()
        body = await response.json()
    token: str = body["token"]
    return token


def _check(response: aiohttp.ClientResponse, status: int, what: str) -> None:
    if response.status != status:
        raise RuntimeError(f"{what}: HTTP {response.status}, expected {status}")


async def push_monolithic(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], blob: Blob
) -> None:
    url = f"{base}/v2/{REPOSITORY}/blobs/uploads/"
    put_headers = headers | {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
    async with session.post(
        url, params={"digest": blob.digest}, data=blob.stream(), headers=put_headers
    ) as r:
        _check(r, 201, "monolithic POST")


async def push_chunked(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], blob: Blob, chunk: int
) -> int:
    async with session.post(f"{base}/v2/{REPOSITORY}/blobs/uploads/", headers=headers) as r:
        _check(r, 202, "start upload")
        location = r.headers["Location"]
    url = location if location.startswith("http") else base + location
    patches = 0
    for start in range(0, blob.size, chunk):
        end = min(start + chunk, blob.size)
        patch_headers = headers | {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(end - start),
            "Content-Range": f"{start}-{end - 1}",
        }
        async with session.patch(url, data=blob.stream(start, end), headers=patch_headers) as r:
            _check(r, 202, f"PATCH {start}-{end - 1}")
            location = r.headers.get("Location", location)
            url = location if location.startswith("http") else base + location
        patches += 1
    sep = "&" if "?" in url else "?"
    async with session.put(f"{url}{sep}digest={blob.digest}", headers=headers | {"Content-Length": "0"}) as r:
        _check(r, 201, "finishing PUT")
    return patches


async def pull_and_verify(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], blob: Blob
) -> float:
    hasher, size = hashlib.sha256(), 0
    t0 = time.perf_counter()
    async with session.get(f"{base}/v2/{REPOSITORY}/blobs/{blob.digest}", headers=headers) as r:
        _check(r, 200, "GET blob")
        async for piece in r.content.iter_any():
            hasher.update(piece)
            size += len(piece)
    seconds = time.perf_counter() - t0
    if size != blob.size or "sha256:" + hasher.hexdigest() != blob.digest:
        raise RuntimeError("pulled blob does not match what was pushed")
    return seconds


async def run_mode(mode: str, blob: Blob, chunk: int, bound_mib: float, keep: bool) -> dict[str, Any]:
    password = secrets.token_urlsafe(12)
    data = Path(tempfile.mkdtemp(prefix=f"ferry-mem-{mode}-"))
    server: FerryServer | None = None
    try:
        server = start_ferry(data, password)
        base = server.url
        timeout = aiohttp.ClientTimeout(total=1800)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            headers = {"Authorization": f"Bearer {await _token(session, base, password)}"}
            load_before = load_average()
            with RssSampler(server.pid) as push:
                t0 = time.perf_counter()
                patches = 0
                if mode == "monolithic":
                    await push_monolithic(session, base, headers, blob)
                else:
                    patches = await push_chunked(session, base, headers, blob, chunk)
                push_seconds = time.perf_counter() - t0
            push_hwm = push.hwm_kib() if push.hwm_reset else 0
            with RssSampler(server.pid) as pull:
                pull_seconds = await pull_and_verify(session, base, headers, blob)
            pull_hwm = pull.hwm_kib() if pull.hwm_reset else 0
        # VmHWM only counts when it could be reset at the start of the phase; otherwise it would
        # include start-up and the token request (argon2id allocates 64 MiB per password check).
        push_peak = max(push.peak_rss_kib, push_hwm)
        pull_peak = max(pull.peak_rss_kib, pull_hwm)
        result: dict[str, Any] = {
            "mode": mode,
            "bytes": blob.size,
            "digest": blob.digest,
            "patches": patches,
            "chunk_bytes": chunk if mode == "chunked" else None,
            "push_seconds": round(push_seconds, 3),
            "push_mib_per_s": round(blob.size / MiB / push_seconds, 1),
            "pull_seconds": round(pull_seconds, 3),
            "pull_mib_per_s": round(blob.size / MiB / pull_seconds, 1),
            "rss_before_push_mib": round(push.baseline_kib / 1024, 1),
            "peak_rss_mib": round(push_peak / 1024, 1),
            "peak_rss_push_sampled_mib": round(push.peak_rss_kib / 1024, 1),
            "peak_rss_push_vm_hwm_mib": round(push_hwm / 1024, 1),
            "peak_rss_pull_mib": round(pull_peak / 1024, 1),
            "vm_hwm_reset_per_phase": push.hwm_reset and pull.hwm_reset,
            "vm_hwm_since_start_before_push_mib": round(push.lifetime_hwm_kib / 1024, 1),
            "samples": push.samples + pull.samples,
            "bound_mib": bound_mib,
            "pass": push_peak / 1024 < bound_mib and pull_peak / 1024 < bound_mib,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "server_pid": server.pid,
        }
        return result
    finally:
        if server is not None:
            server.stop()
        if keep:
            print(f"  kept data dir {data}", file=sys.stderr)
        else:
            shutil.rmtree(data, ignore_errors=True)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    size = args.size_mib * MiB
    chunk = args.chunk_mib * MiB
    print(f"generating the digest of a deterministic {args.size_mib} MiB blob ...", file=sys.stderr)
    blob = Blob(size)
    results = []
    for mode in args.modes.split(","):
        print(f"pushing {args.size_mib} MiB ({mode}) ...", file=sys.stderr)
        result = await run_mode(mode, blob, chunk, args.bound_mib, args.keep)
        results.append(result)
        verdict = "PASS" if result["pass"] else "FAIL"
        extra = f" ({result['patches']} x {args.chunk_mib} MiB PATCH)" if mode == "chunked" else ""
        print(
            f"{mode:10s}{extra}: peak RSS {result['peak_rss_mib']:.1f} MiB "
            f"(before push {result['rss_before_push_mib']:.1f}, pull peak {result['peak_rss_pull_mib']:.1f}, "
            f"server VmHWM since start before push {result['vm_hwm_since_start_before_push_mib']:.1f}), "
            f"push {result['push_mib_per_s']:.1f} MiB/s, pull {result['pull_mib_per_s']:.1f} MiB/s "
            f"-> {verdict} (bound {args.bound_mib:.0f} MiB)"
        )
    record = {
        "benchmark": "memory_push",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "size_mib": args.size_mib,
        "results": results,
        "pass": all(r["pass"] for r in results),
    }
    return record


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="blob size (default 1024)")
    parser.add_argument("--chunk-mib", type=int, default=64, help="PATCH size for chunked mode (default 64)")
    parser.add_argument("--bound-mib", type=float, default=150.0, help="peak RSS bound (default 150)")
    parser.add_argument("--modes", default="monolithic,chunked", help="monolithic,chunked (default both)")
    parser.add_argument("--json", default=str(RESULTS), help="results file (default bench/results/...)")
    parser.add_argument("--keep", action="store_true", help="keep the server's data directories")
    args = parser.parse_args()
    record = asyncio.run(main_async(args))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0 if record["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
