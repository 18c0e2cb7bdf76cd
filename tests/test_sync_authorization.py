"""Sync writes in the target region only where its user could write by hand.

Two real regions on loopback. Who may make a rule (an administrator of the source account),
what a job may write in the target region (what the user of the same name may push there,
checked every run), how a region limits what a peer may write (the peer credential's own
rights), and that refusals reveal no organization of the other region.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.images import make_image, push_image
from tests.support.names import unique
from tests.support.regions import ACCESS_KEY, PROJECT_ID, SECRET_KEY, Regions, make_regions
from tests.support.registry_client import RegistryClient, parse_challenge
from tests.support.server import ADMIN_PASSWORD, FerryServer, free_port
from tests.support.swr import TokenSession, iam_token
from tests.support.sync_helpers import FINAL, create_org, wait_for

A, B = "cn-north-4", "cn-east-3"
PASSWORD = "sync-auth-pass-123"


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    regions = make_regions(tmp_path_factory.mktemp("syncauth"), [A, B])
    yield regions
    regions.stop()


def as_user(server: FerryServer, user: str, region: str) -> TokenSession:
    return TokenSession(server, iam_token(server, user, PASSWORD, region))


def rule_body(namespace: str, override: bool = True) -> dict[str, Any]:
    return {"remoteRegionId": B, "remoteNamespace": namespace, "syncAuto": True, "override": override}


def sync_path(namespace: str, repository: str, what: str) -> str:
    return f"/v2/manage/namespaces/{namespace}/repos/{repository}/{what}"


def jobs(session: TokenSession, namespace: str, repository: str) -> list[dict[str, Any]]:
    response = session.request(
        "GET",
        sync_path(namespace, repository, "sync_job"),
        params={"filter": "limit::100|offset::0|order::asc"},
    )
    assert response.status_code == 200, response.text
    return list(response.json())


def final_job(session: TokenSession, namespace: str, repository: str, tag: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = [j for j in jobs(session, namespace, repository) if j["tag"] == tag]
        return found[-1] if found and found[-1]["status"] in FINAL else None

    return wait_for(probe, f"the sync job of {namespace}/{repository}:{tag}")


def admin_registry(server: FerryServer) -> RegistryClient:
    return RegistryClient(server.url, "admin", ADMIN_PASSWORD)


def has_tag(server: FerryServer, name: str, tag: str) -> bool:
    return admin_registry(server).get(f"/v2/{name}/manifests/{tag}").status_code == 200


def test_a_manager_who_is_not_an_administrator_cannot_make_a_rule(regions: Regions) -> None:
    """The reported escalation: manage rights on one organization of A, override into any of B."""
    a, b = regions[A], regions[B]
    mine, theirs = unique("mine"), unique("theirs")
    create_org(a, mine)
    create_org(b, theirs)
    push_image(admin_registry(b), f"{theirs}/app", "v1", victim := make_image(unique("victim")))
    mallory = unique("mallory")
    a.user(mallory, PASSWORD)
    a.grant(mallory, mine, 7)
    push_image(admin_registry(a), f"{mine}/app", "v1", make_image(unique("evil")))

    session = as_user(a, mallory, A)
    made = session.request("POST", sync_path(mine, "app", "sync_repo"), rule_body(theirs))
    assert made.status_code == 403, made.text
    assert made.json()["error_code"] == "SVCSTG.SWR.4030170"
    assert "administrators" in made.json()["error_msg"]
    # Edit rights on the source are not enough for a manual sync into B either.
    manual = {"imageTag": ["v1"], "remoteRegionId": B, "remoteNamespace": theirs, "override": True}
    refused = session.request("POST", sync_path(mine, "app", "sync_images"), manual)
    assert refused.status_code == 404, refused.text
    assert jobs(as_user(a, mallory, A), mine, "app") == []
    pulled = admin_registry(b).get(f"/v2/{theirs}/app/manifests/v1", headers={"Accept": "*/*"})
    assert pulled.content == victim.manifest


def test_refusals_do_not_tell_which_organizations_the_target_has(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    source, existing, missing = unique("src"), unique("exists"), unique("missing")
    create_org(a, source)
    create_org(b, existing)
    push_image(admin_registry(a), f"{source}/app", "v1", make_image(unique("probe")))
    editor = unique("editor")
    a.user(editor, PASSWORD)
    a.grant(editor, source, 3)
    session = as_user(a, editor, A)

    def refusal(namespace: str) -> str:
        body = {"imageTag": ["v1"], "remoteRegionId": B, "remoteNamespace": namespace}
        response = session.request("POST", sync_path(source, "app", "sync_images"), body)
        assert response.status_code == 404, response.text
        assert response.json()["error_code"] == "SVCSTG.SWR.4040058"
        return str(response.json()["error_msg"]).replace(namespace, "<org>")

    assert refusal(existing) == refusal(missing)


def test_a_manual_sync_writes_where_its_user_may_push_by_hand(regions: Regions) -> None:
    a, b = regions[A], regions[B]
    source, target = unique("src"), unique("dst")
    create_org(a, source)
    create_org(b, target)
    image = make_image(unique("byhand"))
    push_image(admin_registry(a), f"{source}/app", "v1", image)
    editor = unique("editor")
    for server, org in ((a, source), (b, target)):
        server.user(editor, PASSWORD)
        server.grant(editor, org, 3)
    body = {"imageTag": ["v1"], "remoteRegionId": B, "remoteNamespace": target}
    session = as_user(a, editor, A)
    assert session.request("POST", sync_path(source, "app", "sync_images"), body).status_code == 200
    assert final_job(session, source, "app", "v1")["status"] == "success"
    assert has_tag(b, f"{target}/app", "v1")


def test_another_accounts_administrator_cannot_write_into_this_accounts_organizations(
    regions: Regions,
) -> None:
    a, b = regions[A], regions[B]
    rival_org, target = unique("rivalorg"), unique("ferryorg")
    create_org(b, target)  # an organization of account "ferry" in B
    rival = unique("rival")
    for server in (a, b):  # account "rival" exists in both regions, with the same administrator
        server.cli("user", "create", rival, "--password", PASSWORD, "--account", rival, "--admin")
    session = as_user(a, rival, A)
    assert session.request("POST", "/v2/manage/namespaces", {"namespace": rival_org}).status_code == 201
    push_image(RegistryClient(a.url, rival, PASSWORD), f"{rival_org}/app", "v1", make_image(unique("r")))
    made = session.request("POST", sync_path(rival_org, "app", "sync_repo"), rule_body(target))
    assert made.status_code == 404, made.text
    assert "may not push" in made.json()["error_msg"]


def test_rights_are_checked_again_every_time_a_job_runs(regions: Regions) -> None:
    """The rule's owner may push into B's organization when the rule is made; then that right is
    taken away in B: the next job is refused with a record that says why, and writes nothing."""
    a, b = regions[A], regions[B]
    org = unique("rights")
    create_org(a, org)
    create_org(b, org)
    owner = unique("ops")
    a.cli("user", "create", owner, "--password", PASSWORD, "--admin")  # administrator in A
    b.user(owner, PASSWORD)  # in B an ordinary user of the same account, with edit rights
    b.grant(owner, org, 3)
    session = as_user(a, owner, A)
    push_image(admin_registry(a), f"{org}/app", "v1", make_image(unique("first")))
    assert session.request("POST", sync_path(org, "app", "sync_repo"), rule_body(org)).status_code == 200
    push_image(admin_registry(a), f"{org}/app", "v2", make_image(unique("second")))
    assert final_job(session, org, "app", "v2")["status"] == "success"
    assert has_tag(b, f"{org}/app", "v2")

    b.grant(owner, org, 1)  # read only in B from now on
    push_image(admin_registry(a), f"{org}/app", "v3", make_image(unique("third")))
    job = final_job(session, org, "app", "v3")
    assert job["status"] == "failed", job
    assert "refused" in job["message"] and owner in job["message"], job["message"]
    assert not has_tag(b, f"{org}/app", "v3")


@pytest.fixture
def scoped_peer(tmp_path: Path) -> Iterator[tuple[FerryServer, FerryServer, str, str]]:
    """B gives A a credential of its own: a user with edit rights on one organization only."""
    allowed, other = unique("allowed"), unique("other")
    admin_env = {
        "FERRY_ADMIN_ACCESS_KEY": ACCESS_KEY,
        "FERRY_ADMIN_SECRET_KEY": SECRET_KEY,
        "FERRY_ADMIN_PROJECT_ID": PROJECT_ID,
    }
    b = FerryServer(tmp_path / B, free_port(), env={"FERRY_REGION": B, "FERRY_PEERS": "[]"} | admin_env)
    b.start()
    a = None
    try:
        create_org(b, allowed)
        create_org(b, other)
        b.user("peer-cn-north-4", PASSWORD)
        b.grant("peer-cn-north-4", allowed, 3)
        created = b.cli("key", "create", "peer-cn-north-4").stdout
        key = json.loads(re.sub(r"\x1b\[[0-9;]*m", "", created))
        peers = [{"id": B, "url": b.url, "ak": key["ak"], "sk": key["sk"]}]
        a = FerryServer(
            tmp_path / A, free_port(), env={"FERRY_REGION": A, "FERRY_PEERS": json.dumps(peers)} | admin_env
        )
        a.start()
        yield a, b, allowed, other
    finally:
        if a is not None:
            a.stop()
        b.stop()


def test_the_target_region_decides_what_a_peer_may_write(
    scoped_peer: tuple[FerryServer, FerryServer, str, str],
) -> None:
    a, b, allowed, other = scoped_peer
    source = unique("src")
    create_org(a, source)
    image = make_image(unique("scoped"))
    push_image(admin_registry(a), f"{source}/app", "v1", image)
    admin = TokenSession(a, a.admin_token())
    # The administrator of the account may push to both organizations of B by hand ...
    assert admin.request("POST", sync_path(source, "app", "sync_repo"), rule_body(allowed)).status_code == 200
    # ... but B lets A's sync write only where B's credential for A may.
    refused = admin.request("POST", sync_path(source, "app", "sync_repo"), rule_body(other))
    assert refused.status_code == 404, refused.text
    body = {"imageTag": ["v1"], "remoteRegionId": B, "remoteNamespace": allowed}
    assert admin.request("POST", sync_path(source, "app", "sync_images"), body).status_code == 200
    assert final_job(admin, source, "app", "v1")["status"] == "success"
    assert has_tag(b, f"{allowed}/app", "v1")
    assert not has_tag(b, f"{other}/app", "v1")


def test_a_token_for_someone_grants_only_what_both_may(regions: Regions) -> None:
    b = regions[B]
    org = unique("both")
    create_org(b, org)
    reader = unique("reader")
    b.user(reader, PASSWORD)
    b.grant(reader, org, 1)
    challenge = parse_challenge(requests.get(f"{b.url}/v2/", timeout=30).headers["WWW-Authenticate"])

    def granted(**acting: str) -> list[str]:
        params = {"service": challenge["service"], "scope": f"repository:{org}/app:pull,push"} | acting
        response = requests.get(challenge["realm"], params=params, auth=("admin", ADMIN_PASSWORD), timeout=30)
        assert response.status_code == 200, response.text
        payload = response.json()["token"].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return list(claims["access"][0]["actions"])

    assert granted() == ["pull", "push"]
    assert granted(acting_account="ferry", acting_user=reader) == ["pull"]
    assert granted(acting_account="other-account", acting_user=reader) == []
    assert granted(acting_account="ferry", acting_user="nobody-here") == []
