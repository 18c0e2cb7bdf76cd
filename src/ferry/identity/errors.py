"""What organizations and their permissions refuse, in words and data, without HTTP.

manage/errors.py maps each to SWR's status and error code in one table; the message a person
reads is the error's own.
"""

from __future__ import annotations

from ferry.names import invalid_organization


class OrganizationError(Exception):
    """A refused organization or permission operation; `str(error)` is a message for a person."""


class OrganizationUnknown(OrganizationError):
    """No such organization, or none the caller has any right on: the two look the same, so
    nobody learns which organizations exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"organization '{name}' not found")
        self.name = name


class OrganizationExists(OrganizationError):
    def __init__(self, name: str) -> None:
        super().__init__(f"organization '{name}' already exists")
        self.name = name


class OrganizationNameInvalid(OrganizationError):
    def __init__(self, name: str) -> None:
        super().__init__(invalid_organization(name))
        self.name = name


class OrganizationQuotaReached(OrganizationError):
    def __init__(self, quota: int) -> None:
        super().__init__(f"organization quota of {quota} reached")
        self.quota = quota


class OrganizationNotEmpty(OrganizationError):
    def __init__(self, name: str) -> None:
        super().__init__(f"organization '{name}' still has repositories: delete them first")
        self.name = name


class PermissionMissing(OrganizationError):
    """The caller sees the organization but may not do this there; the message names the right."""


class UserUnknown(OrganizationError):
    """A permission names a user who is not in the organization's account (or holds no right
    there, for a revocation); the message says which."""

    def __init__(self, user_id: str, message: str) -> None:
        super().__init__(message)
        self.user_id = user_id


class LoginRefused(Exception):
    """A refused IAM sign-in; `str(error)` is what the caller is told (never which part was wrong)."""


class PasswordWrong(LoginRefused):
    def __init__(self) -> None:
        super().__init__("The username or password is wrong.")


class ProjectUnknown(LoginRefused):
    def __init__(self, project: str | None) -> None:
        super().__init__(f"no project {project!r} in this region")
        self.project = project
