"""A real S3-compatible server (moto in server mode) on loopback, and a bucket per use."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port, stop_process, wait_http

REGION = "us-east-1"
KEY = "ferry-test"


@dataclass
class S3Server:
    root: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> S3Server:
        self.port = free_port()
        log = self.root / "moto.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=out,
            )
        try:
            wait_http(self.endpoint + "/", process=self.process, log=log, timeout=timeout, name="moto")
        except RuntimeError:
            self.stop()
            raise
        return self

    def bucket(self) -> str:
        """A new empty bucket; returns its name."""
        name = f"ferry-{uuid.uuid4().hex[:20]}"
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        urllib.request.urlopen(request, timeout=30).read()
        return name

    def server_env(self) -> dict[str, str]:
        """FERRY_* settings for a region whose blobs live in a fresh bucket of this server."""
        return {
            "FERRY_STORAGE_URL": f"s3://{self.bucket()}/blobs",
            "FERRY_S3_ENDPOINT": self.endpoint,
            "FERRY_S3_REGION": REGION,
            "FERRY_S3_ACCESS_KEY_ID": KEY,
            "FERRY_S3_SECRET_ACCESS_KEY": KEY,
        }

    def stop(self) -> None:
        stop_process(self.process, grace=15)
