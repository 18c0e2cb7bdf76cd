"""Retention policies (SWR "image aging") as values: parsing what the API takes, and deciding
which tags a policy deletes. No database here; images/retention.py stores and runs them.

A rule keeps tags: `tag_rule` the newest `num`, `date_rule` those updated in the last `days`.
Its tag selectors name exceptions, tags the rule always keeps and does not count. The policy's
algorithm is SWR's only one, "or": a tag stays when any rule keeps it, and goes when none does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import regex

from ferry.images.errors import ImageError
from ferry.parsing import whole_number

# The parameter each template takes, and its range (SWR's console: 1-365 days, 1-1000 tags).
TEMPLATES: dict[str, tuple[str, int, int]] = {
    "date_rule": ("days", 1, 365),
    "tag_rule": ("num", 1, 1000),
}
SELECTOR_KINDS = ("label", "regexp")
ALGORITHMS = ("or",)
MAX_RULES = 15
MAX_SELECTORS = 100
MAX_PATTERN = 256
# A pattern that takes longer than this on one tag counts as matching: a tag is kept, never
# deleted, when Ferry cannot tell (and a hostile pattern cannot hold the server).
REGEXP_SECONDS = 0.05


class RetentionError(ImageError):
    """A refused retention operation."""


class RetentionInvalid(RetentionError):
    """A policy Ferry will not store; the message says which part and why."""


class RetentionUnknown(RetentionError):
    def __init__(self, retention_id: int, repository: str) -> None:
        super().__init__(f"retention {retention_id} not found in repository {repository}")
        self.retention_id = retention_id


class RetentionExists(RetentionError):
    def __init__(self, repository: str, retention_id: int) -> None:
        super().__init__(
            f"repository {repository} already has retention {retention_id}: a repository has one "
            "retention policy; update it (PATCH) or delete it first"
        )
        self.retention_id = retention_id


@dataclass(frozen=True)
class TagSelector:
    kind: str  # "label": the tag's exact name; "regexp": a regular expression searched in it
    pattern: str

    def matches(self, tag: str) -> bool:
        if self.kind == "label":
            return tag == self.pattern
        try:
            return regex.search(self.pattern, tag, timeout=REGEXP_SECONDS) is not None
        except TimeoutError:
            return True

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "pattern": self.pattern}


@dataclass(frozen=True)
class TagAge:
    """What a rule needs to know of a tag."""

    name: str
    digest: str
    updated_at: datetime


@dataclass(frozen=True)
class RetentionRule:
    template: str
    count: int  # days for date_rule, tags for tag_rule
    selectors: tuple[TagSelector, ...]

    def excepted(self, tag: str) -> bool:
        return any(selector.matches(tag) for selector in self.selectors)

    def kept(self, tags: Sequence[TagAge], now: datetime) -> set[str]:
        """The names of the tags this rule keeps: its exceptions, and the newest or the young."""
        exceptions = {t.name for t in tags if self.excepted(t.name)}
        counted = [t for t in tags if t.name not in exceptions]
        if self.template == "tag_rule":
            newest = sorted(counted, key=lambda t: (t.updated_at, t.name), reverse=True)
            return exceptions | {t.name for t in newest[: self.count]}
        cutoff = now - timedelta(days=self.count)
        return exceptions | {t.name for t in counted if t.updated_at > cutoff}

    def as_json(self) -> dict[str, object]:
        """SWR's shape; parameter values are strings, as SWR's own examples show them."""
        parameter = TEMPLATES[self.template][0]
        return {
            "template": self.template,
            "params": {parameter: str(self.count)},
            "tag_selectors": [s.as_json() for s in self.selectors],
        }


@dataclass(frozen=True)
class RetentionPolicy:
    algorithm: str
    rules: tuple[RetentionRule, ...]

    def doomed(self, tags: Sequence[TagAge], now: datetime) -> list[TagAge]:
        """The tags no rule keeps, oldest first."""
        kept: set[str] = set()
        for rule in self.rules:
            kept |= rule.kept(tags, now)
        return sorted((t for t in tags if t.name not in kept), key=lambda t: (t.updated_at, t.name))

    def rules_json(self) -> list[dict[str, object]]:
        return [rule.as_json() for rule in self.rules]

    def rule_type(self) -> str:
        """What the history records as `rule_type`: the rule as compact JSON (SWR's example), or
        the list of rules when the policy has several (a deletion is all of theirs)."""
        rules = self.rules_json()
        value: object = rules[0] if len(rules) == 1 else rules
        return json.dumps(value, separators=(",", ":"))


def _count(template: str, params: Mapping[str, object], where: str) -> int:
    if template not in TEMPLATES:
        raise RetentionInvalid(f"{where}.template must be date_rule or tag_rule, not {template!r}")
    parameter, low, high = TEMPLATES[template]
    raw = params.get(parameter)
    if raw is None:
        raise RetentionInvalid(f'{where}.params must be {{"{parameter}": "N"}} for {template}')
    value = raw if isinstance(raw, int) and not isinstance(raw, bool) else whole_number(str(raw))
    if value is None or not low <= value <= high:
        raise RetentionInvalid(f"{where}.params.{parameter} must be a whole number from {low} to {high}")
    return value


def _selector(kind: str, pattern: str, where: str) -> TagSelector:
    if kind not in SELECTOR_KINDS:
        raise RetentionInvalid(f"{where}.kind must be label or regexp, not {kind!r}")
    if not 1 <= len(pattern) <= MAX_PATTERN:
        raise RetentionInvalid(f"{where}.pattern must be 1 to {MAX_PATTERN} characters")
    if kind == "regexp":
        try:
            regex.compile(pattern)
        except regex.error as error:
            raise RetentionInvalid(f"{where}.pattern is not a regular expression: {error}") from None
    return TagSelector(kind, pattern)


def parse_rule(
    template: str, params: Mapping[str, object], selectors: Iterable[tuple[str, str]], where: str = "rule"
) -> RetentionRule:
    """A rule from the API's fields; RetentionInvalid says which field is wrong."""
    count = _count(template, params, where)
    parsed = tuple(
        _selector(kind, pattern, f"{where}.tag_selectors.{i}") for i, (kind, pattern) in enumerate(selectors)
    )
    if len(parsed) > MAX_SELECTORS:
        raise RetentionInvalid(f"{where}.tag_selectors: at most {MAX_SELECTORS} exceptions")
    return RetentionRule(template, count, parsed)


def parse_policy(algorithm: str, rules: Sequence[RetentionRule]) -> RetentionPolicy:
    if algorithm not in ALGORITHMS:
        raise RetentionInvalid(f"algorithm must be 'or', not {algorithm!r}")
    if not 1 <= len(rules) <= MAX_RULES:
        raise RetentionInvalid(f"rules must hold 1 to {MAX_RULES} rules")
    return RetentionPolicy(algorithm, tuple(rules))


def policy_from_json(algorithm: str, rules: Sequence[Mapping[str, object]]) -> RetentionPolicy:
    """A stored policy (its rules as RetentionPolicy.rules_json wrote them)."""
    parsed = []
    for i, rule in enumerate(rules):
        params = rule.get("params")
        selectors = rule.get("tag_selectors") or []
        assert isinstance(params, Mapping) and isinstance(selectors, list)
        pairs = [(str(s["kind"]), str(s["pattern"])) for s in selectors]
        parsed.append(parse_rule(str(rule.get("template")), params, pairs, f"rules.{i}"))
    return parse_policy(algorithm, parsed)
