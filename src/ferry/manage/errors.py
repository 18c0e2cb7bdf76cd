"""The management API's one table from domain errors to SWR error bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ferry.errors import STORAGE_FULL_MESSAGE, SWRError
from ferry.identity import errors as identity
from ferry.identity.temporary_login import TemporaryLoginRefused
from ferry.identity.throttle import LoginThrottled
from ferry.images import errors as image
from ferry.images import overrides
from ferry.images import retention_rules as retention
from ferry.metadata.db import DatabaseFull
from ferry.storage import StorageFull
from ferry.sync import cancel, deletion, filters, org_rules, platforms, rules
from ferry.sync.authorization import SyncRefused
from ferry.webhooks import errors as webhooks


def _said(status: int, code: str) -> Callable[[Exception], SWRError]:
    """SWR's status and code, with the domain error's own message."""
    return lambda error: SWRError(status, code, str(error))


# SWR's codes where SWR has one for the case. The lookup walks the error's class hierarchy, so a
# subclass without its own row takes its parent's.
_TABLE: dict[type[Exception], Callable[[Any], SWRError]] = {
    identity.OrganizationUnknown: _said(404, "SVCSTG.SWR.4040058"),
    identity.OrganizationExists: _said(409, "SVCSTG.SWR.4090060"),
    identity.OrganizationNameInvalid: _said(400, "SVCSTG.SWR.4001028"),
    identity.OrganizationQuotaReached: _said(400, "SVCSTG.SWR.4000097"),
    identity.OrganizationNotEmpty: _said(406, "SVCSTG.SWR.4060074"),
    identity.PermissionMissing: _said(403, "SVCSTG.SWR.4030170"),
    identity.UserUnknown: _said(404, "SVCSTG.SWR.4040006"),
    TemporaryLoginRefused: _said(400, "SVCSTG.SWR.4001025"),
    # IAM's own codes for the sign-in at /v3/auth/tokens.
    identity.PasswordWrong: _said(401, "IAM.0004"),
    identity.ProjectUnknown: _said(401, "IAM.0015"),
    LoginThrottled: lambda e: SWRError(429, "APIGW.0308", str(e), {"Retry-After": str(e.retry_after)}),
    # The registry's wording ("not known to registry") is OCI's; SWR says "not found".
    image.RepositoryUnknown: lambda e: SWRError(
        404, "SVCSTG.SWR.4040113", f"repository '{e.name}' not found"
    ),
    image.RepositoryExists: _said(409, "SVCSTG.SWR.4090006"),
    image.TagUnknown: _said(404, "SVCSTG.SWR.4040115"),
    image.TagExists: _said(409, "SVCSTG.SWR.4090006"),
    image.OrganizationMissing: _said(404, "SVCSTG.SWR.4040058"),
    image.ManifestUnknown: _said(404, "SVCSTG.SWR.4040115"),
    image.BlobUnknown: _said(404, "SVCSTG.SWR.4040115"),
    image.ManifestInvalid: _said(400, "SVCSTG.SWR.4001025"),
    image.ManifestBlobUnknown: _said(400, "SVCSTG.SWR.4001025"),
    image.DigestInvalid: _said(400, "SVCSTG.SWR.4001025"),
    image.UploadUnknown: _said(404, "SVCSTG.SWR.4040000"),
    image.UploadOutOfOrder: _said(416, "SVCSTG.SWR.4160000"),
    overrides.OverrideUnknown: _said(404, "SVCSTG.SWR.4040083"),
    overrides.PreviousImageGone: _said(404, "SVCSTG.SWR.4040115"),
    retention.RetentionInvalid: _said(400, "SVCSTG.SWR.4001025"),
    retention.RetentionUnknown: _said(404, "SVCSTG.SWR.4040083"),
    retention.RetentionExists: _said(409, "SVCSTG.SWR.4090000"),
    rules.TargetRegionUnknown: _said(400, "SVCSTG.SWR.4000014"),
    rules.TargetNamespaceInvalid: _said(400, "SVCSTG.SWR.4001028"),
    rules.RuleUnknown: _said(404, "SVCSTG.SWR.4040083"),
    org_rules.OrgRuleUnknown: _said(404, "SVCSTG.SWR.4040083"),
    deletion.NothingToUndo: _said(404, "SVCSTG.SWR.4040083"),
    filters.FilterInvalid: _said(400, "SVCSTG.SWR.4001025"),
    platforms.PlatformInvalid: _said(400, "SVCSTG.SWR.4001025"),
    cancel.SyncJobUnknown: _said(404, "SVCSTG.SWR.4040083"),
    cancel.SyncJobFinished: _said(409, "SVCSTG.SWR.4090000"),
    # The target region refused, or could not be asked: SWR's answers for a sync target.
    SyncRefused: _said(404, "SVCSTG.SWR.4040058"),
    rules.TargetUnchecked: _said(500, "SVCSTG.SWR.5000046"),
    # Webhooks are Ferry's; SWR's generic codes for a bad parameter and a missing resource.
    webhooks.WebhookInvalid: _said(400, "SVCSTG.SWR.4001025"),
    webhooks.WebhookUnknown: _said(404, "SVCSTG.SWR.4040083"),
    webhooks.DeliveryUnknown: _said(404, "SVCSTG.SWR.4040083"),
}


def swr_error(error: Exception, retry_seconds: int) -> SWRError:
    """The SWR error for a domain error (app.DOMAIN_ERRORS: the services' refusals, StorageFull
    and DatabaseFull)."""
    if isinstance(error, StorageFull | DatabaseFull):
        return SWRError(507, "SVCSTG.SWR.5070000", STORAGE_FULL_MESSAGE, {"Retry-After": str(retry_seconds)})
    for kind in type(error).__mro__:
        if kind in _TABLE:
            return _TABLE[kind](error)
    return SWRError(400, "SVCSTG.SWR.4001025", str(error))
