"""Byte ranges of blob downloads (RFC 9110 section 14): one helper for every blob store."""

from __future__ import annotations

from dataclasses import dataclass

from ferry.parsing import whole_number


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


class RangeNotSatisfiable(Exception):
    """416: the Range header is malformed, asks for several ranges, or lies past the blob."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single range `header` asks for, clipped to `size`; None without a Range header."""
    if header is None:
        return None
    unit, sep, spec = header.strip().partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or not sep or not dash:
        raise RangeNotSatisfiable(header)
    start = whole_number(first.strip()) if first.strip() else None
    stop = whole_number(last.strip()) if last.strip() else None
    if (first.strip() and start is None) or (last.strip() and stop is None):
        raise RangeNotSatisfiable(header)
    if start is None:
        # "-N": the last N bytes; "-0" asks for nothing, which cannot be satisfied.
        if not stop or size == 0:
            raise RangeNotSatisfiable(header)
        return ByteRange(max(0, size - stop), size)
    if start >= size or (stop is not None and stop < start):
        raise RangeNotSatisfiable(header)
    end = size if stop is None else min(stop + 1, size)
    return ByteRange(start, end)
