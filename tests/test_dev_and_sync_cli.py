"""`ferry dev` (what `make run` starts) and the `ferry sync` commands a person types."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
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


def _cli(dev: dict[str, Any], *args: str, columns: int = 200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ferry", "sync", *args, "--dev", dev["file"]],
        capture_output=True,
        text=True,
        env=os.environ | {"COLUMNS": str(columns)},
        timeout=300,
    )


def _records(dev: dict[str, Any], name: str, *options: str) -> list[dict[str, Any]]:
    listed = _cli(dev, "jobs", name, "--json", *options)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    records: list[dict[str, Any]] = json.loads(listed.stdout)
    return records


def _manage(dev: dict[str, Any], region: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    endpoint = next(r["endpoint"] for r in dev["regions"] if r["id"] == region)
    headers = {"X-Auth-Token": _token(endpoint, dev["admin"])}
    return requests.request(method, endpoint + path, headers=headers, timeout=60, **kwargs)


@pytest.fixture(scope="module")
def records(dev: dict[str, Any]) -> list[dict[str, Any]]:
    """In organization `rec` of A: `rec/app` syncs automatically to B/rec (succeeds) and to
    B/gone (an organization deleted after the rule was made: the job fails, saying why); `rec/web`
    is copied once by hand, later. Returns every record of the organization, all final."""
    for region in (A, B):
        assert _manage(dev, region, "POST", "/v2/manage/namespaces", json={"namespace": "rec"}).ok
    assert _manage(dev, B, "POST", "/v2/manage/namespaces", json={"namespace": "gone"}).ok
    endpoint = next(r["endpoint"] for r in dev["regions"] if r["id"] == A)
    client = RegistryClient(endpoint, dev["admin"]["user"], dev["admin"]["password"])
    push_image(client, "rec/web", "v1", make_image("rec-web"))
    app = {"repository": "app", "is_public": False}
    assert _manage(dev, A, "POST", "/v2/manage/namespaces/rec/repos", json=app).ok
    for target in (f"{B}/rec", f"{B}/gone"):
        added = _cli(dev, "add", "rec/app", "--to", target, "--auto")
        assert added.returncode == 0, added.stdout + added.stderr
    assert _manage(dev, B, "DELETE", "/v2/manage/namespaces/gone").status_code == 204
    push_image(client, "rec/app", "v1", make_image("rec-app"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = _records(dev, "rec/app")
        if len(found) == 2 and all(j["finishedAt"] for j in found):
            break
        time.sleep(0.3)
    # The manual copy is made in a later second than the automatic jobs, so --since can part them.
    while time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) <= max(j["createdAt"] for j in found):
        time.sleep(0.1)
    copied = _cli(dev, "now", "rec/web", "v1", "--to", f"{B}/rec", "--timeout", "120")
    assert copied.returncode == 0, copied.stdout + copied.stderr
    every = _records(dev, "rec")
    assert len(every) == 3 and all(j["finishedAt"] for j in every), every
    return every


def test_sync_jobs_show_the_whole_message_duration_attempts_and_bytes(
    dev: dict[str, Any], records: list[dict[str, Any]]
) -> None:
    failed = next(j for j in records if j["status"] == "failed")
    assert failed["remoteNamespace"] == "gone" and len(failed["message"]) > 60, failed
    assert "gone" in failed["message"] and failed["attempts"] >= 1
    assert {"startedAt", "finishedAt", "bytes", "blobsSkipped", "digest", "trigger"} <= failed.keys()
    wide = _cli(dev, "jobs", "rec/app", columns=400)
    assert wide.returncode == 0 and failed["message"] in wide.stdout, wide.stdout
    for header in ("duration", "tries", "bytes", "message"):
        assert header in wide.stdout
    succeeded = next(j for j in records if j["status"] == "success" and j["repoName"] == "app")
    assert succeeded["bytes"] > 0
    row = next(line for line in wide.stdout.splitlines() if line.startswith(f"│ {succeeded['id']} "))
    assert f"{succeeded['bytes']:,}" in row and "success" in row, row
    assert re.search(r"│ \d+(\.\d)?s +│", row), row  # the duration, started → finished
    narrow = _cli(dev, "jobs", "rec/app", columns=100)  # the message wraps onto more lines
    assert narrow.returncode == 0
    assert failed["message"] not in narrow.stdout and "…" not in narrow.stdout, narrow.stdout
    for word in failed["message"].split():
        assert word in narrow.stdout, (word, narrow.stdout)


def test_sync_jobs_filter_by_status_and_time(dev: dict[str, Any], records: list[dict[str, Any]]) -> None:
    def ids(*options: str) -> set[int]:
        return {j["id"] for j in _records(dev, "rec", *options)}

    by_status = {s: {j["id"] for j in records if j["status"] == s} for s in ("failed", "success")}
    assert len(by_status["failed"]) == 1 and len(by_status["success"]) == 2
    assert ids("--status", "failed") == by_status["failed"]
    both = by_status["failed"] | by_status["success"]
    assert ids("--status", "failed,success") == ids("--status", "failed", "--status", "success") == both
    assert ids("--status", "timeout") == set()
    wrong = _cli(dev, "jobs", "rec", "--status", "broken")
    assert wrong.returncode == 2 and "--status 'broken'" in wrong.stdout and "failed" in wrong.stdout

    manual = next(j for j in records if j["repoName"] == "web")
    later = {j["id"] for j in records if j["createdAt"] >= manual["createdAt"]}
    assert later == {manual["id"]}
    assert ids("--since", manual["createdAt"]) == later
    assert ids("--since", "1h") == {j["id"] for j in records}
    assert ids("--since", "2999-01-01T00:00:00Z") == set()
    assert _cli(dev, "jobs", "rec", "--since", "yesterday").returncode == 2
    table = _cli(dev, "jobs", "rec/app", "--status", "failed")
    assert "failed" in table.stdout and "success" not in table.stdout, table.stdout


def test_sync_jobs_and_rules_list_across_an_organization(
    dev: dict[str, Any], records: list[dict[str, Any]]
) -> None:
    assert {j["repoName"] for j in records} == {"app", "web"}
    assert [j["id"] for j in records] == sorted((j["id"] for j in records), reverse=True)
    jobs = _cli(dev, "jobs", "rec")
    assert jobs.returncode == 0 and "repository" in jobs.stdout, jobs.stdout
    for job in records:
        assert re.search(rf"│ {job['id']} +│ {job['repoName']} +│ {job['tag']} ", jobs.stdout), jobs.stdout
    rules = _cli(dev, "rules", "rec", "--json")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    found = {(r["repoName"], r["remoteNamespace"]) for r in json.loads(rules.stdout)}
    assert found == {("app", "rec"), ("app", "gone")}
    table = _cli(dev, "rules", "rec")
    assert table.stdout.count("│ app ") == 2 and "gone" in table.stdout, table.stdout
    missing = _cli(dev, "jobs", "nosuch")
    assert missing.returncode == 1 and "nosuch" in missing.stdout


def test_invalid_names_are_answered_with_the_rule_they_break(dev: dict[str, Any]) -> None:
    org = _manage(dev, A, "POST", "/v2/manage/namespaces", json={"namespace": "Rec"})
    assert org.status_code == 400 and "starting with a letter" in org.json()["error_msg"], org.text
    repo = _manage(dev, A, "GET", "/v2/manage/namespaces/rec/repos/App")
    assert repo.status_code == 400 and "lowercase letters and digits" in repo.json()["error_msg"]
    tag = _manage(
        dev,
        A,
        "POST",
        "/v2/manage/namespaces/rec/repos/app/sync_images",
        json={"imageTag": ["-v1"], "remoteRegionId": B, "remoteNamespace": "rec"},
    )
    assert tag.status_code == 400 and "not starting with '.' or '-'" in tag.json()["error_msg"], tag.text
    endpoint = next(r["endpoint"] for r in dev["regions"] if r["id"] == A)
    registry = requests.get(f"{endpoint}/v2/Rec/app/tags/list", timeout=60)
    error = registry.json()["errors"][0]
    assert registry.status_code == 400 and error["code"] == "NAME_INVALID"
    assert (
        "invalid organization name 'Rec'" in error["message"] and "starting with a letter" in error["message"]
    )


def test_a_port_in_use_is_named_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = subprocess.run(
            [sys.executable, "-m", "ferry", "dev", "--base-port", str(port), "--data", str(tmp_path / "d")],
            capture_output=True,
            text=True,
            env=os.environ | {"COLUMNS": "80"},
            timeout=120,
        )
    assert started.returncode == 1
    lines = (started.stdout + started.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert f"port {port} is in use" in lines[0] and "make run PORT=" in lines[0] and "--base-port" in lines[0]
    assert not (tmp_path / "d").exists()  # nothing was started


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
