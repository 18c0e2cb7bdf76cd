"""Bad input to the management API never yields a 500 (SWR-API.md sections 4 and 8.10).

Two bounded, deterministic fuzzers run against a server process of this module's own (so the
organizations they create count against no other test's quota):

- schemathesis, from the OpenAPI document the server serves at /openapi.json, with a valid IAM
  token: positive and negative data for every operation, plus its coverage phase (missing and
  wrongly typed fields, boundary values, unexpected methods);
- hypothesis, aimed where schema-driven generation does not reach: names with `$`, `%24`,
  `%2F`, stray escapes and bad UTF-8 next to an existing organization, repository and tag;
  `filter=` garbage and odd limit/offset values; non-JSON and wrongly shaped bodies; garbage
  auth headers.

Every response must be below 500 and carry X-Request-Id; every 4xx must carry SWR's error body
(at least `error_code` and `error_msg`, as the SDK reads them).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig

from ferry.manage.openapi import build_document
from ferry.manage.routes import OPERATIONS
from tests.support.registry_client import RegistryClient
from tests.support.server import ADMIN_PASSWORD, FerryServer, free_port

DOCUMENT = build_document(OPERATIONS)
SEED = 20260101
CONFIG = {
    "seed": SEED,
    "generation": {"mode": "all", "max-examples": 3, "deterministic": True, "database": "none"},
    "phases": {
        "stateful": {"enabled": False},
        "coverage": {"unexpected-methods": ["PUT"], "generation": {"mode": "negative"}},
    },
}
schema = schemathesis.openapi.from_dict(DOCUMENT, config=SchemathesisConfig.from_dict(CONFIG))
REQUESTS: Counter[str] = Counter()

ORG, REPO, NESTED, TAG = "fuzz-org", "app", "grp/app", "v1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class Target:
    server: FerryServer
    token: str

    def call(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        """Sends `path` (already encoded) as is, without requests re-quoting it."""
        prepared = requests.Request(
            method, self.server.url + "/", data=body, headers={"X-Auth-Token": self.token} | (headers or {})
        ).prepare()
        prepared.url = self.server.url + path
        with requests.Session() as session:
            return session.send(prepared, timeout=60)


def check(response: Any, what: str) -> None:
    """The contract every management response keeps, whatever it was sent.

    `response` is a requests.Response or a schemathesis Response (lowercase, list-valued headers).
    """
    REQUESTS[what.split(" ", 1)[0]] += 1
    status, text = response.status_code, response.text
    headers = {k.lower(): v[0] if isinstance(v, list) else v for k, v in response.headers.items()}
    assert status < 500, f"{what} -> {status} {text[:500]}"
    assert headers.get("x-request-id"), f"{what}: no X-Request-Id (status {status})"
    if 400 <= status < 500:
        try:
            body = json.loads(text)
        except ValueError:
            raise AssertionError(f"{what} -> {status} without a JSON body: {text[:300]}") from None
        assert isinstance(body, dict), f"{what}: error body is not an object: {body!r}"
        assert isinstance(body.get("error_code"), str), f"{what}: no error_code in {body!r}"
        assert isinstance(body.get("error_msg"), str), f"{what}: no error_msg in {body!r}"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push(server: FerryServer, name: str, tag: str) -> None:
    layer = gzip.compress(b"fuzz layer", mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _digest(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    client = RegistryClient(server.url, "admin", ADMIN_PASSWORD)
    for blob in (layer, config):
        response = client.request(
            "POST",
            f"/v2/{name}/blobs/uploads/?digest={_digest(blob)}",
            data=blob,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 201, response.text
    response = client.request(
        "PUT", f"/v2/{name}/manifests/{tag}", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A region of this module's own with an organization, two repositories and a tag."""
    server = FerryServer(tmp_path_factory.mktemp("fuzz"), free_port()).start()
    try:
        password = {"user": {"name": "admin", "password": ADMIN_PASSWORD}}
        body: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": password}}}
        response = requests.post(f"{server.url}/v3/auth/tokens", json=body, timeout=30)
        assert response.status_code == 201, response.text
        world = Target(server, response.headers["X-Subject-Token"])
        made = world.call("POST", "/v2/manage/namespaces", body=json.dumps({"namespace": ORG}).encode())
        assert made.status_code == 201, made.text
        for repo in (REPO, NESTED):
            made = world.call(
                "POST",
                f"/v2/manage/namespaces/{ORG}/repos",
                body=json.dumps({"repository": repo, "is_public": False}).encode(),
            )
            assert made.status_code == 200, made.text
        _push(server, f"{ORG}/{REPO}", TAG)
        yield world
    finally:
        server.stop()


def test_the_fuzzed_document_is_the_served_one(target: Target) -> None:
    response = target.call("GET", "/openapi.json")
    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(DOCUMENT))


# ---------------------------------------------------------------------------------------------
# schemathesis: every operation of the document


@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_schema_driven_input(case: Any, target: Target) -> None:
    response = case.call(base_url=target.server.url, headers={"X-Auth-Token": target.token}, timeout=60)
    check(
        response,
        f"schemathesis {case.method} {case.formatted_path} query={case.query!r} body={case.body!r:.300}",
    )


# ---------------------------------------------------------------------------------------------
# hypothesis: names, filters, bodies and headers the schema does not describe


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    has_body: bool
    query: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.method} {self.template}"

    def path(self, **values: str) -> str:
        defaults = {
            "namespace": ORG,
            "repository": REPO,
            "tag": TAG,
            "api_version": "v2",
            "project_id": "p",
            "retention_id": "1",
            "webhook_id": "1",
            "delivery_id": "1",
            "job_id": "1",
            "rule_id": "1",
        }
        path = self.template
        for name, value in (defaults | values).items():
            path = path.replace("{" + name + "}", value)
        return path


def _routes() -> list[Route]:
    found = []
    for template, methods in DOCUMENT["paths"].items():
        for method, op in methods.items():
            query = tuple(p["name"] for p in op.get("parameters", []) if p["in"] == "query")
            found.append(Route(method.upper(), template, "requestBody" in op, query))
    return sorted(found, key=str)


def _body_fields() -> list[str]:
    names: set[str] = set()
    for component in DOCUMENT["components"]["schemas"].values():
        names.update(component.get("properties", {}))
    return sorted(names)


ROUTES = _routes()
NAMED_ROUTES = [r for r in ROUTES if "{" in r.template]
LIST_ROUTES = [r for r in ROUTES if r.query]
BODY_ROUTES = [r for r in ROUTES if r.has_body]
FIELDS = _body_fields()

# Raw path segments, sent exactly as written (already percent-encoded where it matters).
ODD_SEGMENTS = [
    "",
    ".",
    "..",
    "%2E%2E",
    "$",
    "%24",
    "%2F",
    "%252F",
    "%2524",
    "%",
    "%ZZ",
    "%C3%28",
    "%FF%FE",
    "%00",
    "a%20b",
    "A",
    "manage",
    "x" * 300,
    "%E4%B8%AD",
]
NAMESPACES = [ORG, "nosuch-org", *ODD_SEGMENTS]
REPOSITORIES = [
    REPO,
    "grp$app",
    "grp%24app",
    "grp%2Fapp",
    "grp%252Fapp",
    "grp$$app",
    "%24grp%24app",
    "grp$app$",
    "grp$..$app",
    "nosuch",
    *ODD_SEGMENTS,
]
TAGS = [TAG, "latest", "-v1", "v" * 129, "v1%2Fx", "v1:x", "v1@sha256", *ODD_SEGMENTS]
# Numbers as text: str.isdigit() accepts "²", "①" and "٣"; 30 digits overflow SQL; 5000 digits int().
NUMBERS = ["", "0", "1", "10", "1000", "1001", "-1", "+5", " 5", "1.5", "1e3", "abc", "0x10"]
NUMBERS += ["²", "①", "٣", "9" * 19, "9" * 30, "9" * 5000, "null", "true"]

utf8_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
segment = st.one_of(st.sampled_from(ODD_SEGMENTS), utf8_text.map(lambda s: quote(s, safe="$~")))
number = st.one_of(st.sampled_from(NUMBERS), st.integers(min_value=-(2**70), max_value=2**70).map(str))
filter_key = st.sampled_from(["limit", "offset", "order", "namespace", "name", "tag", "order_type", "", "x"])
filter_value = st.one_of(
    st.builds(
        lambda pairs: "|".join(f"{k}::{v}" for k, v in pairs),
        st.lists(st.tuples(filter_key, st.one_of(number, utf8_text)), max_size=5),
    ),
    st.builds(lambda limit, offset: f"limit::{limit}|offset::{offset}", number, number),
    st.sampled_from(["", "::", "|", "||", "limit", "limit::", "limit::10", "limit::10|offset", "a::b::c"]),
    utf8_text,
)


def query_for(route: Route) -> st.SearchStrategy[str]:
    names = st.sampled_from(route.query)
    return st.one_of(
        filter_value.map(lambda f: "filter=" + quote(f, safe="")),
        st.builds(lambda lim, off: f"limit={quote(lim)}&offset={quote(off)}", number, number),
        st.builds(lambda k, v: f"{k}={v}", names, segment),
        st.lists(st.tuples(names, number), max_size=4).map(
            lambda kv: "&".join(f"{k}={quote(v)}" for k, v in kv)
        ),
        st.sampled_from(
            ["filter", "filter=&filter=", "limit=1&limit=2&offset=0", "%ZZ=%ZZ", "a=%C3%28", "&&="]
        ),
    )


json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    utf8_text,
    st.sampled_from(["x" * 70_000, "", "grp$app", ORG, TAG, "9" * 30, "²", "-1"]),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(utf8_text, inner, max_size=3),
    max_leaves=6,
)
model_like = st.dictionaries(st.sampled_from(FIELDS), json_value, max_size=6)
body = st.one_of(
    model_like.map(lambda v: json.dumps(v).encode()),
    st.lists(model_like, max_size=3).map(lambda v: json.dumps(v).encode()),
    st.lists(json_scalar, max_size=3).map(lambda v: json.dumps(v).encode()),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"", b"{", b"null", b"[]", b"[{}]", b'"x"', b"1e999", b"NaN", b"\xff\xfe", b"{}{}"]),
    st.binary(max_size=64),
    st.none(),
)
content_type = st.sampled_from(
    [
        "application/json",
        "application/json;charset=utf-8",
        "text/plain",
        "application/octet-stream",
        "",
        "*/*",
    ]
)


def bounded(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


@pytest.mark.parametrize("route", NAMED_ROUTES, ids=str)
@bounded(6)
@given(
    namespace=st.one_of(st.sampled_from(NAMESPACES), segment),
    repository=st.one_of(st.sampled_from(REPOSITORIES), segment),
    tag=st.one_of(st.sampled_from(TAGS), segment),
    api_version=st.sampled_from(["v2", "v1", "v99999999999999999999", "v0"]),
    project_id=st.one_of(st.just("%7Bproject_id%7D"), segment),
    payload=model_like.map(lambda v: json.dumps(v).encode()),
)
def test_malformed_names(
    target: Target,
    route: Route,
    namespace: str,
    repository: str,
    tag: str,
    api_version: str,
    project_id: str,
    payload: bytes,
) -> None:
    path = route.path(
        namespace=namespace, repository=repository, tag=tag, api_version=api_version, project_id=project_id
    )
    response = target.call(route.method, path, body=payload if route.has_body else None)
    check(response, f"names {route.method} {path} body={payload!r:.200}")


@pytest.mark.parametrize("route", LIST_ROUTES, ids=str)
@bounded(20)
@given(data=st.data())
def test_malformed_list_queries(target: Target, route: Route, data: st.DataObject) -> None:
    query_string = data.draw(query_for(route), label="query")
    path = route.path() + (f"?{query_string}" if query_string else "")
    response = target.call(route.method, path)
    check(response, f"query {route.method} {path}")


@pytest.mark.parametrize("route", [r for r in LIST_ROUTES if "filter" in r.query], ids=str)
def test_every_odd_number_as_limit_and_offset(target: Target, route: Route) -> None:
    """Not left to chance: each odd number as the limit and as the offset of a paged filter."""
    for value in NUMBERS:
        for pair in (f"limit::{value}|offset::0", f"limit::10|offset::{value}"):
            path = f"{route.path()}?filter={quote(pair, safe='')}"
            check(target.call(route.method, path), f"numbers {route.method} {path}")


ODD_USER_IDS = ["²", "①", "-1", "9" * 19, "9" * 30, "9" * 64, "", "1.0", "0x1"]


@pytest.mark.parametrize("route", [r for r in BODY_ROUTES if r.template.endswith("/access")], ids=str)
def test_odd_user_ids_in_permissions(target: Target, route: Route) -> None:
    for user_id in ODD_USER_IDS:
        grants: Any = [user_id] if route.method == "DELETE" else [{"user_id": user_id, "auth": 7}]
        response = target.call(route.method, route.path(), body=json.dumps(grants).encode())
        check(response, f"user id {route.method} {route.path()} {user_id[:40]!r}")
        assert response.status_code in (400, 404), response.text


@pytest.mark.parametrize("route", BODY_ROUTES, ids=str)
@bounded(12)
@given(
    repository=st.sampled_from([REPO, "grp$app"]),
    payload=body,
    media_type=content_type,
)
def test_malformed_bodies(
    target: Target, route: Route, repository: str, payload: bytes | None, media_type: str
) -> None:
    path = route.path(repository=repository)
    headers = {"Content-Type": media_type} if media_type else {}
    response = target.call(route.method, path, body=payload, headers=headers)
    check(response, f"body {route.method} {path} body={payload!r:.300} content-type={media_type!r}")


header_text = st.text(
    alphabet=st.sampled_from(string.ascii_letters + string.digits + string.punctuation + " \t"), max_size=120
).map(str.strip)
authorization = st.one_of(
    header_text,
    st.builds(
        lambda ak, signed, sig: f"SDK-HMAC-SHA256 Access={ak}, SignedHeaders={signed}, Signature={sig}",
        header_text,
        st.one_of(header_text, st.just("content-type;host;x-sdk-date"), st.just(";;;")),
        st.one_of(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), header_text),
    ),
)
sdk_date = st.one_of(
    st.sampled_from(["20260101T000000Z", "00010101T000000Z", "99991231T235959Z", "20261301T000000Z", ""]),
    header_text,
)
PUBLIC = {"/", "/{api_version}", "/v3/auth/tokens"}


@bounded(80)
@given(
    route=st.sampled_from(ROUTES),
    auth=st.one_of(st.none(), authorization),
    date=st.one_of(st.none(), sdk_date),
    token=st.one_of(st.none(), header_text, st.just("a.b.c")),
    project=st.one_of(st.none(), header_text),
)
def test_garbage_auth_headers(
    target: Target, route: Route, auth: str | None, date: str | None, token: str | None, project: str | None
) -> None:
    headers = {"X-Auth-Token": token or "", "Content-Type": "application/json"}
    for name, value in (("Authorization", auth), ("X-Sdk-Date", date), ("X-Project-Id", project)):
        if value is not None:
            headers[name] = value
    path = route.path()
    response = target.call(route.method, path, body=b'{"namespace": "x"}', headers=headers)
    check(response, f"auth {route.method} {path} headers={headers!r}")
    if route.template not in PUBLIC:
        assert response.status_code == 401, (headers, response.status_code, response.text)


def test_oversized_body_is_refused_in_swr_format(target: Target) -> None:
    oversized = b'{"namespace": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    response = target.call("POST", "/v2/manage/namespaces", body=oversized)
    check(response, "oversized POST /v2/manage/namespaces")
    assert response.status_code == 413


def test_request_budget() -> None:
    """The fuzzers stay bounded (and did run, when the whole module ran)."""
    print(dict(REQUESTS), sum(REQUESTS.values()))
    # Most fuzzers run per route, so the bound grows with the API (about 40 requests a route).
    assert sum(REQUESTS.values()) <= 50 * len(ROUTES)
