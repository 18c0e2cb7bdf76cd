"""Fresh names for organizations, repositories, users and passwords, so tests never collide."""

from __future__ import annotations

import uuid


def unique(prefix: str) -> str:
    """`prefix` and eight random hex digits."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"
