"""Naming rules: organizations and repositories (SWR), tags and digests (OCI)."""

from __future__ import annotations

import re
from dataclasses import dataclass

ORGANIZATION_RE = re.compile(r"^[a-z][a-z0-9]*(?:(?:[._-]|__)[a-z0-9]+)*$")
REPOSITORY_RE = re.compile(r"^[a-z0-9]+(?:(?:[./_-]|__)[a-z0-9]+)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
# Any algorithm the spec's grammar allows; only sha256 is accepted for content.
DIGEST_GRAMMAR_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
RESERVED_ORGANIZATIONS = frozenset({"manage"})
# The rules above in words, for the error a person reads when a name breaks one.
ORGANIZATION_RULE = (
    "1-64 characters: lowercase letters and digits separated by single '.', '_' or '-' (or '__'), "
    "starting with a letter and ending with a letter or digit"
)
REPOSITORY_RULE = (
    "1-128 characters: lowercase letters and digits separated by single '.', '/', '_' or '-' "
    "(or '__'), starting and ending with a letter or digit"
)
TAG_RULE = "1-128 characters: letters, digits, '_', '.' and '-', not starting with '.' or '-'"


@dataclass(frozen=True)
class ImageName:
    organization: str
    repository: str

    def __str__(self) -> str:
        return f"{self.organization}/{self.repository}"


def is_organization(name: str) -> bool:
    return 1 <= len(name) <= 64 and bool(ORGANIZATION_RE.match(name))


def is_new_organization_name(name: str) -> bool:
    """An organization name that may be created: valid and not reserved ("manage" would collide
    with /v2/manage)."""
    return is_organization(name) and name not in RESERVED_ORGANIZATIONS


def is_repository(name: str) -> bool:
    return 1 <= len(name) <= 128 and bool(REPOSITORY_RE.match(name))


def is_tag(tag: str) -> bool:
    return bool(TAG_RE.match(tag))


def is_digest(value: str) -> bool:
    return bool(DIGEST_RE.match(value))


def parse_image_name(name: str) -> ImageName | None:
    """Splits `org/repo[/more]`; None when either part breaks its rule."""
    organization, sep, repository = name.partition("/")
    if not sep or not is_organization(organization) or not is_repository(repository):
        return None
    return ImageName(organization, repository)


def invalid_organization(name: str) -> str:
    """Why `name` cannot be an organization to create: the rule it broke, in words."""
    if is_organization(name) and name in RESERVED_ORGANIZATIONS:
        return f"invalid organization name {name!r}: reserved (it would collide with /v2/{name})"
    return f"invalid organization name {name!r}: {ORGANIZATION_RULE}"


def invalid_repository(name: str) -> str:
    return f"invalid repository name {name!r}: {REPOSITORY_RULE}"


def invalid_tag(tag: str) -> str:
    return f"invalid image tag {tag!r}: {TAG_RULE}"


def invalid_image_name(name: str) -> str:
    """Why `org/repo` is not an image name: which part breaks which rule."""
    organization, sep, repository = name.partition("/")
    if not sep:
        return f"invalid image name {name!r}: ORGANIZATION/REPOSITORY expected"
    if not is_organization(organization):
        return f"invalid image name {name!r}: {invalid_organization(organization)}"
    return f"invalid image name {name!r}: {invalid_repository(repository)}"
