"""AK/SK request signatures (SWR-API.md sections 4 and 6).

Part one checks the pure verifier in ferry.identity.signing against signatures made by the
official SDK's own signer (huaweicloudsdkcore 3.1.219). Part two sends signed requests to a real
server process and tampers with them one way at a time: every tampered request must be refused
with 401 and APIGW's error body, and the untampered request must still pass. Part three covers
the lock after five consecutive bad signatures and disabled or deleted keys.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkswr.v2 import (
    CreateNamespaceRequest,
    CreateNamespaceRequestBody,
    ListNamespacesRequest,
    ShowNamespaceRequest,
    SwrClient,
)

from ferry.config import Settings
from ferry.identity import signing
from tests.support.names import unique
from tests.support.regions import ACCESS_KEY, PROJECT_ID, SECRET_KEY, make_regions
from tests.support.server import FerryServer, free_port
from tests.support.swr import assert_sdk_error, endpoint_client
from tests.support.swr import create_key as create_access_key

SDK_DATE = "%Y%m%dT%H%M%SZ"
USER_AGENT = "huaweicloud-usdk-python/3.0; os/Linux; python/3.11 impl/CPython; app/ferry-tests"
AUTH_PREFIX = "Incorrect IAM authentication information"
LOCKED = "AK access failed to reach the limit,forbidden"


def sdk_date(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime(SDK_DATE)


def sdk_sign(
    ak: str,
    sk: str,
    method: str,
    host: str,
    resource_path: str,
    query: list[tuple[str, Any]] | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    date: str | None = None,
) -> SdkRequest:
    """A request signed by the SDK's own signer, shaped as the SWR client sends it.

    `resource_path` is what goes on the wire: path values already percent-encoded the way the
    SDK does it (`quote(v, safe='')`, so `$` is `%24`). After signing, `request.uri` is the
    path and the query exactly as the SDK sends them.
    """
    header_params = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
    header_params |= headers or {}
    header_params["X-Sdk-Date"] = date or sdk_date()
    request = SdkRequest(
        method=method,
        schema="http",
        host=host,
        resource_path=resource_path,
        query_params=list(query or []),
        header_params=header_params,
        body=body,
    )
    return Signer(BasicCredentials(ak, sk)).sign(request)


def wire_query(request: SdkRequest) -> str:
    return request.uri.partition("?")[2]


# ---------------------------------------------------------------------------------------------
# (a) The pure verifier against the SDK's signatures


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    query: tuple[tuple[str, Any], ...] = ()
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    # Set when the canonical request matches the SDK's but Ferry refuses what it leaves unsigned.
    refused: str = ""


CASES = [
    Case(
        "get-with-filter",
        "GET",
        "/v2/manage/namespaces/ns1/repos/app/tags",
        (("filter", "limit::10|offset::0|order::desc"),),
    ),
    Case(
        "get-unsorted-typed-and-repeated-query",
        "GET",
        "/v2/manage/repos",
        (
            ("offset", 0),
            ("namespace", "ns1"),
            ("is_public", True),
            ("tag", ["v2", "v1"]),
            ("limit", 10),
            ("name", ""),
        ),
    ),
    Case(
        "get-query-needing-encoding",
        "GET",
        "/v2/manage/repos",
        (("name", "a b~c/d=e&f"), ("category", "数据库"), ("filter", "name::x*|limit::1")),
    ),
    Case(
        "post-json-body",
        "POST",
        "/v2/manage/namespaces",
        body=json.dumps({"namespace": "ns1"}).encode(),
        headers=(("X-Project-Id", "proj123"),),
    ),
    Case(
        "delete-with-body-and-dollar",
        "DELETE",
        "/v2/manage/namespaces/ns1/repos/grp%24app/sync_repo",
        body=json.dumps({"remoteRegionId": "cn-east-3", "remoteNamespace": "ns2"}).encode(),
        headers=(("X-Project-Id", "proj123"),),
    ),
    Case("repository-with-dollar", "GET", "/v2/manage/namespaces/ns1/repos/grp%24sub%24app"),
    Case("repository-with-percent-2f", "GET", "/v2/manage/namespaces/ns1/repos/grp%2Fapp/tags/v1"),
    # The SDK sends a repository value "a%24b" as "a%2524b": decoded once, it is "a%24b", not "a$b".
    Case("percent-encoded-percent", "GET", "/v2/manage/namespaces/ns1/repos/a%2524b/tags/100%25"),
    Case("root-empty-query", "GET", "/"),
    Case("trailing-slash", "GET", "/v2/manage/namespaces/"),
    Case(
        "unsigned-payload-for-non-json",
        "PUT",
        "/v2/manage/namespaces/ns1/upload",
        body=b"\x00\x01 not json",
        headers=(("Content-Type", "application/octet-stream"),),
        refused="not the body's hash",  # UNSIGNED-PAYLOAD: the body could be swapped on replay
    ),
    Case(
        "security-token-for-temporary-keys",
        "PATCH",
        "/v2/manage/namespaces/ns1/repos/app",
        body=b'{"is_public": true}',
        headers=(("X-Security-Token", "temporary-token"), ("X-Project-Id", "proj123")),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_verifier_accepts_what_the_sdk_signs(case: Case) -> None:
    request = sdk_sign(
        "MYAK",
        "MYSK",
        case.method,
        "127.0.0.1:18765",
        case.path,
        list(case.query),
        case.body,
        dict(case.headers),
    )
    headers = {name.lower(): value for name, value in request.header_params.items()}
    auth = signing.parse_authorization(headers["authorization"])
    assert auth.access_key == "MYAK"
    assert list(auth.signed_headers) == sorted(n for n in headers if n != "authorization")

    # The canonical request is byte for byte the SDK's ...
    sdk_canonical = Signer(BasicCredentials("MYAK", "MYSK"))._process_canonical_request(
        request, list(auth.signed_headers)
    )
    ours = signing.canonical_request(
        case.method, case.path, wire_query(request), headers, auth.signed_headers, case.body
    )
    assert ours == sdk_canonical
    if case.refused:
        with pytest.raises(signing.SignatureError, match=case.refused):
            signing.verify(auth, "MYSK", case.method, case.path, wire_query(request), headers, case.body)
        return
    # ... so the signature verifies with the right key and fails with any other.
    signing.verify(auth, "MYSK", case.method, case.path, wire_query(request), headers, case.body)
    with pytest.raises(signing.SignatureError):
        signing.verify(auth, "MYSK2", case.method, case.path, wire_query(request), headers, case.body)


def test_the_wire_query_is_the_canonical_query() -> None:
    request = sdk_sign(
        "AK", "SK", "GET", "h:1", "/v2/manage/repos", [("filter", "limit::10|offset::0|order::desc")]
    )
    assert wire_query(request) == "filter=limit%3A%3A10%7Coffset%3A%3A0%7Corder%3A%3Adesc"
    assert signing.canonical_query(wire_query(request)) == wire_query(request)
    # Order on the wire does not matter, blank values are kept, repeated keys are sorted.
    assert signing.canonical_query("b=2&a=&b=1&c=%7E") == "a=&b=1&b=2&c=~"
    assert signing.canonical_query("") == ""


def test_canonical_uri_rules() -> None:
    assert signing.canonical_uri("/v2/manage/regions") == "/v2/manage/regions/"
    assert signing.canonical_uri("/v2/manage/regions/") == "/v2/manage/regions/"
    assert signing.canonical_uri("/") == "/"
    assert (
        signing.canonical_uri("/v2/manage/namespaces/ns1/repos/grp%24app/sync_repo")
        == "/v2/manage/namespaces/ns1/repos/grp%24app/sync_repo/"
    )
    # A raw %2F is a separator after decoding, as the SDK treats it.
    assert signing.canonical_uri("/ns/repos/grp%2Fapp") == "/ns/repos/grp/app/"
    # The path is decoded once only: an encoded "%" is not a second escape.
    assert signing.canonical_uri("/ns/repos/a%2524b") == "/ns/repos/a%2524b/"
    assert signing.canonical_uri("/ns/repos/a%2524b") != signing.canonical_uri("/ns/repos/a%24b")


def test_trailing_slash_does_not_change_the_signature() -> None:
    request = sdk_sign("AK", "SK", "GET", "h:1", "/v2/manage/namespaces")
    headers = {name.lower(): value for name, value in request.header_params.items()}
    auth = signing.parse_authorization(headers["authorization"])
    signing.verify(auth, "SK", "GET", "/v2/manage/namespaces/", "", headers, b"")
    with pytest.raises(signing.SignatureError):
        signing.verify(auth, "SK", "GET", "/v2/manage/namespaces/x", "", headers, b"")


def test_empty_body_hashes_as_the_empty_string() -> None:
    canonical = signing.canonical_request("GET", "/", "", {"host": "h"}, ("host",), b"")
    assert canonical == f"GET\n/\n\nhost:h\n\nhost\n{signing.EMPTY_SHA256}"
    assert signing.EMPTY_SHA256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_date_window_is_fifteen_minutes_both_ways() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    for offset in (timedelta(0), timedelta(minutes=14, seconds=59), -timedelta(minutes=14, seconds=59)):
        signing.check_date(sdk_date(now + offset), now)
    for offset in (timedelta(minutes=15, seconds=1), -timedelta(minutes=15, seconds=1), timedelta(days=1)):
        with pytest.raises(signing.SignatureError):
            signing.check_date(sdk_date(now + offset), now)
    for bad in (None, "", "2026-01-01T12:00:00Z", "20260101T120000", "garbage"):
        with pytest.raises(signing.SignatureError):
            signing.check_date(bad, now)


SIG = "a" * 64
MALFORMED = {
    "algorithm-only": "SDK-HMAC-SHA256",
    "access-only": "SDK-HMAC-SHA256 Access=AK",
    "no-signature": "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date",
    "short-signature": f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature={SIG[:63]}",
    "non-hex-signature": f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature={'z' * 64}",
    "empty-access": f"SDK-HMAC-SHA256 Access=, SignedHeaders=host;x-sdk-date, Signature={SIG}",
    "no-space-after-algorithm": f"SDK-HMAC-SHA256Access=AK, SignedHeaders=host, Signature={SIG}",
    "other-algorithm": f"SDK-HMAC-SM3 Access=AK, SignedHeaders=host;x-sdk-date, Signature={SIG}",
    "v11-credential": f"V11-HMAC-SHA256 Credential=AK/20260101/r/swr, SignedHeaders=host, Signature={SIG}",
    "bearer": "Bearer abc.def.ghi",
    "garbage": "%%% ;;, === \t",
}


def test_parse_authorization_accepts_the_sdk_header() -> None:
    parsed = signing.parse_authorization(
        f"SDK-HMAC-SHA256 Access=MYAK, SignedHeaders=content-type;host;x-sdk-date, Signature={SIG.upper()}"
    )
    assert parsed == signing.SignedAuthorization("MYAK", ("content-type", "host", "x-sdk-date"), SIG)


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_parse_authorization_refuses_malformed_headers(header: str) -> None:
    with pytest.raises(signing.SignatureError):
        signing.parse_authorization(header)


# ---------------------------------------------------------------------------------------------
# (b) A running server refuses every tampered request


@dataclass(frozen=True)
class Key:
    ak: str
    sk: str
    project_id: str


def create_key(server: FerryServer, user: str = "admin") -> Key:
    created = create_access_key(server, user)
    return Key(created.ak, created.sk, created.project_id)


def sign_for(
    server: FerryServer,
    key: Key,
    method: str,
    path: str,
    query: list[tuple[str, Any]] | None = None,
    body: Any = None,
    *,
    date: str | None = None,
    sk: str | None = None,
) -> SdkRequest:
    raw = b"" if body is None else json.dumps(body).encode()
    return sdk_sign(
        key.ak,
        sk or key.sk,
        method,
        server.host,
        path,
        query,
        raw,
        {"X-Project-Id": key.project_id},
        date,
    )


def send(
    server: FerryServer,
    request: SdkRequest,
    *,
    path: str | None = None,
    query: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str | None] | None = None,
) -> requests.Response:
    """Sends a signed request as signed, or with one part replaced (a header None: removed)."""
    target = path if path is not None else request.resource_path
    query = wire_query(request) if query is None else query
    url = server.url + target + (f"?{query}" if query else "")
    all_headers = dict(request.header_params) | (headers or {})
    all_headers = {k: v for k, v in all_headers.items() if v is not None}
    data = request.body if body is None else body
    return requests.request(request.method, url, headers=all_headers, data=data or None, timeout=30)


def assert_refused(response: requests.Response, message: str = "") -> dict[str, Any]:
    assert response.status_code == 401, response.text
    assert response.headers.get("X-Request-Id")
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error_code"] == "APIGW.0301"
    assert body["error_msg"].startswith(AUTH_PREFIX)
    assert message in body["error_msg"]
    return body


@pytest.fixture(scope="module")
def key(ferry_server: FerryServer) -> Key:
    return create_key(ferry_server)


def namespaces(server: FerryServer, key: Key) -> set[str]:
    response = send(server, sign_for(server, key, "GET", "/v2/manage/namespaces"))
    assert response.status_code == 200, response.text
    return {n["name"] for n in response.json()["namespaces"]}


def create_namespace(server: FerryServer, key: Key, name: str) -> None:
    response = send(server, sign_for(server, key, "POST", "/v2/manage/namespaces", body={"namespace": name}))
    assert response.status_code == 201, response.text


def test_sdk_client_works_with_the_key(ferry_server: FerryServer, key: Key) -> None:
    def client(sk: str) -> SwrClient:
        return endpoint_client(ferry_server.url, key.ak, sk, key.project_id)

    name = unique("sdk")
    client(key.sk).create_namespace(CreateNamespaceRequest(body=CreateNamespaceRequestBody(namespace=name)))
    shown = client(key.sk).show_namespace(ShowNamespaceRequest(namespace=name))
    assert shown.name == name
    assert_sdk_error(lambda: client(key.sk + "x").list_namespaces(ListNamespacesRequest()), 401, "APIGW.0301")
    listed = client(key.sk).list_namespaces(ListNamespacesRequest())
    assert name in {n.name for n in listed.namespaces}


def test_body_changed_after_signing(ferry_server: FerryServer, key: Key) -> None:
    signed_name, sent_name = unique("signed"), unique("sent")
    request = sign_for(ferry_server, key, "POST", "/v2/manage/namespaces", body={"namespace": signed_name})
    assert_refused(
        send(ferry_server, request, body=json.dumps({"namespace": sent_name}).encode()),
        "verify aksk signature fail",
    )
    assert sent_name not in namespaces(ferry_server, key)
    assert send(ferry_server, request).status_code == 201
    assert signed_name in namespaces(ferry_server, key)


def test_body_dropped_after_signing(ferry_server: FerryServer, key: Key) -> None:
    request = sign_for(ferry_server, key, "POST", "/v2/manage/namespaces", body={"namespace": unique("n")})
    response = send(ferry_server, request, body=b"", headers={"Content-Length": "0"})
    assert_refused(response, "verify aksk signature fail")
    assert send(ferry_server, request).status_code == 201


def test_path_changed_after_signing(ferry_server: FerryServer, key: Key) -> None:
    ns = unique("path")
    create_namespace(ferry_server, key, ns)
    repo = {"repository": "grp/app", "is_public": False}
    made = send(
        ferry_server, sign_for(ferry_server, key, "POST", f"/v2/manage/namespaces/{ns}/repos", body=repo)
    )
    assert made.status_code == 200, made.text
    request = sign_for(ferry_server, key, "GET", f"/v2/manage/namespaces/{ns}/repos/grp%24app")
    # The same repository, spelled with %2F instead of %24: a different canonical URI.
    response = send(ferry_server, request, path=f"/v2/manage/namespaces/{ns}/repos/grp%2Fapp")
    assert_refused(response, "verify aksk signature fail")
    response = send(ferry_server, request)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "grp/app"


def test_query_changed_after_signing(ferry_server: FerryServer, key: Key) -> None:
    request = sign_for(ferry_server, key, "GET", "/v2/manage/repos", [("filter", "limit::10|offset::0")])
    tampered = "filter=limit%3A%3A1000%7Coffset%3A%3A0"
    assert_refused(send(ferry_server, request, query=tampered), "verify aksk signature fail")
    assert_refused(send(ferry_server, request, query=wire_query(request) + "&extra=1"))
    assert_refused(send(ferry_server, request, query=""))
    response = send(ferry_server, request)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Range"].startswith("0-")


@pytest.mark.parametrize(
    "minutes", [-16, -60 * 24, 16, 60 * 24], ids=["16m-past", "1d-past", "16m-future", "1d-future"]
)
def test_date_outside_the_window(ferry_server: FerryServer, key: Key, minutes: int) -> None:
    date = sdk_date(datetime.now(UTC) + timedelta(minutes=minutes))
    request = sign_for(ferry_server, key, "GET", "/v2/manage/namespaces", date=date)
    assert_refused(send(ferry_server, request), "verify aksk signature fail")
    namespaces(ferry_server, key)  # the key itself is fine (and its failure count is reset)


@pytest.mark.parametrize("minutes", [-14, 14], ids=["14m-past", "14m-future"])
def test_date_inside_the_window(ferry_server: FerryServer, key: Key, minutes: int) -> None:
    date = sdk_date(datetime.now(UTC) + timedelta(minutes=minutes))
    response = send(ferry_server, sign_for(ferry_server, key, "GET", "/v2/manage/namespaces", date=date))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "date", [None, "", "2026-01-01T00:00:00Z", "notadate"], ids=["absent", "empty", "iso", "garbage"]
)
def test_date_missing_or_unparseable(ferry_server: FerryServer, key: Key, date: str | None) -> None:
    request = sign_for(ferry_server, key, "GET", "/v2/manage/namespaces")
    assert_refused(send(ferry_server, request, headers={"X-Sdk-Date": date}))
    namespaces(ferry_server, key)


def test_wrong_secret_key(ferry_server: FerryServer, key: Key) -> None:
    name = unique("wrongsk")
    request = sign_for(
        ferry_server, key, "POST", "/v2/manage/namespaces", body={"namespace": name}, sk=key.sk[:-1] + "#"
    )
    assert_refused(send(ferry_server, request), "verify aksk signature fail")
    assert name not in namespaces(ferry_server, key)


def test_unknown_access_key(ferry_server: FerryServer, key: Key) -> None:
    stranger = Key("NOSUCHAK" + uuid.uuid4().hex[:12].upper(), key.sk, key.project_id)
    assert_refused(
        send(ferry_server, sign_for(ferry_server, stranger, "GET", "/v2/manage/namespaces")), "ak not exist"
    )


def test_replay_against_another_path(ferry_server: FerryServer, key: Key) -> None:
    victim, target = unique("victim"), unique("target")
    create_namespace(ferry_server, key, victim)
    create_namespace(ferry_server, key, target)
    delete_target = sign_for(ferry_server, key, "DELETE", f"/v2/manage/namespaces/{target}")
    assert send(ferry_server, delete_target).status_code == 204
    assert_refused(
        send(ferry_server, delete_target, path=f"/v2/manage/namespaces/{victim}"),
        "verify aksk signature fail",
    )
    left = namespaces(ferry_server, key)
    assert victim in left
    assert target not in left


def test_replay_with_another_method(ferry_server: FerryServer, key: Key) -> None:
    ns = unique("method")
    create_namespace(ferry_server, key, ns)
    show = sign_for(ferry_server, key, "GET", f"/v2/manage/namespaces/{ns}")
    show.method = "DELETE"
    assert_refused(send(ferry_server, show))
    assert ns in namespaces(ferry_server, key)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Project-Id", "someone-elses-project"),
        ("Content-Type", "application/json;charset=utf-8"),
        ("User-Agent", "curl/8.0"),
        ("Host", "evil.example:80"),
    ],
    ids=["x-project-id", "content-type", "user-agent", "host"],
)
def test_signed_header_changed(ferry_server: FerryServer, key: Key, header: str, value: str) -> None:
    request = sign_for(ferry_server, key, "GET", "/v2/manage/namespaces")
    assert_refused(send(ferry_server, request, headers={header: value}), "verify aksk signature fail")
    assert send(ferry_server, request).status_code == 200


def test_signed_header_removed(ferry_server: FerryServer, key: Key) -> None:
    request = sign_for(ferry_server, key, "GET", "/v2/manage/namespaces")
    assert_refused(send(ferry_server, request, headers={"X-Project-Id": None}), "verify aksk signature fail")
    namespaces(ferry_server, key)


def test_signed_headers_list_changed(ferry_server: FerryServer, key: Key) -> None:
    request = sign_for(ferry_server, key, "GET", "/v2/manage/namespaces")
    authorization = request.header_params["Authorization"]
    stripped = authorization.replace("x-project-id;", "")
    assert stripped != authorization
    assert_refused(
        send(ferry_server, request, headers={"Authorization": stripped}), "verify aksk signature fail"
    )
    namespaces(ferry_server, key)


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_authorization_header(ferry_server: FerryServer, key: Key, header: str) -> None:
    request = sign_for(ferry_server, key, "GET", "/v2/manage/namespaces")
    assert_refused(send(ferry_server, request, headers={"Authorization": header.replace("AK", key.ak)}))


def test_signature_of_another_key_pair(ferry_server: FerryServer, key: Key) -> None:
    """A valid signature by one key, presented under another AK, is refused."""
    request = sign_for(ferry_server, key, "GET", "/v2/manage/namespaces")
    forged = request.header_params["Authorization"].replace(key.ak, "A" * 20)
    assert_refused(send(ferry_server, request, headers={"Authorization": forged}))


# ---------------------------------------------------------------------------------------------
# (b2) What a signature must cover: the body, the host, the date


def signed_with(
    key: Key, method: str, host: str, path: str, body: bytes, headers: dict[str, str], names: tuple[str, ...]
) -> dict[str, str]:
    """Headers of a request signed correctly with the key, covering only the headers `names`."""
    present = {k.lower(): v for k, v in headers.items()} | {"host": host, "x-sdk-date": sdk_date()}
    canonical = signing.canonical_request(method, path, "", present, names, body)
    value = signing.signature(key.sk, present["x-sdk-date"], canonical)
    names_text = ";".join(sorted(names))
    authorization = f"SDK-HMAC-SHA256 Access={key.ak}, SignedHeaders={names_text}, Signature={value}"
    return present | {"authorization": authorization}


def test_replay_with_another_body_and_an_unsigned_content_hash(ferry_server: FerryServer, key: Key) -> None:
    """The captured request's body hash, added in an unsigned header, does not vouch for a new body."""
    signed_name, sent_name = unique("signed"), unique("swapped")
    signed_body = json.dumps({"namespace": signed_name}).encode()
    request = sign_for(ferry_server, key, "POST", "/v2/manage/namespaces", body={"namespace": signed_name})
    replay = send(
        ferry_server,
        request,
        body=json.dumps({"namespace": sent_name}).encode(),
        headers={"X-Sdk-Content-Sha256": hashlib.sha256(signed_body).hexdigest()},
    )
    assert_refused(replay, "verify aksk signature fail")
    assert sent_name not in namespaces(ferry_server, key)


def test_signed_unsigned_payload_does_not_cover_a_body(ferry_server: FerryServer, key: Key) -> None:
    """The SDK's UNSIGNED-PAYLOAD (for non-JSON bodies) would let any body replace the signed one."""
    body = json.dumps({"namespace": unique("unsigned")}).encode()
    headers = {"Content-Type": "application/octet-stream", "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"}
    names = ("content-type", "host", "x-sdk-content-sha256", "x-sdk-date")
    sent = signed_with(key, "POST", ferry_server.host, "/v2/manage/namespaces", body, headers, names)
    response = requests.post(f"{ferry_server.url}/v2/manage/namespaces", data=body, headers=sent, timeout=30)
    assert_refused(response, "X-Sdk-Content-Sha256")
    assert json.loads(body)["namespace"] not in namespaces(ferry_server, key)


@pytest.mark.parametrize("left_out", ["host", "x-sdk-date"])
def test_host_and_date_must_be_signed(ferry_server: FerryServer, key: Key, left_out: str) -> None:
    names = tuple(n for n in ("content-type", "host", "x-sdk-date") if n != left_out)
    headers = {"Content-Type": "application/json"}
    sent = signed_with(key, "GET", ferry_server.host, "/v2/manage/namespaces", b"", headers, names)
    response = requests.get(f"{ferry_server.url}/v2/manage/namespaces", headers=sent, timeout=30)
    assert_refused(response, f"SignedHeaders must include {left_out}")


def test_a_go_sdk_style_signature_is_bound_to_the_region_by_its_project(tmp_path: Path) -> None:
    """The Go SDK signs no host, but X-Project-Id: a project is one account in one region."""
    servers = [
        FerryServer(
            tmp_path / region,
            free_port(),
            env={
                "FERRY_REGION": region,
                "FERRY_ADMIN_ACCESS_KEY": ACCESS_KEY,
                "FERRY_ADMIN_SECRET_KEY": SECRET_KEY,
            },
        ).start()
        for region in ("cn-north-4", "cn-east-3")
    ]
    try:
        a, b = servers
        key = create_key(a)  # only to learn A's project id
        name = unique("gostyle")
        body = json.dumps({"namespace": name}).encode()
        headers = {"User-Agent": "huaweicloud-usdk-go/3.0", "X-Project-Id": key.project_id}
        names = ("user-agent", "x-project-id", "x-sdk-date")
        shared = Key(ACCESS_KEY, SECRET_KEY, key.project_id)
        sent = signed_with(shared, "POST", a.host, "/v2/manage/namespaces", body, headers, names)
        sent.pop("host")
        response = requests.post(f"{b.url}/v2/manage/namespaces", data=body, headers=sent, timeout=30)
        assert_refused(response, "signed for another project")
        response = requests.post(f"{a.url}/v2/manage/namespaces", data=body, headers=sent, timeout=30)
        assert response.status_code == 201, response.text
    finally:
        for server in servers:
            server.stop()


def test_which_hosts_a_region_calls_its_own() -> None:
    loopback = Settings(host="127.0.0.1", port=5000)
    assert all(loopback.accepts_host(h) for h in ("127.0.0.1:5000", "localhost:5000", "[::1]:5000"))
    assert not loopback.accepts_host("127.0.0.1:5001")
    public = Settings(host="10.0.0.5", port=5000, public_url="https://swr.example.com")
    assert public.accepts_host("swr.example.com") and public.accepts_host("SWR.example.com:443")
    assert public.accepts_host("10.0.0.5:5000")
    assert not public.accepts_host("swr.other.example") and not public.accepts_host("localhost:5000")
    everywhere = Settings(host="0.0.0.0", port=5000)
    assert everywhere.accepts_host("192.0.2.7:5000") and not everywhere.accepts_host("192.0.2.7:5001")


def test_a_signed_header_sent_twice_is_refused(ferry_server: FerryServer, key: Key) -> None:
    request = sign_for(ferry_server, key, "GET", "/v2/manage/namespaces")
    connection = http.client.HTTPConnection("127.0.0.1", ferry_server.port, timeout=30)
    connection.putrequest("GET", "/v2/manage/namespaces", skip_host=True)
    for name, value in request.header_params.items():
        connection.putheader(name, value)
    connection.putheader("X-Project-Id", "someone-elses-project")
    connection.endheaders()
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 401
    assert "sent twice" in body["error_msg"]


def test_request_signed_for_one_region_does_not_replay_against_another(tmp_path: Path) -> None:
    """Regions of `ferry dev` share one AK/SK; the signed host ties a request to its region."""
    regions = make_regions(tmp_path, ["cn-north-4", "cn-east-3"])
    try:
        a, b = regions["cn-north-4"], regions["cn-east-3"]
        key = Key(ACCESS_KEY, SECRET_KEY, PROJECT_ID)
        name = unique("replayed")
        request = sign_for(a, key, "POST", "/v2/manage/namespaces", body={"namespace": name})
        assert_refused(send(b, request), "signed for another host")
        assert name not in namespaces(b, key)
        assert send(a, request).status_code == 201
    finally:
        regions.stop()


# ---------------------------------------------------------------------------------------------
# (c) Five consecutive bad signatures lock the AK (for the address they came from: see
# tests/test_login_throttle.py for the owner elsewhere)


def test_five_bad_signatures_lock_only_that_key(new_server: FerryServer, admin_password: str) -> None:
    server = new_server.start()
    locked, other = create_key(server), create_key(server)
    for _attempt in range(5):
        bad = sign_for(server, locked, "GET", "/v2/manage/namespaces", sk="not-the-secret")
        assert_refused(send(server, bad), "verify aksk signature fail")
    good = sign_for(server, locked, "GET", "/v2/manage/namespaces")
    assert_refused(send(server, good), LOCKED)
    # The same user's other key, and its password token, keep working.
    assert send(server, sign_for(server, other, "GET", "/v2/manage/namespaces")).status_code == 200
    token = _token(server, admin_password)
    assert requests.get(f"{server.url}/v2/manage/namespaces", headers={"X-Auth-Token": token}, timeout=30).ok
    # Still locked for the next correct signature.
    assert_refused(send(server, sign_for(server, locked, "GET", "/v2/manage/namespaces")), LOCKED)


def _token(server: FerryServer, password: str) -> str:
    user = {"name": "admin", "password": password}
    body: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}
    response = requests.post(f"{server.url}/v3/auth/tokens", json=body, timeout=30)
    assert response.status_code == 201, response.text
    return response.headers["X-Subject-Token"]


def test_failures_must_be_consecutive(ferry_server: FerryServer) -> None:
    fresh = create_key(ferry_server)
    for _round in range(3):
        for _ in range(4):
            assert_refused(
                send(ferry_server, sign_for(ferry_server, fresh, "GET", "/v2/manage/namespaces", sk="x"))
            )
        response = send(ferry_server, sign_for(ferry_server, fresh, "GET", "/v2/manage/namespaces"))
        assert response.status_code == 200, response.text


# ---------------------------------------------------------------------------------------------
# (d) Disabled and deleted keys


def test_disabled_key_is_refused_until_enabled_and_deleted_key_for_good(ferry_server: FerryServer) -> None:
    fresh = create_key(ferry_server)

    def status() -> requests.Response:
        return send(ferry_server, sign_for(ferry_server, fresh, "GET", "/v2/manage/namespaces"))

    assert status().status_code == 200
    ferry_server.cli("key", "disable", fresh.ak)
    assert_refused(status())
    ferry_server.cli("key", "enable", fresh.ak)
    assert status().status_code == 200
    ferry_server.cli("key", "delete", fresh.ak)
    assert_refused(status(), "ak not exist")
