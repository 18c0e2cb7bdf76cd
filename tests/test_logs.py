"""What an operator reads in the logs: one access line per request with its id, and the life of
every sync job (start, retry, failure, success) naming the job and the whole copy.

Two real regions with the access log on; cn-north-4 writes JSON lines, cn-east-3 text. Job
states are read through the SWR sync-job API; only the logging itself is read from the logs.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import requests

from ferry.observability import logs
from tests.support.images import make_image, push_image
from tests.support.names import unique
from tests.support.regions import SECRET_KEY, Regions, make_regions
from tests.support.server import ADMIN_PASSWORD, FerryServer
from tests.support.sync_helpers import FINAL, create_org, create_repo, create_rule, jobs, registry, wait_for

A, B = "cn-north-4", "cn-east-3"
HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    # A short retry deadline, so a job to a dead peer gives up (timeout) within seconds.
    json_region = {"FERRY_LOG_FORMAT": "json", "FERRY_SYNC_RETRY_SECONDS": "4"}
    started = make_regions(
        tmp_path_factory.mktemp("logs"),
        [A, B],
        extra_env={"FERRY_ACCESS_LOG": "true"},
        region_env={A: json_region},
    )
    yield started
    started.stop()


def json_lines(server: FerryServer) -> list[dict[str, Any]]:
    """Every line of the server's log, each of which must be one JSON object."""
    entries = []
    for number, line in enumerate(server.log.read_text().splitlines(), 1):
        try:
            entries.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{server.log}:{number} is not JSON: {line!r}")
    return entries


def access_lines(server: FerryServer, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The access line of each request id; aiohttp writes it once the answer is sent, so a
    moment after the client has the answer."""

    def probe() -> dict[str, dict[str, Any]] | None:
        found = {e["request_id"]: e for e in json_lines(server) if e["logger"] == "ferry.access"}
        return found if all(i in found for i in ids) else None

    return wait_for(probe, f"access lines for {ids}", timeout=10)


def test_json_access_lines_carry_the_request_id_the_answer_names(regions: Regions) -> None:
    a = regions[A]
    own = requests.get(f"{a.url}/v2/", headers={"X-Request-Id": "client-chosen.id-1"}, timeout=30)
    unsafe = requests.get(f"{a.url}/v2/", headers={"X-Request-Id": "x" * 200 + " and spaces"}, timeout=30)
    secret_query = "hunter2-in-a-query-string"
    token = requests.get(
        f"{a.url}/v2/token",
        params={"service": A, "scope": "repository:x/y:pull", "password": secret_query},
        auth=("admin", ADMIN_PASSWORD),
        timeout=30,
    )
    listing = requests.get(
        f"{a.url}/v2/manage/namespaces", headers={"X-Auth-Token": a.admin_token()}, timeout=30
    )
    missing = requests.get(f"{a.url}/no/such/route?token={secret_query}", timeout=30)
    answers = [own, unsafe, token, listing, missing]
    assert own.headers["X-Request-Id"] == "client-chosen.id-1"
    assert HEX_ID.fullmatch(unsafe.headers["X-Request-Id"]), "an unsafe incoming id is replaced"
    ids = [answer.headers["X-Request-Id"] for answer in answers]
    assert len(set(ids)) == len(ids)

    lines = access_lines(a, ids)
    for answer in answers:
        line = lines[answer.headers["X-Request-Id"]]
        assert line["status"] == answer.status_code
        assert line["bytes_out"] >= len(answer.content) and line["duration_ms"] >= 0
        assert line["peer"] == "127.0.0.1" and line["level"] == "INFO"
    assert (lines[ids[2]]["route"], lines[ids[2]]["path"], lines[ids[2]]["caller"]) == (
        "/v2/token",
        "/v2/token",
        "admin",
    )
    assert lines[ids[3]]["method"] == "GET" and lines[ids[3]]["caller"] == "admin"
    assert lines[ids[0]]["caller"] == "anonymous"
    assert lines[ids[4]]["path"] == "/no/such/route"
    everything = a.log.read_text()
    assert secret_query not in everything and ADMIN_PASSWORD not in everything
    assert a.admin_token() not in everything and token.json()["token"] not in everything
    # Every request line of the run so far: it has an id, and only a request's lines have one.
    for entry in json_lines(a):
        if entry["logger"] == "ferry.access":
            assert entry["request_id"] and "?" not in entry["path"], entry


def test_text_access_lines_name_the_route_and_the_request_id(regions: Regions) -> None:
    b = regions[B]
    answer = requests.get(
        f"{b.url}/v2/manage/namespaces", headers={"X-Auth-Token": b.admin_token()}, timeout=30
    )
    request_id = answer.headers["X-Request-Id"]
    pattern = re.compile(
        rf"^\S+ INFO ferry\.access request_id={request_id} GET /v2/manage/namespaces 200 [\d.]+ms "
        rf"in=0 out=\d+ caller=admin peer=127\.0\.0\.1 path=/v2/manage/namespaces$",
        re.MULTILINE,
    )
    wait_for(lambda: pattern.search(b.log.read_text()), "the text access line", timeout=10)


def _job(server: FerryServer, org: str, tag: str) -> dict[str, Any] | None:
    found = [j for j in jobs(server, org, "app") if j["tag"] == tag]
    return found[-1] if found and found[-1]["status"] in FINAL else None


def _job_lines(server: FerryServer, job_id: int, event: str) -> list[dict[str, Any]]:
    return [e for e in json_lines(server) if e.get("job_id") == job_id and e.get("event") == event]


def test_sync_job_lines_name_the_job_the_copy_and_the_cause(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    org = unique("logs")
    create_org(a, org)
    create_org(b, org)
    create_repo(a, org, "app")
    assert create_rule(a, org, "app", B, org) == 200
    push_image(registry(a), f"{org}/app", "v1", make_image(unique("logs-v1")))
    copied = wait_for(lambda: _job(a, org, "v1"), "the v1 sync job")
    assert copied["status"] == "success", copied

    b.stop()  # the peer's URL is now a closed port
    try:
        push_image(registry(a), f"{org}/app", "v2", make_image(unique("logs-v2")))
        failed = wait_for(lambda: _job(a, org, "v2"), "the v2 sync job to give up", timeout=60)
    finally:
        b.start()
    assert failed["status"] == "timeout" and failed["attempts"] >= 2, failed

    copy = f"{org}/app:v2 → {B}/{org}"
    finish = wait_for(lambda: _job_lines(a, failed["id"], "failure"), "the failure line", timeout=10)
    retries = _job_lines(a, failed["id"], "retry")
    starts = _job_lines(a, failed["id"], "start")
    assert len(starts) == failed["attempts"] and len(retries) == failed["attempts"] - 1
    for line in [*starts, *retries, *finish]:
        assert f"sync job={failed['id']} {copy}: " in line["message"], line
        assert (line["image"], line["target"]) == (f"{org}/app:v2", f"{B}/{org}")
    for retry in retries:
        assert retry["level"] == "WARNING"
        assert f"region {B} unreachable" in retry["cause"] and retry["cause"] in retry["message"]
        next_attempt = datetime.fromisoformat(retry["next_attempt_at"])
        assert f"next attempt at {retry['next_attempt_at']}" in retry["message"]
        assert next_attempt.tzinfo is not None
    assert [(f["level"], f["status"]) for f in finish] == [("ERROR", "timeout")]
    assert f"region {B} unreachable" in finish[0]["cause"]

    success = _job_lines(a, copied["id"], "finish")
    assert len(success) == 1 and success[0]["level"] == "INFO", success
    assert success[0]["digest"] == copied["digest"] and success[0]["bytes_sent"] == copied["bytes"] > 0
    assert success[0]["duration_ms"] > 0
    assert (
        f"sync job={copied['id']} {org}/app:v1 → {B}/{org}: success {copied['digest']}"
        in (success[0]["message"])
    )
    everything = a.log.read_text()
    assert SECRET_KEY not in everything and ADMIN_PASSWORD not in everything


def test_lines_logged_while_a_request_runs_carry_its_id_whatever_logs_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The filter gives the context's request id to any logger's line (aiohttp's, asyncio's, a
    library's), and to no line outside the request; URL credentials are masked."""

    class JsonSettings:
        log_format, log_level = "json", "INFO"

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logs.configure_logging(JsonSettings())
        with logs.request_context("req-1"):
            logging.getLogger("some.library").warning("peer http://user:pa55word@host:1/x failed")
        logging.getLogger("some.library").warning("outside")
        with logs.job_context(7):
            logging.getLogger("ferry.sync").info("copying")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    inside, outside, job = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert inside["request_id"] == "req-1" and "pa55word" not in inside["message"]
    assert "http://***@host:1/x" in inside["message"]
    assert "request_id" not in outside and "job_id" not in outside
    assert job["job_id"] == 7 and "request_id" not in job


def test_text_lines_name_the_job_once(capsys: pytest.CaptureFixture[str]) -> None:
    class TextSettings:
        log_format, log_level = "text", "INFO"

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logs.configure_logging(TextSettings())
        with logs.job_context(7):
            logging.getLogger("ferry.sync").info("sync job=7 o/r:t → r/o: attempt 1 started")
            logging.getLogger("ferry.storage").warning("slow")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    named, other = capsys.readouterr().err.splitlines()
    assert named.endswith(" INFO ferry.sync sync job=7 o/r:t → r/o: attempt 1 started"), named
    assert other.endswith(" WARNING ferry.storage job=7 slow"), other
