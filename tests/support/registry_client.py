"""A small OCI distribution client for tests that speaks the Docker token protocol."""

from __future__ import annotations

import re
from typing import Any

import requests


def parse_challenge(header: str) -> dict[str, str]:
    scheme, _, params = header.partition(" ")
    values = dict(re.findall(r'(\w+)="([^"]*)"', params))
    values["scheme"] = scheme
    return values


class RegistryClient:
    """Retries a request once with a bearer token for the scope the challenge asked for.

    The challenge comes with 401 (no or a bad token) or with 403 (a token that lacks a scope).
    """

    def __init__(self, base_url: str, user: str | None = None, password: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = (user, password) if user is not None and password is not None else None
        self.session = requests.Session()
        self.tokens: dict[str, str] = {}

    def token(self, challenge: dict[str, str]) -> str:
        params = {"service": challenge.get("service", "")}
        if "scope" in challenge:
            params["scope"] = challenge["scope"]
        response = self.session.get(challenge["realm"], params=params, auth=self.auth, timeout=30)
        response.raise_for_status()
        return str(response.json()["token"])

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else self.base_url + path
        kwargs.setdefault("timeout", 120)
        headers = dict(kwargs.pop("headers", {}) or {})
        key = _scope_key(path)
        if key in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[key]}"
        response = self.session.request(method, url, headers=headers, **kwargs)
        if response.status_code not in (401, 403) or "WWW-Authenticate" not in response.headers:
            return response
        challenge = parse_challenge(response.headers["WWW-Authenticate"])
        if challenge["scheme"].lower() != "bearer":
            return response
        self.tokens[key] = self.token(challenge)
        headers["Authorization"] = f"Bearer {self.tokens[key]}"
        data = kwargs.get("data")
        if data is not None and not isinstance(data, bytes | str):
            return response  # a consumed stream cannot be replayed
        return self.session.request(method, url, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("HEAD", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


def _scope_key(path: str) -> str:
    """Tokens are cached per repository (the part of the path before /blobs, /manifests...)."""
    match = re.match(r"(?:https?://[^/]+)?/v2/(.+?)/(?:blobs|manifests|tags|referrers)/", path)
    return match.group(1) if match else path
