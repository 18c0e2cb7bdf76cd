"""SWR's temporary docker login, end to end with skopeo: `create_secret` and
`create_authorization_token` through the official SDK give a login that works for `skopeo
login` and pulls, that stops at its expiry (a credential a few seconds from its end, as the
server would issue it), whose registry tokens do not outlive it, and that a disabled key voids.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from huaweicloudsdkswr.v2 import CreateAuthorizationTokenRequest, CreateSecretRequest

from ferry.identity.temporary_login import temporary_password
from tests.support import leaks
from tests.support.images import make_image, push_image
from tests.support.regions import Regions, make_regions
from tests.support.server import ADMIN_PASSWORD, FerryServer
from tests.support.swr import AccessKey, assert_sdk_error, create_key, iam_token, sdk_client
from tests.support.sync_helpers import create_org, registry

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")

REGION = "cn-north-4"
ORG = "templogin"
IMAGE = f"{ORG}/app:v1"


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FerryServer]:
    regions: Regions = make_regions(tmp_path_factory.mktemp("temporary-login"), [REGION])
    try:
        server = regions[REGION]
        create_org(server, ORG)
        push_image(registry(server), f"{ORG}/app", "v1", make_image("temporary-login"))
        yield server
    finally:
        regions.stop()


@pytest.fixture(scope="module")
def key(region: FerryServer) -> AccessKey:
    return create_key(region, "admin")


def skopeo_login(
    server: FerryServer, username: str, password: str, auth_file: Path
) -> subprocess.CompletedProcess[str]:
    host = server.url.removeprefix("http://")
    return subprocess.run(
        [
            "skopeo",
            "login",
            "--tls-verify=false",
            "--authfile",
            str(auth_file),
            "-u",
            username,
            "--password-stdin",
            host,
        ],
        input=password,
        capture_output=True,
        text=True,
        timeout=60,
    )


def skopeo_inspect(server: FerryServer, auth_file: Path) -> subprocess.CompletedProcess[str]:
    host = server.url.removeprefix("http://")
    return subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--authfile", str(auth_file), f"docker://{host}/{IMAGE}"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_create_secret_gives_a_login_skopeo_uses(region: FerryServer, key: AccessKey, tmp_path: Path) -> None:
    answer = sdk_client(region, key).create_secret(CreateSecretRequest(projectname=REGION))
    host = region.url.removeprefix("http://")
    [(registry_host, auth)] = answer.auths.items()
    username, password = base64.b64decode(auth.auth).decode().split(":", 1)
    leaks.remember(password)
    assert registry_host == host and username == f"{REGION}@{key.ak}"
    assert answer.x_swr_dockerlogin == f"docker login -u {username} -p {password} {host}"
    expires = time.mktime(time.strptime(answer.x_swr_expireat, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 24 * 3600 - 120 < expires - time.time() <= 24 * 3600  # SWR's default: a day

    auth_file = tmp_path / "auth.json"
    logged_in = skopeo_login(region, username, password, auth_file)
    assert logged_in.returncode == 0, logged_in.stderr
    inspected = skopeo_inspect(region, auth_file)
    assert inspected.returncode == 0, inspected.stderr
    assert skopeo_login(region, username, password + "0", tmp_path / "bad.json").returncode != 0

    other = sdk_client(region, key).create_authorization_token(CreateAuthorizationTokenRequest())
    [(_host, token_auth)] = other.auths.items()
    leaks.remember(base64.b64decode(token_auth.auth).decode().split(":", 1)[1])
    assert other.x_swr_expireat

    # Another region's project, and a duration outside 15 minutes to 24 hours: refused.
    assert_sdk_error(
        lambda: sdk_client(region, key).create_secret(CreateSecretRequest(projectname="cn-east-3")),
        400,
        "SVCSTG.SWR.4001025",
    )
    url = f"{region.url}/v2/manage/utils/secret"
    token = iam_token(region, "admin", ADMIN_PASSWORD, REGION)
    for seconds in ("60", "86401", "soon"):
        refused = requests.post(
            url, params={"duration_seconds": seconds}, headers={"X-Auth-Token": token}, timeout=30
        )
        assert refused.status_code == 400 and refused.json()["error_code"], refused.text
    # With an IAM token (no key signed the call) it binds to the user's newest enabled key.
    made = requests.post(url, params={"duration_seconds": "900"}, headers={"X-Auth-Token": token}, timeout=30)
    assert made.status_code == 200, made.text
    leaks.remember(made.headers["X-Swr-Dockerlogin"].split(" -p ")[1].split(" ")[0])


def test_a_temporary_login_stops_at_its_expiry_and_its_tokens_with_it(
    region: FerryServer, key: AccessKey, tmp_path: Path
) -> None:
    # The credential the server issues for a login that ends in a few seconds.
    expire_at = int(time.time()) + 4
    username, password = f"{REGION}@{key.ak}", temporary_password(key.ak, key.sk, expire_at)
    leaks.remember(password)
    token = requests.get(
        f"{region.url}/v2/token",
        params={"service": "ferry", "scope": f"repository:{ORG}/app:pull"},
        auth=(username, password),
        timeout=30,
    )
    assert token.status_code == 200, token.text
    assert token.json()["expires_in"] <= 4  # not the usual 900 s: the token ends with the login

    auth_file = tmp_path / "auth.json"
    assert skopeo_login(region, username, password, auth_file).returncode == 0
    assert skopeo_inspect(region, auth_file).returncode == 0
    time.sleep(max(0.0, expire_at - time.time()) + 0.5)
    late = skopeo_inspect(region, auth_file)
    assert late.returncode != 0 and "unauthorized" in late.stderr.lower(), late.stderr
    assert skopeo_login(region, username, password, tmp_path / "late.json").returncode != 0
    # A credential past its expiry is refused whatever its signature.
    past = temporary_password(key.ak, key.sk, int(time.time()) - 1)
    assert requests.get(f"{region.url}/v2/token", auth=(username, past), timeout=30).status_code == 401


def test_a_disabled_key_voids_its_temporary_logins(region: FerryServer, tmp_path: Path) -> None:
    own = create_key(region, "admin")
    answer = sdk_client(region, own).create_secret(CreateSecretRequest(projectname=REGION))
    [(_host, auth)] = answer.auths.items()
    username, password = base64.b64decode(auth.auth).decode().split(":", 1)
    leaks.remember(password)
    assert username == f"{REGION}@{own.ak}"  # bound to the key the call was signed with
    assert skopeo_login(region, username, password, tmp_path / "a.json").returncode == 0
    region.cli("key", "disable", own.ak)
    assert skopeo_login(region, username, password, tmp_path / "b.json").returncode != 0
