"""HTTPS: `ferry dev --tls` (a local CA, regions and their peers on HTTPS) and a plain-HTTP Ferry
behind an nginx TLS proxy whose forwarded headers it trusts, with no FERRY_PUBLIC_URL."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkswr.v2 import ListNamespacesRequest, SwrClient

from ferry.cli.tls import DevCA, ensure_dev_ca, issue_server_certificate
from tests.support import leaks
from tests.support.registry_client import parse_challenge
from tests.support.server import ADMIN_PASSWORD, FerryServer, free_port, free_port_run, stop_process
from tests.support.swr import create_key
from tests.support.sync_helpers import FINAL, image_layout, wait_for

A, B = "cn-north-4", "cn-east-3"


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"skopeo {' '.join(args)} failed:\n{result.stderr[-4000:]}"
    return result


def pushed_and_pulled(tmp: Path, host: str, image: str, cert_dir: Path, user: str, password: str) -> str:
    """Pushes a small layout to `host` and pulls it back, verifying the server's certificate
    against the CA in `cert_dir`; the digest the pull got."""
    layout = image_layout(tmp / "push", [(f"{image}-layer", 4096)])
    creds = f"{user}:{password}"
    skopeo(
        "copy", "--preserve-digests", "--dest-tls-verify=true", f"--dest-cert-dir={cert_dir}",
        f"--dest-creds={creds}", f"oci:{layout.root}:{layout.tag}", f"docker://{host}/{image}",
    )  # fmt: skip
    pulled = pulled_digest(tmp / "pull", host, image, cert_dir, creds)
    assert pulled == layout.digest
    return layout.digest


def pulled_digest(dest: Path, host: str, image: str, cert_dir: Path, creds: str) -> str:
    skopeo(
        "copy", "--preserve-digests", "--src-tls-verify=true", f"--src-cert-dir={cert_dir}",
        f"--src-creds={creds}", f"docker://{host}/{image}", f"oci:{dest}:pulled",
    )  # fmt: skip
    index = json.loads((dest / "index.json").read_text())
    return str(index["manifests"][0]["digest"])


# --- ferry dev --tls ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("devtls")
    base = free_port_run(2)
    log = (data / "dev.out").open("wb")
    command = ["dev", "--tls", "--regions", f"{A},{B}", "--base-port", str(base), "--data", str(data)]
    process = subprocess.Popen(
        [sys.executable, "-m", "ferry", *command], stdout=log, stderr=subprocess.STDOUT
    )
    described = data / "dev.json"  # written once every region answers /readyz
    deadline = time.monotonic() + 240
    while not described.exists() and time.monotonic() < deadline:
        assert process.poll() is None, (data / "dev.out").read_text()
        time.sleep(0.2)
    assert described.exists(), (data / "dev.out").read_text()
    description: dict[str, Any] = json.loads(described.read_text()) | {"file": str(described), "data": data}
    leaks.remember(description["admin"]["password"], description["admin"]["sk"])
    yield description
    stop_process(process, grace=60)


def _token(endpoint: str, admin: dict[str, str], ca: str) -> str:
    user = {"name": admin["user"], "password": admin["password"]}
    body: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}
    response = requests.post(f"{endpoint}/v3/auth/tokens", json=body, timeout=60, verify=ca)
    assert response.status_code == 201, response.text
    return response.headers["X-Subject-Token"]


def test_dev_tls_serves_https_with_its_own_ca(dev: dict[str, Any]) -> None:
    ca = Path(dev["ca_file"])
    assert ca.is_file() and ca.parent == dev["data"] / "ca"
    key = dev["data"] / "ca-key" / "ca.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert not list(ca.parent.glob("*.key"))  # the CA's directory is a clean cert dir
    for region in dev["regions"]:
        assert region["endpoint"].startswith("https://127.0.0.1:")
        assert requests.get(region["endpoint"] + "/readyz", verify=str(ca), timeout=30).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(region["endpoint"] + "/readyz", timeout=30)  # the system does not trust it
        plain = region["endpoint"].replace("https://", "http://")
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(plain + "/readyz", timeout=30)


def test_skopeo_push_pull_verified_and_sync_over_https(dev: dict[str, Any], tmp_path: Path) -> None:
    ca, admin = dev["ca_file"], dev["admin"]
    regions = {r["id"]: r["endpoint"] for r in dev["regions"]}
    tokens = {region: _token(endpoint, admin, ca) for region, endpoint in regions.items()}
    for region, endpoint in regions.items():
        created = requests.post(
            f"{endpoint}/v2/manage/namespaces",
            json={"namespace": "tls"},
            headers={"X-Auth-Token": tokens[region]},
            timeout=60,
            verify=ca,
        )
        assert created.status_code == 201, created.text
    host_a = regions[A].removeprefix("https://")
    cert_dir = Path(ca).parent
    digest = pushed_and_pulled(
        tmp_path / "a", host_a, "tls/app:v1", cert_dir, admin["user"], admin["password"]
    )

    # `ferry sync now` reads dev.json (and its CA); region A copies to B over HTTPS.
    synced = subprocess.run(
        [
            sys.executable,
            "-m",
            "ferry",
            "sync",
            "now",
            "tls/app",
            "v1",
            "--to",
            f"{B}/tls",
            "--dev",
            dev["file"],
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert synced.returncode == 0, synced.stdout + synced.stderr

    def finished() -> list[dict[str, Any]] | None:
        response = requests.get(
            f"{regions[A]}/v2/manage/namespaces/tls/repos/app/sync_job",
            headers={"X-Auth-Token": tokens[A]},
            params={"filter": "limit::100|offset::0"},
            timeout=60,
            verify=ca,
        )
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found if found and all(job["status"] in FINAL for job in found) else None

    jobs = wait_for(finished, "the sync job A→B")
    assert [job["status"] for job in jobs] == ["success"], jobs
    host_b = regions[B].removeprefix("https://")
    creds = f"{admin['user']}:{admin['password']}"
    assert pulled_digest(tmp_path / "b", host_b, "tls/app:v1", cert_dir, creds) == digest


def test_python_dxf_pushes_and_pulls_over_verified_https(dev: dict[str, Any], tmp_path: Path) -> None:
    """python-dxf speaks HTTPS only (credentials never over plain HTTP): with --tls it works."""
    dxf = pytest.importorskip("dxf")
    admin, ca = dev["admin"], dev["ca_file"]
    endpoint = dev["regions"][0]["endpoint"]
    requests.post(
        f"{endpoint}/v2/manage/namespaces",
        json={"namespace": "dxf"},
        headers={"X-Auth-Token": _token(endpoint, admin, ca)},
        timeout=60,
        verify=ca,
    )  # 201, or 409 when another test made it

    def login(client: Any, response: requests.Response) -> None:
        # python-dxf asks again only on 401; Ferry answers a token short of push with 403 (as
        # oras-py needs), so ask for both actions at once, as python-dxf's docs suggest.
        client.authenticate(admin["user"], admin["password"], actions=["pull", "push"], response=response)

    client = dxf.DXF(endpoint.removeprefix("https://"), "dxf/blobs", login, tlsverify=ca)
    config, layer = tmp_path / "config.json", tmp_path / "layer.bin"
    config.write_text('{"architecture": "amd64", "os": "linux"}')
    layer.write_bytes(bytes(range(256)) * 64)
    digests = [client.push_blob(str(config)), client.push_blob(str(layer))]
    client.set_alias("v1", *digests)
    assert client.get_alias("v1") == digests
    assert b"".join(client.pull_blob(digests[1])) == layer.read_bytes()


# --- behind an nginx TLS proxy ------------------------------------------------------------------


class Proxy:
    """nginx terminating TLS on a free loopback port in front of one plain-HTTP Ferry."""

    def __init__(self, root: Path, upstream: int, ca: DevCA) -> None:
        self.root, self.port = root, free_port()
        issued = issue_server_certificate(ca, root / "tls", "proxy")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (root / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        temp = root / "tmp"
        self.config = root / "nginx.conf"
        self.config.write_text(
            f"worker_processes 1;\npid {root / 'nginx.pid'};\nerror_log {root / 'error.log'} warn;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n  access_log off;\n  client_body_temp_path {temp / 'body'};\n"
            f"  proxy_temp_path {temp / 'proxy'};\n  fastcgi_temp_path {temp / 'fastcgi'};\n"
            f"  uwsgi_temp_path {temp / 'uwsgi'};\n  scgi_temp_path {temp / 'scgi'};\n"
            f"  server {{\n    listen 127.0.0.1:{self.port} ssl;\n"
            f"    ssl_certificate {issued.cert_file};\n    ssl_certificate_key {issued.key_file};\n"
            "    client_max_body_size 0;\n    proxy_request_buffering off;\n    proxy_buffering off;\n"
            "    proxy_http_version 1.1;\n"
            f"    location / {{\n      proxy_pass http://127.0.0.1:{upstream};\n"
            "      proxy_set_header Host $http_host;\n"
            "      proxy_set_header X-Forwarded-Proto $scheme;\n"
            "      proxy_set_header X-Forwarded-Host $http_host;\n"
            "      proxy_set_header X-Forwarded-For $remote_addr;\n    }\n  }\n}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, ca_file: str) -> Proxy:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        log = (self.root / "nginx.out").open("ab")
        self.process = subprocess.Popen(
            [binary, "-p", str(self.root), "-c", str(self.config), "-g", "daemon off;"],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.root / "error.log").read_text()
            try:
                if requests.get(self.url + "/readyz", verify=ca_file, timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("nginx did not proxy /readyz")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # nginx's graceful stop, by PID
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FerryServer, Proxy, str]]:
    root = tmp_path_factory.mktemp("proxied")
    ca = ensure_dev_ca(DevCA.at(root / "test-ca"))
    server = FerryServer(root / "ferry", free_port(), env={"FERRY_TRUSTED_PROXIES": '["127.0.0.1/32"]'})
    server.env.pop("FERRY_PUBLIC_URL", None)
    server.start()
    proxy = Proxy(root / "nginx", server.port, ca)
    try:
        yield server, proxy.start(str(ca.cert_file)), str(ca.cert_file)
    finally:
        proxy.stop()
        server.stop()


def _realm(response: requests.Response | http.client.HTTPResponse) -> str:
    return parse_challenge(response.headers["WWW-Authenticate"])["realm"]


def test_skopeo_through_the_proxy_with_forwarded_realm(
    proxied: tuple[FerryServer, Proxy, str], tmp_path: Path
) -> None:
    server, proxy, ca = proxied
    server.org("px")
    challenged = requests.get(proxy.url + "/v2/px/app/manifests/v1", verify=ca, timeout=30)
    assert challenged.status_code == 401
    assert _realm(challenged) == f"{proxy.url}/v2/token"  # https and the proxy's host, forwarded
    host = proxy.url.removeprefix("https://")
    pushed_and_pulled(tmp_path, host, "px/app:v1", Path(ca).parent, "admin", ADMIN_PASSWORD)

    # An upload's Location is relative: it resolves against the proxy URL the client used.
    token = requests.get(
        f"{proxy.url}/v2/token",
        params={"service": "cn-north-4", "scope": "repository:px/app:pull,push"},
        auth=("admin", ADMIN_PASSWORD),
        verify=ca,
        timeout=30,
    ).json()["token"]
    started = requests.post(
        f"{proxy.url}/v2/px/app/blobs/uploads/",
        headers={"Authorization": f"Bearer {token}"},
        verify=ca,
        timeout=30,
    )
    assert started.status_code == 202, started.text
    assert started.headers["Location"].startswith("/v2/px/app/blobs/uploads/")


def _direct(server: FerryServer, source: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    """GET a challenge straight from Ferry, from a chosen loopback address."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30, source_address=(source, 0))
    connection.request("GET", "/v2/px/app/tags/list", headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_forwarded_headers_count_only_from_a_trusted_proxy(proxied: tuple[FerryServer, Proxy, str]) -> None:
    server, _proxy, _ca = proxied
    spoofed = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    # 127.0.0.2 is loopback too, but not the trusted proxy (127.0.0.1/32): its headers are ignored.
    untrusted = _direct(server, "127.0.0.2", spoofed)
    assert untrusted.status == 401
    assert _realm(untrusted) == f"http://127.0.0.1:{server.port}/v2/token"
    rfc7239 = {"Forwarded": 'for=10.1.2.3;proto=https;host="registry.example:8443"'}
    assert _realm(_direct(server, "127.0.0.2", rfc7239)) == f"http://127.0.0.1:{server.port}/v2/token"
    # From the trusted address, both spellings are believed; a host that could break out is not.
    assert _realm(_direct(server, "127.0.0.1", spoofed)) == "https://evil.example/v2/token"
    assert _realm(_direct(server, "127.0.0.1", rfc7239)) == "https://registry.example:8443/v2/token"
    broken = {"X-Forwarded-Host": 'evil.example/"x', "X-Forwarded-Proto": "javascript"}
    assert _realm(_direct(server, "127.0.0.1", broken)) == f"http://127.0.0.1:{server.port}/v2/token"


def _signed(ak: str, sk: str, host: str, project: str | None) -> dict[str, str]:
    """Headers of GET /v2/manage/namespaces signed by the SDK's own signer for `host`."""
    headers = {
        "Content-Type": "application/json",
        "X-Sdk-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
    }
    if project is not None:
        headers["X-Project-Id"] = project
    request = SdkRequest(
        "GET", "https", host, "/v2/manage/namespaces", query_params=[], header_params=headers, body=b""
    )
    signed = Signer(BasicCredentials(ak, sk)).sign(request)
    return dict(signed.header_params) | {"Host": host}


def test_signed_sdk_calls_through_the_proxy_and_no_replay(proxied: tuple[FerryServer, Proxy, str]) -> None:
    server, proxy, ca = proxied
    server.org("pxsdk")
    key = create_key(server, "admin")
    config = HttpConfig.get_default_config()
    config.timeout, config.ssl_ca_cert = (5, 30), ca
    client = (
        SwrClient.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(key.ak, key.sk, key.project_id))
        .with_endpoints([proxy.url])
        .build()
    )
    # Signed for the proxy's host (which Ferry's own settings do not name), with the project.
    listed = client.list_namespaces(ListNamespacesRequest())
    assert "pxsdk" in {n.name for n in listed.namespaces or []}

    # A request signed for another region's host, sent to this proxy with that Host (as it must
    # be, for the signature to hold): without the project it is refused, and with another
    # region's project too.
    url = proxy.url + "/v2/manage/namespaces"
    for project, refusal in ((None, "signed for another host"), ("0" * 32, "signed for another project")):
        headers = _signed(key.ak, key.sk, "swr.other-region.example", project)
        replayed = requests.get(url, headers=headers, verify=ca, timeout=30)
        assert replayed.status_code == 401, replayed.text
        assert refusal in replayed.json()["error_msg"]
    same = requests.get(
        url, headers=_signed(key.ak, key.sk, proxy.url[8:], key.project_id), verify=ca, timeout=30
    )
    assert same.status_code == 200, same.text  # the same construction, for this proxy, is accepted


# --- ferry serve with a certificate -------------------------------------------------------------


def _serve(data: Path, port: int, *args: str) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "FERRY_DATA_DIR": str(data),
        "FERRY_PORT": str(port),
        "FERRY_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    data.mkdir(parents=True, exist_ok=True)
    log = (data / "server.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "ferry", "serve", *args], env=env, stdout=log, stderr=log)


def test_serve_workers_over_https_and_a_half_given_pair_is_refused(tmp_path: Path) -> None:
    ca = ensure_dev_ca(DevCA.at(tmp_path / "ca"))
    issued = issue_server_certificate(ca, tmp_path / "tls", "serve")
    port = free_port()
    process = _serve(
        tmp_path / "data",
        port,
        "--workers",
        "2",
        "--tls-cert",
        str(issued.cert_file),
        "--tls-key",
        str(issued.key_file),
    )
    try:
        url = f"https://127.0.0.1:{port}/readyz"
        wait_for(lambda: _ready(url, str(ca.cert_file), process), "ferry serve --workers 2 over HTTPS")
        for _ in range(6):  # new connections, spread over both processes; each has the context
            assert requests.get(url, verify=str(ca.cert_file), timeout=30).status_code == 200
        printed = (tmp_path / "data" / "server.log").read_text()
        assert f"at https://127.0.0.1:{port}" in printed
        assert f"skopeo login 127.0.0.1:{port}" in printed  # no --tls-verify=false with TLS on
    finally:
        stop_process(process)
    half = _serve(tmp_path / "half", free_port(), "--tls-cert", str(issued.cert_file))
    assert half.wait(60) == 2
    assert (
        "FERRY_TLS_CERT_FILE is set without FERRY_TLS_KEY_FILE"
        in (tmp_path / "half" / "server.log").read_text()
    )
    missing = _serve(
        tmp_path / "missing",
        free_port(),
        "--tls-cert",
        str(issued.cert_file),
        "--tls-key",
        str(tmp_path / "nope.key"),
    )
    assert missing.wait(60) == 2
    assert (
        f"FERRY_TLS_KEY_FILE: cannot read {tmp_path / 'nope.key'}"
        in (tmp_path / "missing" / "server.log").read_text()
    )


def _ready(url: str, ca: str, process: subprocess.Popen[bytes]) -> bool | None:
    assert process.poll() is None, "ferry serve exited"
    try:
        return requests.get(url, verify=ca, timeout=2).status_code == 200 or None
    except requests.RequestException:
        return None
