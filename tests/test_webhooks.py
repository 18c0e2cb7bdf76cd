"""Webhooks (issue 12, point 5) against real regions and a receiver on loopback: each event once
with a valid signature and CloudEvents fields; a kill -9 of the source between the push and the
delivery still delivers after the restart; three 500s and then a success, all four in the
delivery log; replay and secret rotation; URL checks; manage permission."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ferry.webhooks.delivery import CheckedResolver
from ferry.webhooks.urls import UrlRefused, check_url
from tests.support import leaks
from tests.support.images import make_image, push_image
from tests.support.names import unique
from tests.support.receiver import HANG, Receiver, running_receiver
from tests.support.regions import ACCESS_KEY, SECRET_KEY, Regions, make_regions
from tests.support.server import FerryServer
from tests.support.swr import TokenSession, iam_token
from tests.support.sync_helpers import (
    create_org,
    create_repo,
    create_rule,
    manage,
    registry,
    wait_for,
    wait_tag,
)

A, B = "cn-north-4", "cn-east-3"
DEADLINE = 30.0


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as started:
        yield started


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    """A may send webhooks to loopback (the test receiver); B keeps the default refusal."""
    env = {"FERRY_WEBHOOK_RETRY_BASE_SECONDS": "0.2", "FERRY_WEBHOOK_TIMEOUT_SECONDS": "2"}
    started = make_regions(
        tmp_path_factory.mktemp("webhooks"),
        [A, B],
        extra_env=env,
        region_env={A: {"FERRY_WEBHOOK_ALLOW_PRIVATE": "true"}},
    )
    yield started
    started.stop()


@pytest.fixture
def a(regions: Regions) -> FerryServer:
    return regions[A]


@pytest.fixture
def b(regions: Regions) -> FerryServer:
    return regions[B]


def hooks_path(org: str) -> str:
    return f"/v2/manage/namespaces/{org}/webhooks"


def add_hook(server: FerryServer, org: str, url: str, **fields: Any) -> dict[str, Any]:
    response = manage(server).request("POST", hooks_path(org), {"url": url, **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    leaks.remember(created["secret"])
    return created


def deliveries(server: FerryServer, org: str, hook_id: int) -> list[dict[str, Any]]:
    response = manage(server).request("GET", f"{hooks_path(org)}/{hook_id}/deliveries")
    assert response.status_code == 200, response.text
    return list(response.json())


def wait_delivered(server: FerryServer, org: str, hook_id: int, count: int) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        found = deliveries(server, org, hook_id)
        return found if len(found) >= count and all(d["status"] == "success" for d in found) else None

    return wait_for(probe, f"{count} successful deliveries of webhook {hook_id}", DEADLINE)


def signed_by(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Ferry-Signature"])


def metric(scraped: str, series: str) -> float:
    return sum(float(line.split()[-1]) for line in scraped.splitlines() if line.startswith(series + " "))


def pushed(server: FerryServer, org: str, seed: str, tag: str = "v1") -> str:
    image = make_image(seed)
    push_image(registry(server), f"{org}/app", tag, image)
    return image.digest


def test_each_event_once_signed(a: FerryServer, b: FerryServer, receiver: Receiver) -> None:
    org = unique("hook")
    create_org(a, org)
    create_org(b, org)
    create_repo(a, org, "app")
    create_rule(a, org, "app", B, org)
    hook = add_hook(a, org, receiver.url("/all"), description="everything")
    assert hook["events"] == [] and hook["secret"].startswith("whsec_")

    digest = pushed(a, org, unique("seed"))
    wait_delivered(a, org, hook["id"], 2)
    got = receiver.at("/all")
    events = [json.loads(r.body) for r in got]
    assert sorted(e["type"] for e in events) == ["ferry.image.pushed", "ferry.tag.synced"]
    assert len({e["id"] for e in events}) == 2
    for request, event in zip(got, events, strict=True):
        assert signed_by(hook["secret"], request.body, request.headers)
        assert request.headers["Content-Type"] == "application/cloudevents+json"
        assert request.headers["X-Ferry-Event-Id"] == request.headers["ce-id"] == event["id"]
        assert event["specversion"] == "1.0"
        assert event["source"] == f"ferry/{A}"
        assert event["subject"] == f"{org}/app:v1"
        assert event["datacontenttype"] == "application/json"
        assert event["time"].endswith("Z")
        assert event["data"]["digest"] == digest
    synced = next(e for e in events if e["type"] == "ferry.tag.synced")
    assert synced["data"]["target"] == {"region": B, "namespace": org}
    assert 0 <= synced["data"]["lagSeconds"] < DEADLINE

    # The secret was shown once: never again in an answer.
    listed = manage(a).request("GET", hooks_path(org))
    shown = manage(a).request("GET", f"{hooks_path(org)}/{hook['id']}")
    assert listed.status_code == shown.status_code == 200
    assert hook["secret"] not in listed.text + shown.text and "secret" not in shown.json()


def test_three_500s_then_success_replay_and_rotation(a: FerryServer, receiver: Receiver) -> None:
    org = unique("hook")
    create_org(a, org)
    receiver.script("/flaky", [500, 500, 500])
    hook = add_hook(
        a, org, receiver.url("/flaky"), events=["ferry.image.pushed"], secret="s" * 8 + unique("k")
    )

    pushed(a, org, unique("seed"))
    [delivery] = wait_delivered(a, org, hook["id"], 1)
    codes = [attempt["response_code"] for attempt in delivery["attempt_log"]]
    assert codes == [500, 500, 500, 200], delivery
    assert [attempt["number"] for attempt in delivery["attempt_log"]] == [1, 2, 3, 4]
    assert delivery["attempts"] == 4 and delivery["response_code"] == 200
    got = receiver.at("/flaky")
    assert [r.answered for r in got] == [500, 500, 500, 200]
    assert len({r.body for r in got}) == 1  # the same event, byte for byte
    scraped = requests.get(f"{a.url}/metrics", timeout=10).text
    assert metric(scraped, 'ferry_webhook_deliveries_total{result="retry"}') >= 3
    assert metric(scraped, 'ferry_webhook_deliveries_total{result="success"}') >= 1
    assert "ferry_webhook_outbox_depth" in scraped

    # Rotate the secret, then replay: the same event, signed with the new secret.
    rotated = "rotated-" + unique("secret")
    leaks.remember(rotated)
    patch = manage(a).request("PATCH", f"{hooks_path(org)}/{hook['id']}", {"secret": rotated})
    assert patch.status_code == 200, patch.text
    assert rotated not in patch.text
    replay = manage(a).request("POST", f"{hooks_path(org)}/deliveries/{delivery['id']}/replay")
    assert replay.status_code == 201, replay.text
    found = wait_delivered(a, org, hook["id"], 2)
    assert found[0]["replay_of"] == delivery["id"] and found[0]["event_id"] == delivery["event_id"]
    again = receiver.at("/flaky")[-1]
    assert again.body == got[0].body and signed_by(rotated, again.body, again.headers)


def test_kill_between_push_and_delivery(a: FerryServer, receiver: Receiver) -> None:
    """The receiver holds the first POST unanswered; A is killed meanwhile. After the restart
    the delivery's lease runs out, it is claimed again and delivered."""
    org = unique("hook")
    create_org(a, org)
    receiver.script("/slow", [HANG])
    hook = add_hook(a, org, receiver.url("/slow"), events=["ferry.image.pushed"])

    pushed(a, org, unique("seed"))
    wait_for(lambda: "/slow" in receiver.holding, "the first delivery attempt to arrive", DEADLINE)
    a.kill()
    receiver.release.set()
    a.start()
    [delivery] = wait_delivered(a, org, hook["id"], 1)
    answered = receiver.at("/slow")
    assert len(answered) == 1 and answered[0].answered == 200
    assert json.loads(answered[0].body)["id"] == delivery["event_id"]
    assert signed_by(hook["secret"], answered[0].body, answered[0].headers)


def test_url_checks(a: FerryServer, b: FerryServer) -> None:
    org = unique("hook")
    create_org(b, org)
    for url in (
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest",
        "http://0.0.0.0/x",
        "ftp://example.com/x",
        "http://user:pw@example.com/x",
    ):
        response = manage(b).request("POST", hooks_path(org), {"url": url})
        assert response.status_code == 400, (url, response.text)
        assert response.json()["error_code"] == "SVCSTG.SWR.4001025"
    unknown = manage(b).request("POST", hooks_path(org), {"url": "https://example.com/h", "events": ["nope"]})
    assert unknown.status_code == 400 and "nope" in unknown.text
    short = manage(b).request("POST", hooks_path(org), {"url": "https://example.com/h", "secret": "short"})
    assert short.status_code == 400
    assert manage(b).request("GET", f"{hooks_path(org)}/999999").status_code == 404


def test_manage_permission_needed(a: FerryServer, receiver: Receiver) -> None:
    org = unique("hook")
    create_org(a, org)
    hook = add_hook(a, org, receiver.url("/perm"))
    name, password = unique("reader"), unique("pw-") + "Aa1!"
    leaks.remember(password)
    a.user(name, password)
    a.grant(name, org, 3)  # edit, not manage
    session = TokenSession(a, iam_token(a, name, password, A))
    for method, path in (
        ("POST", hooks_path(org)),
        ("GET", hooks_path(org)),
        ("GET", f"{hooks_path(org)}/{hook['id']}/deliveries"),
        ("DELETE", f"{hooks_path(org)}/{hook['id']}"),
    ):
        body = {"url": receiver.url("/perm")} if method == "POST" else None
        response = session.request(method, path, body)
        assert response.status_code == 403, (method, path, response.text)
    assert manage(a).request("DELETE", f"{hooks_path(org)}/{hook['id']}").status_code == 204


def test_cli(a: FerryServer, receiver: Receiver) -> None:
    org = unique("hook")
    create_org(a, org)
    connect = ("--endpoint", a.url, "--ak", ACCESS_KEY, "--sk", SECRET_KEY)
    added = a.cli("webhook", "add", org, receiver.url("/cli"), "--event", "ferry.image.pushed", *connect)
    secret = added.stdout.split("secret (shown once): ")[1].split()[0]
    leaks.remember(secret)
    hook_id = int(added.stdout.split()[1])
    listed = a.cli("webhook", "list", org, "--json", *connect)
    assert [h["id"] for h in json.loads(listed.stdout)] == [hook_id] and secret not in listed.stdout

    pushed(a, org, unique("seed"))
    [delivery] = wait_delivered(a, org, hook_id, 1)
    assert "success" in a.cli("webhook", "deliveries", org, str(hook_id), *connect).stdout
    log = json.loads(a.cli("webhook", "deliveries", org, str(hook_id), "--json", *connect).stdout)
    assert [(d["event_type"], d["status"]) for d in log] == [("ferry.image.pushed", "success")]
    replayed = a.cli("webhook", "replay", org, str(delivery["id"]), *connect)
    assert f"replays {delivery['id']}" in replayed.stdout
    wait_delivered(a, org, hook_id, 2)
    assert all(signed_by(secret, r.body, r.headers) for r in receiver.at("/cli"))
    a.cli("webhook", "remove", org, str(hook_id), *connect)
    assert json.loads(a.cli("webhook", "list", org, "--json", *connect).stdout) == []
    refused = a.cli("webhook", "add", org, "ftp://example.com/h", *connect, check=False)
    assert refused.returncode == 1 and "http://" in refused.stdout


def test_conflict_and_failure_events(a: FerryServer, b: FerryServer, receiver: Receiver) -> None:
    """A conflict (B holds its own image under the tag, override off) and a failure (B's
    organization deleted after the rule was made) each reach the webhook once, with the reason."""
    org, gone = unique("hook"), unique("gone")
    for server, name in ((a, org), (b, org), (b, gone)):
        create_org(server, name)
    push_image(registry(b), f"{org}/app", "v1", make_image(unique("theirs")))
    create_repo(a, org, "app")
    create_rule(a, org, "app", B, org)
    create_rule(a, org, "app", B, gone)
    assert manage(b).request("DELETE", f"/v2/manage/namespaces/{gone}").status_code == 204
    kinds = ["ferry.sync.conflict", "ferry.sync.failed"]
    hook = add_hook(a, org, receiver.url("/trouble"), events=kinds)

    digest = pushed(a, org, unique("ours"))
    wait_delivered(a, org, hook["id"], 2)
    events = {e["type"]: e for e in (json.loads(r.body) for r in receiver.at("/trouble"))}
    assert sorted(events) == kinds and len(receiver.at("/trouble")) == 2
    conflict, failed = events["ferry.sync.conflict"]["data"], events["ferry.sync.failed"]["data"]
    assert conflict["reason"] == "conflict" and conflict["target"] == {"region": B, "namespace": org}
    assert failed["target"] == {"region": B, "namespace": gone} and failed["reason"] and failed["message"]
    assert conflict["digest"] == failed["digest"] == digest


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:127.0.0.1]/h",
        "http://127.1.2.3/h",
        "http://[fe80::1]/h",
        "http://224.0.0.1/h",
        "http://x.localhost/h",
    ],
)
def test_url_refused_in_every_spelling(url: str) -> None:
    with pytest.raises(UrlRefused):
        check_url(url, allow_private=False)
    assert check_url(url, allow_private=True)


def test_url_allowed() -> None:
    assert check_url("https://hooks.example.com:8443/ferry?x=1", allow_private=False) == "hooks.example.com"
    assert check_url("http://10.1.2.3/h", allow_private=False) == "10.1.2.3"  # a private network is fine


def test_drift_repaired_event(a: FerryServer, b: FerryServer, receiver: Receiver) -> None:
    """The tag deleted at B, an audit with repair copies it again: `ferry.drift.repaired`."""
    org = unique("hook")
    create_org(a, org)
    create_org(b, org)
    create_repo(a, org, "app")
    create_rule(a, org, "app", B, org)
    hook = add_hook(a, org, receiver.url("/drift"), events=["ferry.drift.repaired"])
    digest = pushed(a, org, unique("seed"))
    wait_tag(b, f"{org}/app", "v1", digest)
    repo = f"/v2/manage/namespaces/{org}/repos/app"
    assert manage(b).request("DELETE", f"{repo}/tags/v1").status_code == 204
    audit = manage(a).request("POST", f"{repo}/sync_audit", {"repair": True})
    assert audit.status_code == 200, audit.text

    [delivery] = wait_delivered(a, org, hook["id"], 1)
    [request] = receiver.at("/drift")
    event = json.loads(request.body)
    assert event["type"] == "ferry.drift.repaired" and event["id"] == delivery["event_id"]
    assert event["data"]["trigger"] == "repair" and event["data"]["digest"] == digest
    assert event["data"]["target"] == {"region": B, "namespace": org}


def test_resolver_refuses_names_of_forbidden_addresses() -> None:
    """At delivery the check is on the addresses the connection itself resolved."""

    async def resolve(host: str) -> object:
        resolver = CheckedResolver()
        try:
            return await resolver.resolve(host, 80)
        finally:
            await resolver.close()

    with pytest.raises(OSError, match="may not reach"):
        asyncio.run(resolve("localhost"))


def test_disabled_webhook_gets_nothing(a: FerryServer, receiver: Receiver) -> None:
    """Both webhooks see the same push's transaction: the enabled one's delivery arriving means
    the disabled one's would have been recorded too."""
    org = unique("hook")
    create_org(a, org)
    off = add_hook(a, org, receiver.url("/off"), enabled=False)
    on = add_hook(a, org, receiver.url("/on"), events=["ferry.image.pushed"])
    assert off["enabled"] is False
    pushed(a, org, unique("seed"))
    wait_delivered(a, org, on["id"], 1)
    assert deliveries(a, org, off["id"]) == [] and receiver.at("/off", answered=False) == []
    patch = manage(a).request("PATCH", f"{hooks_path(org)}/{off['id']}", {"enabled": True, "events": ["bad"]})
    assert patch.status_code == 400 and "bad" in patch.text
