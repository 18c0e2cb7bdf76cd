"""Parsing untrusted input that every API shares: JSON documents and whole numbers."""

from __future__ import annotations

import json
from typing import Any

# Manifests nest four levels deep and management bodies three; 64 leaves room for annotations
# and keeps hostile input far from the interpreter's recursion limit.
MAX_JSON_DEPTH = 64
MAX_WHOLE_NUMBER = 2**63 - 1  # the largest value a database integer column holds


class JSONRefused(ValueError):
    """Not a JSON document Ferry accepts: malformed, not UTF-8, or nested too deeply."""


def load_json(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The decoded document, or JSONRefused (never RecursionError)."""
    try:
        document = json.loads(raw)
    except RecursionError:
        raise JSONRefused(f"JSON nested more than {max_depth} levels deep") from None
    except (ValueError, UnicodeDecodeError):
        raise JSONRefused("not valid JSON") from None
    if _depth(document) > max_depth:
        raise JSONRefused(f"JSON nested more than {max_depth} levels deep")
    return document


def _depth(document: Any) -> int:
    """How deeply arrays and objects nest, walked without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: list[Any] = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def whole_number(raw: str) -> int | None:
    """`raw` as a non-negative integer when it is ASCII digits that fit a database integer.

    str.isdigit alone also accepts "²" or "①", which int() refuses, and 30 digits overflow SQL.
    """
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if value <= MAX_WHOLE_NUMBER else None
