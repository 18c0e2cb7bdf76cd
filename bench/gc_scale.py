"""GC time and peak memory on a store of 100k blobs and 10k manifests, half of them garbage.

The store is generated straight into the database and the filesystem store (tiny blobs, bulk
inserts; no HTTP): `--repos` repositories of `--manifests` manifests each, every manifest with
`--blobs` blobs of its own; every other manifest is untagged, so with the default
FERRY_GC_KEEP_UNTAGGED=false it and its blobs are garbage. Everything is dated two hours back,
past the grace period. The collection then runs in a fresh child process (what `ferry gc` runs,
without printing each item), whose peak RSS comes from getrusage(RUSAGE_CHILDREN).

    .venv/bin/python -m bench.gc_scale            # -> bench/results/gc_scale.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

from ferry.images.digests import sha256_digest as digest
from ferry.metadata.db import Database
from ferry.metadata.migrate import upgrade
from ferry.metadata.models import (
    Account,
    Blob,
    Manifest,
    ManifestReference,
    Organization,
    Repository,
    RepositoryBlob,
    Tag,
    utcnow,
)

RESULTS = Path(__file__).parent / "results" / "gc_scale.json"


def write_blob(root: Path, blob_digest: str, data: bytes) -> None:
    hexpart = blob_digest.split(":", 1)[1]
    path = root / "storage" / "blobs" / "sha256" / hexpart[:2] / hexpart
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def generate(root: Path, repos: int, manifests: int, blobs: int) -> dict[str, int]:
    db = Database(f"sqlite+aiosqlite:///{root / 'ferry.db'}")
    await upgrade(db)
    old = utcnow() - timedelta(hours=2)
    garbage_blobs = garbage_bytes = 0
    async with db.write() as session:
        account = Account(name="bench")
        session.add(account)
        await session.flush()
        org = Organization(account_id=account.id, name="bench")
        session.add(org)
        await session.flush()
        org_id = org.id
    for r in range(repos):
        async with db.write() as session:
            repository = Repository(organization_id=org_id, name=f"repo{r}")
            session.add(repository)
            await session.flush()
            rows: dict[str, list[dict[str, object]]] = {
                "blob": [],
                "link": [],
                "manifest": [],
                "ref": [],
                "tag": [],
            }
            for m in range(manifests):
                manifest_id = (r * manifests + m) + 1
                garbage = m % 2 == 1
                layer_digests = []
                for b in range(blobs):
                    data = f"blob {r}/{m}/{b}".encode()
                    blob_digest = digest(data)
                    write_blob(root, blob_digest, data)
                    layer_digests.append(blob_digest)
                    rows["blob"].append({"digest": blob_digest, "size": len(data), "created_at": old})
                    rows["link"].append({"repository_id": repository.id, "digest": blob_digest})
                    rows["ref"].append(
                        {"manifest_id": manifest_id, "digest": blob_digest, "is_manifest": False}
                    )
                    if garbage:
                        garbage_blobs, garbage_bytes = garbage_blobs + 1, garbage_bytes + len(data)
                payload = json.dumps({"schemaVersion": 2, "layers": layer_digests}).encode()
                manifest_digest = digest(payload)
                rows["manifest"].append(
                    {
                        "id": manifest_id,
                        "repository_id": repository.id,
                        "digest": manifest_digest,
                        "media_type": "application/vnd.oci.image.manifest.v1+json",
                        "size": len(payload),
                        "content_size": len(payload),
                        "payload": payload,
                        "created_at": old,
                    }
                )
                if not garbage:
                    rows["tag"].append(
                        {"repository_id": repository.id, "name": f"t{m}", "digest": manifest_digest}
                    )
            for model, key in (
                (Blob, "blob"),
                (RepositoryBlob, "link"),
                (Manifest, "manifest"),
                (ManifestReference, "ref"),
                (Tag, "tag"),
            ):
                await session.execute(insert(model), rows[key])
    await db.close()
    return {"garbage_blobs": garbage_blobs, "garbage_bytes": garbage_bytes}


async def collect(root: Path) -> dict[str, object]:
    from ferry.images.gc import GarbageCollector, GcPolicy
    from ferry.storage import FilesystemBlobStore

    db = Database(f"sqlite+aiosqlite:///{root / 'ferry.db'}")
    collector = GarbageCollector(db, FilesystemBlobStore(root / "storage"), GcPolicy())
    started = time.perf_counter()
    report = await collector.run()
    seconds = time.perf_counter() - started
    await db.close()
    return {"seconds": round(seconds, 2), "counts": report.counts, "bytes": report.bytes}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--manifests", type=int, default=100, help="per repository")
    parser.add_argument("--blobs", type=int, default=10, help="per manifest")
    parser.add_argument("--collect", type=Path, help=argparse.SUPPRESS)  # the child's mode
    args = parser.parse_args()
    if args.collect:
        print(json.dumps(asyncio.run(collect(args.collect))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        expected = asyncio.run(generate(root, args.repos, args.manifests, args.blobs))
        generated = time.perf_counter() - started
        child = subprocess.run(
            [sys.executable, "-m", "bench.gc_scale", "--collect", str(root)],
            capture_output=True,
            text=True,
            check=True,
        )
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        result = json.loads(child.stdout.splitlines()[-1])
    total_blobs = args.repos * args.manifests * args.blobs
    summary = {
        "blobs": total_blobs,
        "manifests": args.repos * args.manifests,
        "repositories": args.repos,
        "generate_seconds": round(generated, 1),
        "gc_seconds": result["seconds"],
        "gc_peak_rss_mib": round(peak_kib / 1024, 1),
        "freed": {"counts": result["counts"], "bytes": result["bytes"]},
        "expected_garbage_blobs": expected["garbage_blobs"],
        "load_average": os.getloadavg(),
    }
    assert result["counts"]["blob"] == expected["garbage_blobs"], summary
    assert result["bytes"]["blob"] == expected["garbage_bytes"], summary
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
