"""Password guessing is slowed per identity and per client address; the owner is not locked out.

The server trusts 127.0.0.1 as a proxy, so each request names its client address in
X-Forwarded-For, as behind a load balancer: several clients on one loopback.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from ferry.identity.signing import docker_login_password
from ferry.identity.throttle import LoginThrottle
from tests.support.server import ADMIN_PASSWORD, FerryServer, free_port

REGION = "cn-north-4"
ATTACKER, OWNER, NEWCOMER = "203.0.113.9", "198.51.100.20", "192.0.2.77"


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FerryServer]:
    server = FerryServer(
        tmp_path_factory.mktemp("throttle"), free_port(), env={"FERRY_TRUSTED_PROXIES": '["127.0.0.1"]'}
    ).start()
    server.user("victim", "victim-pass-123")
    yield server
    server.stop()


def token_login(server: FerryServer, user: str, password: str, address: str) -> requests.Response:
    return requests.get(
        f"{server.url}/v2/token",
        params={"service": REGION},
        auth=(user, password),
        headers={"X-Forwarded-For": address},
        timeout=30,
    )


def iam_login(server: FerryServer, user: str, password: str, address: str) -> requests.Response:
    identity = {"methods": ["password"], "password": {"user": {"name": user, "password": password}}}
    return requests.post(
        f"{server.url}/v3/auth/tokens",
        json={"auth": {"identity": identity}},
        headers={"X-Forwarded-For": address},
        timeout=30,
    )


def retry_after(response: requests.Response) -> int:
    return int(response.headers["Retry-After"])


def test_a_burst_of_wrong_passwords_is_slowed_to_a_trickle(server: FerryServer) -> None:
    """Without a throttle one client tried about 28 passwords a second."""
    started = time.monotonic()
    answers = [token_login(server, "victim", f"guess-{i:04d}", ATTACKER) for i in range(40)]
    elapsed = time.monotonic() - started
    checked = [a for a in answers if a.status_code == 401]
    slowed = [a for a in answers if a.status_code == 429]
    assert len(checked) + len(slowed) == 40
    # Five free failures, then one more per doubling wait: a handful in the time of the burst.
    assert len(checked) <= 5 + int(elapsed + 1).bit_length(), (len(checked), elapsed)
    assert slowed and all(retry_after(a) >= 1 for a in slowed)
    assert slowed[-1].json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    # The same user from the same address waits too, even with the right password ...
    blocked = token_login(server, "victim", "victim-pass-123", ATTACKER)
    assert blocked.status_code == 429
    # ... until the wait is over.
    time.sleep(retry_after(blocked) + 0.2)
    assert token_login(server, "victim", "victim-pass-123", ATTACKER).status_code == 200


def test_an_attacker_cannot_lock_the_owner_out(server: FerryServer) -> None:
    assert token_login(server, "victim", "victim-pass-123", OWNER).status_code == 200
    # A distributed guess, one try from each of 30 addresses: after 20 failures new addresses wait.
    statuses = [token_login(server, "victim", "guess", f"203.0.113.{100 + i}").status_code for i in range(30)]
    assert statuses == [401] * 20 + [429] * 10
    # Where the owner logs in from, the owner gets in at once, by both login routes.
    assert token_login(server, "victim", "victim-pass-123", OWNER).status_code == 200
    assert iam_login(server, "victim", "victim-pass-123", OWNER).status_code == 201
    # A new address waits, but a minute at most, and is let in after.
    newcomer = iam_login(server, "victim", "victim-pass-123", NEWCOMER)
    assert newcomer.status_code == 429, newcomer.text
    assert newcomer.json()["error_code"] == "APIGW.0308"
    assert 1 <= retry_after(newcomer) <= 60


def test_spraying_many_users_from_one_address_is_slowed(server: FerryServer) -> None:
    statuses = [token_login(server, f"user{i}", "wrong-password", ATTACKER).status_code for i in range(40)]
    assert statuses[:30] == [401] * 30
    assert set(statuses[30:]) == {429}
    assert token_login(server, "victim", "victim-pass-123", OWNER).status_code == 200


def signed_request(server: FerryServer, ak: str, sk: str, address: str) -> requests.Response:
    request = SdkRequest(
        method="GET",
        schema="http",
        host=server.host,
        resource_path="/v2/manage/namespaces",
        query_params=[],
        header_params={"Content-Type": "application/json"},
        body=b"",
    )
    signed = Signer(BasicCredentials(ak, sk)).sign(request)
    headers = dict(signed.header_params) | {"X-Forwarded-For": address}
    return requests.get(f"{server.url}/v2/manage/namespaces", headers=headers, timeout=30)


def test_bad_signatures_lock_the_key_only_for_the_address_they_came_from(server: FerryServer) -> None:
    created = json.loads(re.sub(r"\x1b\[[0-9;]*m", "", server.cli("key", "create", "admin").stdout))
    ak, sk = created["ak"], created["sk"]
    for _ in range(6):
        assert signed_request(server, ak, "not-the-secret", ATTACKER).status_code == 401
    locked = signed_request(server, ak, sk, ATTACKER)
    assert locked.status_code == 401
    assert "AK access failed to reach the limit" in locked.json()["error_msg"]
    assert retry_after(locked) >= 1
    # The owner, elsewhere, signs and logs in with the key as usual.
    assert signed_request(server, ak, sk, OWNER).status_code == 200
    docker_login = token_login(server, f"{REGION}@{ak}", docker_login_password(ak, sk), OWNER)
    assert docker_login.status_code == 200
    assert token_login(server, "admin", ADMIN_PASSWORD, OWNER).status_code == 200


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_policy_with_a_clock_of_our_own() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock)
    # One pair: five free failures, then 1, 2, 4 ... seconds, never more than five minutes.
    for _ in range(5):
        assert throttle.wait("user:v", ATTACKER) == 0
        throttle.failed("user:v", ATTACKER)
    assert throttle.wait("user:v", ATTACKER) == 1
    throttle.failed("user:v", ATTACKER)
    assert throttle.wait("user:v", ATTACKER) == 2
    for _ in range(20):
        throttle.failed("user:v", ATTACKER)
    assert throttle.wait("user:v", ATTACKER) == 300
    assert throttle.wait("user:v", OWNER) == 60  # 26 failures of the identity: new addresses wait
    throttle.succeeded("user:v", ATTACKER)
    assert throttle.wait("user:v", ATTACKER) == 0
    # The identity-wide count survives a success and fades after 15 quiet minutes.
    throttle.failed("user:v", "192.0.2.1")
    assert throttle.wait("user:v", NEWCOMER) > 0
    throttle.succeeded("user:v", OWNER)
    assert throttle.wait("user:v", OWNER) == 0  # known there: never held back by others' failures
    assert throttle.wait("user:v", NEWCOMER) > 0
    clock.now += 16 * 60
    throttle.failed("user:v", "192.0.2.2")
    assert throttle.wait("user:v", NEWCOMER) == 0
    # One address, many identities: 30 new ones, then one more every 2 seconds.
    for i in range(30):
        throttle.failed(f"user:s{i}", "198.51.100.99")
    assert throttle.wait("user:fresh", "198.51.100.99") == pytest.approx(2.0)
    clock.now += 2
    assert throttle.wait("user:fresh", "198.51.100.99") == 0
