"""Database tables. Blob bytes live in the blob store; everything else lives here."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every database (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class JobStatus(StrEnum):
    """A sync job's status (SYNC.md): waiting → running → one of the final five."""

    WAITING = "waiting"
    RUNNING = "running"
    SUCCESS = "success"
    EXISTED = "existed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCEL = "cancel"


FINAL_STATUSES = frozenset(
    {JobStatus.SUCCESS, JobStatus.EXISTED, JobStatus.FAILED, JobStatus.TIMEOUT, JobStatus.CANCEL}
)


class Base(DeclarativeBase):
    # Named constraints, so later migrations can alter them on SQLite and PostgreSQL alike.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def new_hex_id() -> str:
    return uuid.uuid4().hex


class Account(Base):
    """An SWR account (IAM domain). Its project is the account's scope in this region."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    domain_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_hex_id)
    project_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_hex_id)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped whenever the password or keys change so that tokens issued before stop working.
    credentials_changed_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class AccessKey(Base):
    """A permanent AK/SK pair. The SK is kept because verifying an HMAC signature needs it."""

    __tablename__ = "access_keys"
    access_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_key: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64), unique=True)
    creator_name: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Permission(Base):
    """A user's right on an organization: 1 read, 3 edit, 7 manage."""

    __tablename__ = "permissions"
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    auth: Mapped[int] = mapped_column(Integer)


class Repository(Base):
    __tablename__ = "repositories"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    category: Mapped[str] = mapped_column(String(32), default="other")
    description: Mapped[str] = mapped_column(String(1024), default="")
    creator_name: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Blob(Base):
    """A verified blob in the store. Visibility to a repository is a RepositoryBlob row."""

    __tablename__ = "blobs"
    digest: Mapped[str] = mapped_column(String(80), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class RepositoryBlob(Base):
    __tablename__ = "repository_blobs"
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"), primary_key=True)
    __table_args__ = (Index("ix_repository_blobs_digest", "digest"),)


class Manifest(Base):
    __tablename__ = "manifests"
    __table_args__ = (
        UniqueConstraint("repository_id", "digest"),
        Index("ix_manifests_subject", "repository_id", "subject_digest"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(80))
    media_type: Mapped[str] = mapped_column(String(255))
    artifact_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    subject_digest: Mapped[str | None] = mapped_column(String(80), nullable=True)
    annotations: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    size: Mapped[int] = mapped_column(BigInteger)
    # Total bytes of the image: the manifest, its config and layers (children for an index).
    content_size: Mapped[int] = mapped_column(BigInteger, default=0)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ManifestReference(Base):
    """What a manifest points at: blobs (config, layers) and child manifests (index)."""

    __tablename__ = "manifest_references"
    manifest_id: Mapped[int] = mapped_column(ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(80), primary_key=True)
    is_manifest: Mapped[bool] = mapped_column(Boolean, default=False)


class Tag(Base):
    __tablename__ = "tags"
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    digest: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class TagOverride(Base):
    """A tag's digest replaced by a sync copy, or put back by a rollback: what it pointed at
    before, so `ferry sync rollback` can restore it (images/overrides.py); garbage collection
    keeps the previous image for FERRY_OVERRIDE_KEEP_SECONDS."""

    __tablename__ = "tag_overrides"
    __table_args__ = (Index("ix_tag_overrides_tag", "repository_id", "tag", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(128))
    previous_digest: Mapped[str] = mapped_column(String(80))
    digest: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(16))  # "sync" or "rollback"
    operator_name: Mapped[str] = mapped_column(String(64), default="")
    replaced_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class SyncRule(Base):
    """Automatic sync: (source repository) → (target region, target organization)."""

    __tablename__ = "sync_rules"
    __table_args__ = (UniqueConstraint("repository_id", "remote_region_id", "remote_namespace"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    remote_region_id: Mapped[str] = mapped_column(String(64))
    remote_namespace: Mapped[str] = mapped_column(String(64))
    sync_auto: Mapped[bool] = mapped_column(Boolean, default=False)
    override: Mapped[bool] = mapped_column(Boolean, default=False)
    creator_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class OrgSyncRule(Base):
    """Automatic sync of a whole organization (Ferry's extension): every repository in it, also
    those created later by their first push, that passes the filters (sync/filters.py)."""

    __tablename__ = "sync_org_rules"
    __table_args__ = (UniqueConstraint("organization_id", "remote_region_id", "remote_namespace"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    remote_region_id: Mapped[str] = mapped_column(String(64))
    remote_namespace: Mapped[str] = mapped_column(String(64))
    override: Mapped[bool] = mapped_column(Boolean, default=False)
    # RuleFilter.as_json(): {"repositories": {"include": [...], "exclude": [...]}, "tags": {...}}
    filters: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Opt-in deletion sync (sync/deletion.py): a tag deleted here is deleted at the target after
    # the grace period, only where the target's tag holds what a sync from here wrote.
    sync_deletes: Mapped[bool] = mapped_column(Boolean, default=False)
    delete_grace_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    sync_retention_deletes: Mapped[bool] = mapped_column(Boolean, default=False)
    # Only these platforms of an index (sync/platforms.py); empty: the index whole.
    platforms: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Bytes per second this rule's copies may send together (None: only the peer's cap).
    bandwidth: Mapped[int | None] = mapped_column(Integer, nullable=True)
    creator_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class SyncPause(Base):
    """Copies held until resumed (sync/pauses.py): every job to a peer region (`remote_namespace`
    and the source empty), or from a repository (`repo_name`) or a whole organization
    (`repo_name` empty) to one target organization. A running copy finishes; waiting ones wait."""

    __tablename__ = "sync_pauses"
    __table_args__ = (UniqueConstraint("remote_region_id", "remote_namespace", "namespace", "repo_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    remote_region_id: Mapped[str] = mapped_column(String(64))
    remote_namespace: Mapped[str] = mapped_column(String(64), default="")
    namespace: Mapped[str] = mapped_column(String(64), default="")
    repo_name: Mapped[str] = mapped_column(String(128), default="")
    paused_by: Mapped[str] = mapped_column(String(64), default="")
    paused_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class SyncJob(Base):
    """One tag copied to one target: the sync record, kept after the repository is gone."""

    __tablename__ = "sync_jobs"
    __table_args__ = (
        Index("ix_sync_jobs_claim", "status", "next_attempt_at"),
        Index("ix_sync_jobs_target", "repository_id", "remote_region_id", "remote_namespace", "tag"),
        Index("ix_sync_jobs_source", "namespace", "repo_name", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int | None] = mapped_column(
        ForeignKey("repositories.id", ondelete="SET NULL"), nullable=True
    )
    account_id: Mapped[int] = mapped_column(Integer)
    namespace: Mapped[str] = mapped_column(String(64))
    repo_name: Mapped[str] = mapped_column(String(128))
    remote_region_id: Mapped[str] = mapped_column(String(64))
    remote_namespace: Mapped[str] = mapped_column(String(64))
    tag: Mapped[str] = mapped_column(String(128))
    override: Mapped[bool] = mapped_column(Boolean, default=False)
    trigger: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.WAITING)
    operator_id: Mapped[str] = mapped_column(String(64), default="")
    operator_name: Mapped[str] = mapped_column(String(64), default="")
    # Whose rights the copy uses, here and in the target region: the rule's owner for an
    # automatic job, the caller for a manual one (the operator is who pushed or asked).
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    digest: Mapped[str | None] = mapped_column(String(80), nullable=True)
    message: Mapped[str] = mapped_column(String(2048), default="")
    bytes_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    blobs_skipped: Mapped[int] = mapped_column(Integer, default=0)
    blobs_mounted: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # Replication truth (sync/replication.py): a stable reason code for the last failure, retry
    # or conflict; the short step log of every attempt; when the target's tag was verified at the
    # digest; what the target held when the job last looked; and the digest an attempt wrote
    # under the tag (recorded the moment it did, so a crash-retry knows its own earlier copy).
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    steps: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # The platforms of an index the copy keeps (an organization rule's subset); None: all.
    platforms: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # The organization rule that queued it (None: a repository rule, a manual sync, a repair
    # of one), and that rule's bandwidth cap when it did: its share of the peer (sync/bandwidth.py).
    org_rule_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bandwidth: Mapped[int | None] = mapped_column(Integer, nullable=True)
    visible_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    target_digest: Mapped[str | None] = mapped_column(String(80), nullable=True)
    written_digest: Mapped[str | None] = mapped_column(String(80), nullable=True)


class SyncTransfer(Base):
    """An unfinished chunked blob upload to a peer, so a restarted job resumes it."""

    __tablename__ = "sync_transfers"
    job_id: Mapped[int] = mapped_column(ForeignKey("sync_jobs.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(80), primary_key=True)
    location: Mapped[str] = mapped_column(String(1024))
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Retention(Base):
    """A repository's retention policy (SWR "image aging"): its rules, as the API takes them."""

    __tablename__ = "retentions"
    __table_args__ = (UniqueConstraint("repository_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    algorithm: Mapped[str] = mapped_column(String(16), default="or")
    # [{"template": ..., "params": {...}, "tag_selectors": [{"kind", "pattern"}]}]
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    scope: Mapped[str] = mapped_column(String(64), default="")
    creator_name: Mapped[str] = mapped_column(String(64), default="")
    # When the policy last ran; the schedule claims a due policy by moving it (one runner).
    last_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class RetentionHistory(Base):
    """One tag a retention policy deleted; kept after the policy is gone, not after the repository."""

    __tablename__ = "retention_histories"
    __table_args__ = (Index("ix_retention_histories_repository", "repository_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    retention_id: Mapped[int] = mapped_column(Integer)
    namespace: Mapped[str] = mapped_column(String(64))
    repo: Mapped[str] = mapped_column(String(128))
    tag: Mapped[str] = mapped_column(String(128))
    digest: Mapped[str] = mapped_column(String(80))
    # The rule(s) that deleted it, as compact JSON (SWR's example shows the rule object).
    rule_type: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


# Webhook and audit tables live in their own module; importing it registers them on Base.
from ferry.metadata import outbox_models as _outbox_models  # noqa: E402, F401
