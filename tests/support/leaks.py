"""Every password, secret key and token a test run creates, and a sweep of its logs for them.

Helpers that create credentials (servers' settings, `ferry user create`, `ferry key create`,
`ferry dev`, the IAM and registry tokens the test clients are handed) remember them here, and
FerryServer remembers where each server writes its log; at the end of the session every log
file the run wrote (under the session's temporary directory, and every server log wherever it
is) is searched for each one.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import requests

SECRET_SETTINGS = ("FERRY_ADMIN_PASSWORD", "FERRY_ADMIN_SECRET_KEY", "FERRY_SECRET_KEY")
LOG_SUFFIXES = (".log", ".out")
_SK_IN_OUTPUT = re.compile(r'"sk"\s*:\s*"([^"]+)"')

_secrets: set[str] = set()
_logs: set[Path] = set()


def remember(*values: str | None) -> None:
    # Shorter strings would match by accident (and no credential Ferry accepts is that short).
    _secrets.update(v for v in values if v and len(v) >= 8)


def remember_log(path: Path) -> None:
    _logs.add(path.resolve())


def remember_settings(env: dict[str, str]) -> None:
    remember(*(env.get(name) for name in SECRET_SETTINGS))
    try:
        peers = json.loads(env.get("FERRY_PEERS") or "[]")
    except ValueError:
        return
    for peer in peers if isinstance(peers, list) else []:
        remember(peer.get("sk"), peer.get("password"))


def remember_cli(args: Iterable[str], output: str) -> None:
    """`--password P` on a command line, `"sk": "…"` in what `ferry key create` printed."""
    args = list(args)
    remember(*(args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--password"))
    remember(*_SK_IN_OUTPUT.findall(output))


def remember_tokens(response: requests.Response) -> None:
    """The IAM token (X-Subject-Token) or registry token (/v2/token) a response hands out."""
    remember(response.headers.get("X-Subject-Token"))
    if response.ok and response.request.path_url.split("?")[0].endswith("/v2/token"):
        with contextlib.suppress(ValueError, AttributeError):
            remember(response.json().get("token"))


def watch_requests() -> Callable[[], None]:
    """Remembers every token any `requests` call of the run (test, helper or SDK) receives;
    returns what undoes it."""
    send = requests.Session.send

    def sending(session: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        response = send(session, request, **kwargs)
        remember_tokens(response)
        return response

    requests.Session.send = sending  # type: ignore[method-assign]

    def undo() -> None:
        requests.Session.send = send  # type: ignore[method-assign]

    return undo


def found_in_logs(root: Path) -> list[str]:
    """'file: which secret' for every remembered secret found in a log file under `root`."""
    found = []
    under_root = {path.resolve() for path in root.rglob("*") if path.suffix in LOG_SUFFIXES}
    for path in sorted(under_root | _logs):
        if not path.is_file():
            continue
        text = path.read_bytes().decode(errors="replace")
        found += [f"{path}: {secret[:3]}…" for secret in _secrets if secret in text]
    return found


def count() -> int:
    return len(_secrets)
