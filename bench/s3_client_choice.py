"""Which S3 client should the S3 blob store use? Client CPU-seconds per GiB, against one moto server.

moto (Python) is the slow side of every transfer here, so wall time mostly measures moto; the
client's own CPU time is what differs between clients and what a Ferry process pays.
Usage: .venv/bin/python -m bench.s3_client_choice [--mib 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from tests.support.s3server import S3Server

PART = 8 * 1024 * 1024


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def chunks(total: int) -> AsyncIterator[bytes]:
    block = os.urandom(PART)
    sent = 0
    while sent < total:
        n = min(PART, total - sent)
        yield block[:n]
        sent += n


async def obstore_roundtrip(endpoint: str, total: int) -> None:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        "bench",
        endpoint=endpoint,
        access_key_id="x",
        secret_access_key="x",
        region="us-east-1",
        client_options={"allow_http": True},
    )
    await obstore.put_async(store, "obstore/blob", chunks(total), chunk_size=PART)
    result = await obstore.get_async(store, "obstore/blob")
    received = 0
    async for chunk in result.stream(min_chunk_size=1024 * 1024):
        received += len(chunk)
    assert received == total, received


async def aiobotocore_roundtrip(endpoint: str, total: int) -> None:
    from aiobotocore.session import get_session

    session = get_session()
    async with session.create_client(
        "s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
    ) as client:
        upload = await client.create_multipart_upload(Bucket="bench", Key="botocore/blob")
        parts = []
        number = 1
        async for chunk in chunks(total):
            part = await client.upload_part(
                Bucket="bench",
                Key="botocore/blob",
                UploadId=upload["UploadId"],
                PartNumber=number,
                Body=chunk,
            )
            parts.append({"ETag": part["ETag"], "PartNumber": number})
            number += 1
        await client.complete_multipart_upload(
            Bucket="bench", Key="botocore/blob", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
        )
        response = await client.get_object(Bucket="bench", Key="botocore/blob")
        received = 0
        async with response["Body"] as body:
            while chunk := await body.read(1024 * 1024):
                received += len(chunk)
        assert received == total, received


def measure(
    name: str, run: Callable[[str, int], Coroutine[Any, Any, None]], endpoint: str, total: int
) -> dict[str, object]:
    start_cpu, start = cpu(), time.monotonic()
    asyncio.run(run(endpoint, total))
    cpu_s, wall = cpu() - start_cpu, time.monotonic() - start
    gib = 2 * total / 2**30  # up and down
    return {"client": name, "cpu_s_per_gib": round(cpu_s / gib, 3), "wall_s": round(wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    total = parser.parse_args().mib * 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="ferry-s3-choice-"))
    server = S3Server(work).start()
    try:
        endpoint = server.endpoint
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench", method="PUT")).read()
        results = [
            measure("obstore", obstore_roundtrip, endpoint, total),
            measure("aiobotocore", aiobotocore_roundtrip, endpoint, total),
        ]
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"mib": total // 2**20, "load": os.getloadavg(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
