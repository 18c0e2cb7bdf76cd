"""`ferry dev` (what `make run` starts) and the `ferry sync` commands a person types."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import leaks
from tests.support.images import make_image, push_image
from tests.support.registry_client import RegistryClient
from tests.support.server import free_port_run

A, B = "cn-north-4", "cn-east-3"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("dev")
    base = free_port_run(2)
    log = (data / "dev.out").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ferry",
            "dev",
            "--regions",
            f"{A},{B}",
            "--base-port",
            str(base),
            "--data",
            str(data),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    described = data / "dev.json"
    deadline = time.monotonic() + 240
    while not described.exists() and time.monotonic() < deadline:
        assert process.poll() is None, (data / "dev.out").read_text()
        time.sleep(0.2)
    assert described.exists(), (data / "dev.out").read_text()
    description: dict[str, Any] = json.loads(described.read_text()) | {
        "file": str(described),
        "process": process,
    }
    leaks.remember(description["admin"]["password"], description["admin"]["sk"])
    yield description
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def _token(endpoint: str, admin: dict[str, str]) -> str:
    body: dict[str, Any] = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": admin["user"], "password": admin["password"]}},
            }
        }
    }
    response = requests.post(f"{endpoint}/v3/auth/tokens", json=body, timeout=60)
    assert response.status_code == 201, response.text
    return response.headers["X-Subject-Token"]


def _sync_cli(dev: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "ferry", "sync", *args, "--dev", dev["file"]],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_dev_describes_two_regions_wired_as_peers(dev: dict[str, Any]) -> None:
    regions = {r["id"]: r for r in dev["regions"]}
    assert set(regions) == {A, B}
    assert {"account", "user", "password", "project_id", "ak", "sk"} <= set(dev["admin"])
    for region in regions.values():
        assert Path(region["data"]).is_dir() and region["endpoint"].startswith("http://127.0.0.1:")
        token = _token(region["endpoint"], dev["admin"])
        peers = requests.get(
            f"{region['endpoint']}/v2/manage/regions", headers={"X-Auth-Token": token}, timeout=60
        )
        assert [p["regionID"] for p in peers.json()] == [B if region["id"] == A else A]


def test_sync_commands_add_a_rule_copy_now_and_show_records(dev: dict[str, Any]) -> None:
    regions = {r["id"]: r["endpoint"] for r in dev["regions"]}
    admin = dev["admin"]
    for endpoint in regions.values():
        created = requests.post(
            f"{endpoint}/v2/manage/namespaces",
            json={"namespace": "clit"},
            headers={"X-Auth-Token": _token(endpoint, admin)},
            timeout=60,
        )
        assert created.status_code == 201, created.text
    image = make_image("cli-sync")
    push_image(RegistryClient(regions[A], admin["user"], admin["password"]), "clit/app", "v0", image)

    now = _sync_cli(dev, "now", "clit/app", "v0", "nope", "--to", f"{B}/clit", "--timeout", "120")
    assert now.returncode == 1, now.stdout + now.stderr  # one tag did not exist
    assert "not synced" in now.stdout and "clit/app:nope" in now.stdout
    assert "success" in now.stdout
    pulled = RegistryClient(regions[B], admin["user"], admin["password"]).get(
        "/v2/clit/app/manifests/v0", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
    )
    assert pulled.status_code == 200 and pulled.headers["Docker-Content-Digest"] == image.digest

    added = _sync_cli(dev, "add", "clit/app", "--to", f"{B}/clit", "--auto")
    assert added.returncode == 0, added.stdout + added.stderr
    rules = _sync_cli(dev, "rules", "clit/app")
    assert rules.returncode == 0 and B in rules.stdout and "True" in rules.stdout, rules.stdout
    jobs = _sync_cli(dev, "jobs", "clit/app")
    assert jobs.returncode == 0 and "success" in jobs.stdout and "v0" in jobs.stdout, jobs.stdout
    missing = _sync_cli(dev, "add", "clit/app", "--to", "nowhere-1/clit")
    assert missing.returncode == 1 and "valid target regions" in missing.stdout, missing.stdout


def test_dev_stops_every_region_on_sigterm(dev: dict[str, Any]) -> None:
    process: subprocess.Popen[bytes] = dev["process"]
    pids = [pid for region in dev["regions"] for pid in region["pids"]]
    assert all(_alive(pid) for pid in pids)
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids)
