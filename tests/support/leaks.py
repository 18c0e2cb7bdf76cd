"""Every password and secret key a test run creates, and a sweep of its logs for them.

Helpers that create credentials (servers' settings, `ferry user create`, `ferry key create`,
`ferry dev`) remember them here; at the end of the session every log file the run wrote is
searched for each one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

SECRET_SETTINGS = ("FERRY_ADMIN_PASSWORD", "FERRY_ADMIN_SECRET_KEY", "FERRY_SECRET_KEY")
LOG_SUFFIXES = (".log", ".out")
_SK_IN_OUTPUT = re.compile(r'"sk"\s*:\s*"([^"]+)"')

_secrets: set[str] = set()


def remember(*values: str | None) -> None:
    # Shorter strings would match by accident (and no credential Ferry accepts is that short).
    _secrets.update(v for v in values if v and len(v) >= 8)


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


def found_in_logs(root: Path) -> list[str]:
    """'file: which secret' for every remembered secret found in a log file under `root`."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix not in LOG_SUFFIXES:
            continue
        text = path.read_bytes().decode(errors="replace")
        found += [f"{path}: {secret[:3]}…" for secret in _secrets if secret in text]
    return found


def count() -> int:
    return len(_secrets)
