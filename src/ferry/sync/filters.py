"""Which repositories and tags an organization rule copies: include and exclude patterns, as
values. No database here; sync/org_rules.py stores them, sync/triggers.py asks them.

A pattern is a glob unless it starts with `re:`:
- glob (as Harbor's filters): `*` and `?` stay within one path segment, `**` crosses `/`,
  `{a,b}` is either, `[a-z]` a class (wcmatch's GLOBSTAR and BRACE);
- `re:` and a regular expression that must match the whole name (the `regex` module). Neither
  repository names nor tags may hold `:`, so the prefix cannot be part of a glob.

A name passes a filter when it matches an include pattern (any name, when there are none) and no
exclude pattern. A regular expression that takes longer than REGEX_SECONDS on one name counts as
not matching an include and as matching an exclude: when Ferry cannot tell, it does not copy, so
a hostile pattern can neither hold the server nor push anything anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import regex
from wcmatch import glob

from ferry.sync.errors import RuleError

REGEX_PREFIX = "re:"
GLOB_FLAGS = glob.GLOBSTAR | glob.BRACE
MAX_PATTERNS = 32
MAX_PATTERN = 256
REGEX_SECONDS = 0.05
KINDS = ("repositories", "tags")


class FilterInvalid(RuleError):
    """A filter Ferry will not store; the message says which pattern and why."""


@lru_cache(maxsize=4096)
def _matcher(pattern: str) -> Callable[[str], bool | None]:
    """True or False, or None when a regular expression ran out of time."""
    if pattern.startswith(REGEX_PREFIX):
        compiled = regex.compile(pattern[len(REGEX_PREFIX) :])

        def by_regex(name: str) -> bool | None:
            try:
                return compiled.fullmatch(name, timeout=REGEX_SECONDS) is not None
            except TimeoutError:
                return None

        return by_regex
    compiled_glob = glob.compile(pattern, flags=GLOB_FLAGS)
    return lambda name: bool(compiled_glob.match(name))


def _check(pattern: object, where: str) -> str:
    if not isinstance(pattern, str) or not 1 <= len(pattern) <= MAX_PATTERN:
        raise FilterInvalid(f"{where} must be a pattern of 1 to {MAX_PATTERN} characters")
    try:
        _matcher(pattern)
    except regex.error as error:
        raise FilterInvalid(f"{where} is not a regular expression: {error}") from None
    except (ValueError, IndexError) as error:  # wcmatch's refusals of a malformed glob
        raise FilterInvalid(f"{where} is not a glob pattern: {error}") from None
    return pattern


def parse_patterns(patterns: object, where: str) -> tuple[str, ...]:
    """Patterns from the API (a list of strings); FilterInvalid says which one is wrong."""
    if patterns is None:
        return ()
    if not isinstance(patterns, list | tuple) or len(patterns) > MAX_PATTERNS:
        raise FilterInvalid(f"{where} must be a list of at most {MAX_PATTERNS} patterns")
    return tuple(dict.fromkeys(_check(p, f"{where}[{i}]") for i, p in enumerate(patterns)))


@dataclass(frozen=True)
class NameFilter:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def passes(self, name: str) -> bool:
        if self.include and not any(_matcher(p)(name) is True for p in self.include):
            return False
        return not any(_matcher(p)(name) is not False for p in self.exclude)

    def as_json(self) -> dict[str, list[str]]:
        return {"include": list(self.include), "exclude": list(self.exclude)}

    @property
    def empty(self) -> bool:
        return not (self.include or self.exclude)


@dataclass(frozen=True)
class RuleFilter:
    """An organization rule's filters: repository names (without the organization) and tags."""

    repositories: NameFilter = field(default_factory=NameFilter)
    tags: NameFilter = field(default_factory=NameFilter)

    def copies(self, repository: str, tag: str) -> bool:
        return self.repositories.passes(repository) and self.tags.passes(tag)

    def as_json(self) -> dict[str, dict[str, list[str]]]:
        return {"repositories": self.repositories.as_json(), "tags": self.tags.as_json()}


def name_filter(include: Iterable[str] | None, exclude: Iterable[str] | None, kind: str) -> NameFilter:
    return NameFilter(
        parse_patterns(list(include or ()), f"filters.{kind}.include"),
        parse_patterns(list(exclude or ()), f"filters.{kind}.exclude"),
    )


def rule_filter(
    repositories: Sequence[Sequence[str]] = ((), ()), tags: Sequence[Sequence[str]] = ((), ())
) -> RuleFilter:
    """A checked filter from (include, exclude) pairs."""
    return RuleFilter(
        name_filter(repositories[0], repositories[1], "repositories"),
        name_filter(tags[0], tags[1], "tags"),
    )


def from_json(stored: Mapping[str, Any] | None) -> RuleFilter:
    """A stored filter (as_json's shape); stored patterns were checked when they were stored."""
    stored = stored or {}

    def part(kind: str) -> NameFilter:
        raw = stored.get(kind) or {}
        return NameFilter(tuple(raw.get("include") or ()), tuple(raw.get("exclude") or ()))

    return RuleFilter(part("repositories"), part("tags"))
