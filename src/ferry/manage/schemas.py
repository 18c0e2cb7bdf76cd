"""Request and response models of the management API, field names exactly as SWR's SDK has them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Category = Literal["app_server", "linux", "framework_app", "database", "lang", "other", "windows", "arm"]


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


# Requests


class CreateNamespaceBody(Body):
    namespace: str = Field(min_length=1, max_length=64)


class CreateRepoBody(Body):
    repository: str = Field(min_length=1, max_length=128)
    is_public: bool
    category: Category | None = None
    description: str | None = Field(default=None, max_length=1024)


class UpdateRepoBody(Body):
    is_public: bool
    category: Category | None = None
    description: str | None = Field(default=None, max_length=1024)


class CreateRepoTagBody(Body):
    source_tag: str = Field(min_length=1, max_length=128)
    destination_tag: str = Field(min_length=1, max_length=128)
    override: bool = False


class UserAuth(Body):
    user_id: str = Field(min_length=1, max_length=64)
    user_name: str | None = Field(default=None, max_length=64)
    auth: Literal[1, 3, 7]


# Responses


class ShowNamespace(BaseModel):
    id: int
    name: str
    creator_name: str
    auth: int


class NamespaceList(BaseModel):
    namespaces: list[ShowNamespace]


class NamespaceAuth(BaseModel):
    id: int
    name: str
    creator_name: str
    self_auth: UserAuth
    others_auths: list[UserAuth]


class RepositoryDetail(BaseModel):
    id: int
    ns_id: int
    name: str
    category: str
    description: str
    creator_id: str
    creator_name: str
    size: int
    is_public: bool
    num_images: int
    num_download: int
    url: str
    path: str
    internal_path: str
    created: str
    updated: str
    domain_id: str
    priority: int


class RepositoryListItem(BaseModel):
    name: str
    category: str
    description: str
    size: int
    is_public: bool
    num_images: int
    num_download: int
    created_at: str
    updated_at: str
    logo: str
    url: str
    path: str
    internal_path: str
    domain_name: str
    namespace: str
    tags: list[str]
    status: bool
    total_range: int


class TagDetail(BaseModel):
    id: int
    repo_id: int
    tag: str
    image_id: str
    manifest: str
    digest: str
    schema_: int = Field(serialization_alias="schema")
    path: str
    internal_path: str
    size: int
    is_trusted: bool
    created: str
    updated: str
    domain_id: str
    tag_type: int


class TagListItem(BaseModel):
    id: int
    repo_id: int
    tag: str = Field(serialization_alias="Tag")
    image_id: str
    manifest: str
    digest: str
    schema_: int = Field(serialization_alias="schema")
    path: str
    internal_path: str
    size: int
    is_trusted: bool
    created: str
    updated: str
    deleted: str | None
    domain_id: str
    scanned: bool
    tag_type: int


class Link(BaseModel):
    href: str
    rel: str


class VersionDetail(BaseModel):
    id: str
    links: Link
    version: str
    status: str
    updated: str
    min_version: str


class VersionList(BaseModel):
    versions: list[VersionDetail]


class VersionShow(BaseModel):
    version: VersionDetail


class Quota(BaseModel):
    quota_limit: int
    quota_key: str
    unit: str
    used: int


class QuotaList(BaseModel):
    quotas: list[Quota]


class DomainOverview(BaseModel):
    domain_id: str
    domain_name: str
    namspace_num: int
    repo_num: int
    image_num: int
    store_space: float
    downflow_size: float


class ErrorBody(BaseModel):
    error_code: str
    error_msg: str
