"""Registry authentication and authorization, against a real Ferry process.

Who may pull, push and delete where, what an unauthorized caller can learn, what the token
service grants, and that a forged or expired token gets nobody anywhere.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import requests

from tests.support.images import (
    OCI_MANIFEST,
    Image,
    digest_of,
    get_manifest,
    make_image,
    push_blobs,
    push_image,
    put_manifest,
)
from tests.support.names import unique
from tests.support.registry_client import RegistryClient, parse_challenge
from tests.support.server import ADMIN_PASSWORD, FerryServer

REGION = "cn-north-4"  # the default region of a FerryServer
REFUSED = (401, 403)


def error_code(response: requests.Response) -> str:
    return str(response.json()["errors"][0]["code"])


def token_claims(token: str) -> dict[str, Any]:
    """The JWT payload, read without verifying the signature (as a client could)."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class World:
    server: FerryServer
    org: str
    other_org: str
    app: str  # {org}/app, holding `image` as :latest
    image: Image
    roles: dict[str, str]  # role (reader, editor, outsider) -> user name
    users: dict[str, str]  # user name -> password

    def client(self, user: str | None) -> RegistryClient:
        if user is None:
            return RegistryClient(self.server.url)
        return RegistryClient(self.server.url, user, self.users[user])

    def admin(self) -> RegistryClient:
        return RegistryClient(self.server.url, "admin", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def world(ferry_server: FerryServer) -> World:
    """An organization with an image in it, and users who may read it, edit it, or nothing."""
    org, other_org = unique("auth"), unique("other")
    ferry_server.org(org)
    ferry_server.org(other_org)
    roles = {role: unique(role) for role in ("reader", "editor", "outsider")}
    users = {name: f"{name}-password" for name in roles.values()}
    for name, password in users.items():
        ferry_server.user(name, password)
    ferry_server.grant(roles["reader"], org, 1)
    ferry_server.grant(roles["editor"], org, 3)
    # The outsider has rights elsewhere, so a refusal is about this organization, not a dud user.
    ferry_server.grant(roles["outsider"], other_org, 3)
    world = World(ferry_server, org, other_org, f"{org}/app", make_image("app"), roles, users)
    push_image(world.admin(), world.app, "latest", world.image)
    return world


def user(world: World, role: str) -> str:
    return world.roles[role]


def client_for(world: World, role: str | None) -> RegistryClient:
    return world.client(None if role is None else user(world, role))


# --- challenges and the token endpoint --------------------------------------------------------


def test_no_credentials_gets_a_bearer_challenge(world: World) -> None:
    base = world.server.url
    pull = requests.get(f"{base}/v2/{world.app}/manifests/latest", timeout=30)
    assert pull.status_code == 401
    header = pull.headers["WWW-Authenticate"]
    assert header.startswith('Bearer realm="')
    challenge = parse_challenge(header)
    assert challenge["realm"] == f"{base}/v2/token"
    assert challenge["service"] == REGION
    assert challenge["scope"] == f"repository:{world.app}:pull"
    assert error_code(pull) == "UNAUTHORIZED"

    push = requests.post(f"{base}/v2/{world.app}/blobs/uploads/", timeout=30)
    assert push.status_code == 401
    assert parse_challenge(push.headers["WWW-Authenticate"])["scope"] == f"repository:{world.app}:pull,push"

    root = requests.get(f"{base}/v2/", timeout=30)
    assert root.status_code == 401
    assert parse_challenge(root.headers["WWW-Authenticate"])["realm"] == f"{base}/v2/token"


def test_token_endpoint_refuses_bad_credentials(world: World) -> None:
    realm = f"{world.server.url}/v2/token"
    params = {"service": REGION, "scope": f"repository:{world.app}:pull"}
    reader = user(world, "reader")
    good = requests.get(realm, params=params, auth=(reader, world.users[reader]), timeout=30)
    assert good.status_code == 200
    assert good.json()["token"]
    wrong_password = requests.get(realm, params=params, auth=(reader, "not-the-password"), timeout=30)
    no_such_user = requests.get(realm, params=params, auth=(unique("ghost"), "whatever-pw"), timeout=30)
    for refused in (wrong_password, no_such_user):
        assert refused.status_code == 401
        assert "token" not in refused.text
    # Whether the user exists is not revealed.
    assert wrong_password.json() == no_such_user.json()
    # The OAuth2 password grant refuses the same way.
    form = {"grant_type": "password", "username": reader, "password": "nope-nope", "service": REGION}
    assert requests.post(realm, data=form | {"scope": params["scope"]}, timeout=30).status_code == 401


def _claims_for(world: World, role: str | None, *scopes: str) -> dict[str, list[str]]:
    auth = None
    if role == "admin":
        auth = ("admin", ADMIN_PASSWORD)
    elif role is not None:
        auth = (user(world, role), world.users[user(world, role)])
    response = requests.get(
        f"{world.server.url}/v2/token",
        params={"service": REGION, "scope": list(scopes)},
        auth=auth,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    claims = token_claims(response.json()["token"])
    return {entry["name"]: sorted(entry["actions"]) for entry in claims["access"]}


def test_token_grants_only_what_the_user_may_do(world: World) -> None:
    everything = [f"repository:{world.app}:pull,push,delete", f"repository:{world.other_org}/x:pull,push"]
    app, other = world.app, f"{world.other_org}/x"
    assert _claims_for(world, "reader", *everything) == {app: ["pull"], other: []}
    assert _claims_for(world, "editor", *everything) == {app: ["delete", "pull", "push"], other: []}
    assert _claims_for(world, "outsider", *everything) == {app: [], other: ["pull", "push"]}
    assert _claims_for(world, None, *everything) == {app: [], other: []}
    assert _claims_for(world, "admin", *everything) == {
        app: ["delete", "pull", "push"],
        other: ["pull", "push"],
    }
    # Asking for less gets no more than asked.
    assert _claims_for(world, "editor", f"repository:{app}:pull") == {app: ["pull"]}
    assert _claims_for(world, "editor", f"repository:{app}:*") == {app: ["delete", "pull", "push"]}


# --- who may do what --------------------------------------------------------------------------


def _attempts(client: RegistryClient, name: str, image: Image) -> dict[str, requests.Response]:
    blob = next(iter(image.blobs))
    return {
        "get manifest": get_manifest(client, name, "latest"),
        "get manifest by digest": get_manifest(client, name, image.digest),
        "head manifest": client.head(f"/v2/{name}/manifests/latest"),
        "tags": client.get(f"/v2/{name}/tags/list"),
        "get blob": client.get(f"/v2/{name}/blobs/{blob}"),
        "referrers": client.get(f"/v2/{name}/referrers/{image.digest}"),
        "start upload": client.post(f"/v2/{name}/blobs/uploads/"),
        "monolithic upload": push_blobs(client, name, image)[0],
        "put manifest": put_manifest(client, name, "latest", image),
        "delete manifest": client.delete(f"/v2/{name}/manifests/{image.digest}"),
        "delete blob": client.delete(f"/v2/{name}/blobs/{blob}"),
    }


def test_outsider_can_neither_pull_nor_push_and_learns_nothing(world: World) -> None:
    outsider = client_for(world, "outsider")
    existing = _attempts(outsider, world.app, world.image)
    missing_repo = _attempts(outsider, f"{world.org}/{unique('ghost')}", world.image)
    missing_org = _attempts(outsider, f"{unique('noorg')}/app", world.image)
    for what, response in existing.items():
        assert response.status_code in REFUSED, (what, response.status_code, response.text)
        for other in (missing_repo[what], missing_org[what]):
            assert other.status_code == response.status_code, what
            if what != "head manifest":
                assert error_code(other) == error_code(response), what
    # Nothing changed: the image is intact and no repository was created by the attempts.
    admin = world.admin()
    assert get_manifest(admin, world.app, "latest").content == world.image.manifest
    catalog = admin.get("/v2/_catalog").json()["repositories"]
    assert [name for name in catalog if name.startswith(f"{world.org}/")] == [world.app]


def test_reader_can_pull_but_not_push_or_delete(world: World) -> None:
    reader = client_for(world, "reader")
    pulled = get_manifest(reader, world.app, "latest")
    assert pulled.status_code == 200
    assert pulled.content == world.image.manifest
    assert pulled.headers["Docker-Content-Digest"] == world.image.digest
    for digest, data in world.image.blobs.items():
        blob = reader.get(f"/v2/{world.app}/blobs/{digest}")
        assert blob.status_code == 200
        assert blob.content == data
    assert reader.get(f"/v2/{world.app}/tags/list").json()["tags"] == ["latest"]

    new = make_image(unique("reader-push"))
    refused = {
        "blob": push_blobs(reader, world.app, new)[0],
        "start upload": reader.post(f"/v2/{world.app}/blobs/uploads/"),
        "new repository": reader.post(f"/v2/{world.org}/{unique('new')}/blobs/uploads/"),
        "manifest": put_manifest(reader, world.app, "evil", world.image),
        "delete manifest": reader.delete(f"/v2/{world.app}/manifests/{world.image.digest}"),
        "delete tag": reader.delete(f"/v2/{world.app}/manifests/latest"),
        "delete blob": reader.delete(f"/v2/{world.app}/blobs/{next(iter(world.image.blobs))}"),
    }
    for what, response in refused.items():
        assert response.status_code in REFUSED, (what, response.status_code, response.text)
        assert error_code(response) == "DENIED", what
    admin = world.admin()
    assert admin.get(f"/v2/{world.app}/tags/list").json()["tags"] == ["latest"]
    assert get_manifest(admin, world.app, world.image.digest).status_code == 200
    for digest in world.image.blobs:
        assert admin.head(f"/v2/{world.app}/blobs/{digest}").status_code == 200
    for digest in new.blobs:
        assert admin.head(f"/v2/{world.app}/blobs/{digest}").status_code == 404


def test_editor_can_push_and_delete(world: World) -> None:
    editor = client_for(world, "editor")
    name = f"{world.org}/{unique('edited')}"
    image = make_image(name)
    push_image(editor, name, "v1", image)
    assert get_manifest(editor, name, "v1").content == image.manifest
    assert get_manifest(client_for(world, "reader"), name, "v1").content == image.manifest
    assert editor.delete(f"/v2/{name}/manifests/v1").status_code == 202
    assert get_manifest(editor, name, "v1").status_code == 404
    # ...but only in the organization the permission is on.
    elsewhere = push_blobs(editor, f"{world.other_org}/app", image)[0]
    assert elsewhere.status_code in REFUSED


def test_anonymous_may_pull_a_public_repository_but_not_push(world: World) -> None:
    name = f"{world.org}/{unique('pub')}"
    image = make_image(name)
    push_image(world.admin(), name, "latest", image)
    anonymous = client_for(world, None)
    assert get_manifest(anonymous, name, "latest").status_code in REFUSED
    world.server.cli("repo", "update", name, "--public")

    anonymous = client_for(world, None)
    pulled = get_manifest(anonymous, name, "latest")
    assert pulled.status_code == 200
    assert pulled.content == image.manifest
    for digest in image.blobs:
        assert digest_of(anonymous.get(f"/v2/{name}/blobs/{digest}").content) == digest
    assert anonymous.get(f"/v2/{name}/tags/list").json()["tags"] == ["latest"]

    other = make_image(unique("anon"))
    for response in (
        push_blobs(anonymous, name, other)[0],
        put_manifest(anonymous, name, "latest", other),
        anonymous.delete(f"/v2/{name}/manifests/latest"),
    ):
        assert response.status_code in REFUSED, response.text
    assert get_manifest(world.admin(), name, "latest").content == image.manifest
    # A public repository does not open its organization's other repositories.
    assert get_manifest(anonymous, world.app, "latest").status_code in REFUSED
    # Nor does it let a user without rights push there.
    assert push_blobs(client_for(world, "outsider"), name, other)[0].status_code in REFUSED


def test_catalog_lists_only_readable_repositories(world: World) -> None:
    admin = world.admin()
    secret, open_ = f"{world.other_org}/secret", f"{world.other_org}/open"
    push_image(admin, secret, "latest", make_image(secret))
    push_image(admin, open_, "latest", make_image(open_))
    world.server.cli("repo", "update", open_, "--public")

    def catalog(client: RegistryClient) -> set[str]:
        response = client.get("/v2/_catalog")
        assert response.status_code == 200, response.text
        return set(response.json()["repositories"])

    mine = {world.app, secret, open_}
    assert catalog(admin) >= mine
    assert catalog(client_for(world, "reader")) & mine == {world.app, open_}
    assert catalog(client_for(world, "outsider")) & mine == {secret, open_}
    assert catalog(client_for(world, None)) & mine == {open_}


# --- forged tokens ------------------------------------------------------------------------------


def test_expired_or_tampered_token_is_refused(world: World) -> None:
    url = f"{world.server.url}/v2/{world.app}/manifests/latest"
    reader = user(world, "reader")
    response = requests.get(
        f"{world.server.url}/v2/token",
        params={"service": REGION, "scope": f"repository:{world.app}:pull"},
        auth=(reader, world.users[reader]),
        timeout=30,
    )
    token = response.json()["token"]

    def status(bearer: str, method: str = "GET", target: str = url) -> int:
        headers = {"Authorization": f"Bearer {bearer}", "Accept": OCI_MANIFEST}
        return requests.request(method, target, headers=headers, timeout=30).status_code

    assert status(token) == 200

    # The payload rewritten to grant everything, the signature kept.
    header, payload, signature = token.split(".")
    claims = token_claims(token)
    claims["access"] = [{"type": "repository", "name": world.app, "actions": ["pull", "push", "delete"]}]
    tampered = ".".join([header, b64url(json.dumps(claims).encode()), signature])
    assert status(tampered, "DELETE", url) == 401
    assert status(tampered, "POST", f"{world.server.url}/v2/{world.app}/blobs/uploads/") == 401
    # Same claims with a fresh expiry but a truncated or missing signature.
    assert status(".".join([header, payload, signature[:-4]])) == 401
    unsigned = ".".join([b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode()), payload, ""])
    assert status(unsigned) == 401
    # Signed with some other key.
    assert status(jwt.encode(token_claims(token), "not-the-server-key-" * 4, algorithm="HS256")) == 401

    # Properly signed with the region's key, but expired.
    key = (world.server.data / "secret.key").read_text().strip()
    now = int(time.time())
    valid = token_claims(token) | {"iat": now - 10, "nbf": now - 10, "exp": now + 300}
    assert status(jwt.encode(valid, key, algorithm="HS256")) == 200  # the forgery recipe works...
    expired = valid | {"iat": now - 4000, "nbf": now - 4000, "exp": now - 3000}
    assert status(jwt.encode(expired, key, algorithm="HS256")) == 401  # ...and expiry is enforced
    # A token for another service (region) is not accepted either.
    assert status(jwt.encode(valid | {"aud": "elsewhere"}, key, algorithm="HS256")) == 401


# --- a real client ---------------------------------------------------------------------------------


def _skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=180)


def test_skopeo_reader_can_inspect_but_not_copy_into_the_org(world: World) -> None:
    host = world.server.host
    reader, editor = user(world, "reader"), user(world, "editor")
    reader_creds = f"{reader}:{world.users[reader]}"
    editor_creds = f"{editor}:{world.users[editor]}"
    inspected = _skopeo(
        "inspect", "--tls-verify=false", "--creds", reader_creds, f"docker://{host}/{world.app}:latest"
    )
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Digest"] == world.image.digest

    target = f"{world.org}/{unique('copy')}"

    def copy(creds: str) -> subprocess.CompletedProcess[str]:
        return _skopeo(
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            creds,
            "--dest-creds",
            creds,
            f"docker://{host}/{world.app}:latest",
            f"docker://{host}/{target}:latest",
        )

    refused = copy(reader_creds)
    assert refused.returncode != 0
    assert any(word in refused.stderr.lower() for word in ("denied", "unauthorized")), refused.stderr
    admin = world.admin()
    assert get_manifest(admin, target, "latest").status_code == 404

    # The same copy by a user with edit rights goes through: the refusal above was about rights.
    allowed = copy(editor_creds)
    assert allowed.returncode == 0, allowed.stderr
    copied = get_manifest(admin, target, "latest")
    assert copied.status_code == 200
    assert copied.headers["Docker-Content-Digest"] == world.image.digest


def test_no_right_is_granted_on_an_organization_that_does_not_exist(world: World) -> None:
    """A token asked for before an organization exists must not write into it once another
    account creates it."""
    org = unique("unborn")
    name = f"{org}/app"
    admin = world.admin()
    challenge = parse_challenge(
        requests.get(f"{world.server.url}/v2/", timeout=30).headers["WWW-Authenticate"]
    )
    early = admin.token(challenge | {"scope": f"repository:{name}:pull,push"})
    assert token_claims(early)["access"] == [{"type": "repository", "name": name, "actions": []}]

    # Another account's administrator creates the organization.
    world.server.cli(
        "user", "create", "rival", "--password", "rival-pass-123", "--account", "rival", "--admin"
    )
    identity = {
        "methods": ["password"],
        "password": {"user": {"name": "rival", "password": "rival-pass-123"}},
    }
    issued = requests.post(
        f"{world.server.url}/v3/auth/tokens", json={"auth": {"identity": identity}}, timeout=60
    )
    created = requests.post(
        f"{world.server.url}/v2/manage/namespaces",
        json={"namespace": org},
        headers={"X-Auth-Token": issued.headers["X-Subject-Token"]},
        timeout=30,
    )
    assert created.status_code == 201, created.text

    image = make_image(name)
    digest, data = next(iter(image.blobs.items()))
    refused = requests.post(
        f"{world.server.url}/v2/{name}/blobs/uploads/",
        params={"digest": digest},
        data=data,
        headers={"Authorization": f"Bearer {early}"},
        timeout=30,
    )
    assert refused.status_code == 403, refused.text
    assert error_code(refused) == "DENIED"
    # A token asked for now carries nothing either: the organization is another account's.
    assert push_blobs(admin, name, image)[0].status_code == 403
    rival = RegistryClient(world.server.url, "rival", "rival-pass-123")
    push_image(rival, name, "v1", image)
