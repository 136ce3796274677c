"""DRS 1.5 response shapes, so the node's OpenAPI document declares what it returns.

They mirror ``spec/drs/openapi/components/schemas``; tests validate real responses against those files.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Checksum(_Model):
    checksum: str
    type: str


class Authorizations(_Model):
    drs_object_id: str | None = None
    supported_types: list[str] = Field(default_factory=list)
    passport_auth_issuers: list[str] = Field(default_factory=list)
    bearer_auth_issuers: list[str] = Field(default_factory=list)


class AccessMethod(_Model):
    type: str
    access_id: str | None = None
    available: bool | None = None
    authorizations: Authorizations | None = None


class ContentsObject(_Model):
    name: str
    id: str | None = None
    drs_uri: list[str] = Field(default_factory=list)
    contents: list[ContentsObject] | None = None


class DrsObject(_Model):
    id: str
    name: str | None = None
    self_uri: str
    size: int
    created_time: str
    updated_time: str | None = None
    version: str | None = None
    mime_type: str | None = None
    checksums: list[Checksum] = Field(min_length=1)
    access_methods: list[AccessMethod] | None = None
    contents: list[ContentsObject] | None = None
    description: str | None = None
    aliases: list[str] | None = None


class AccessURL(_Model):
    url: str
    headers: list[str] = Field(default_factory=list)


class BulkAccessURL(AccessURL):
    drs_object_id: str | None = None
    drs_access_id: str | None = None


class Summary(_Model):
    requested: int
    resolved: int
    unresolved: int


class Unresolved(_Model):
    error_code: int
    object_ids: list[str]


class BulkObjects(_Model):
    summary: Summary
    resolved_drs_object: list[DrsObject]
    unresolved_drs_objects: list[Unresolved]


class BulkAccessURLs(_Model):
    summary: Summary
    resolved_drs_object_access_urls: list[BulkAccessURL]
    unresolved_drs_objects: list[Unresolved]


class BulkAuthorizations(_Model):
    summary: Summary
    resolved_drs_object: list[Authorizations]
    unresolved_drs_objects: list[Unresolved]


class ServiceType(_Model):
    group: str
    artifact: str
    version: str


class Organization(_Model):
    name: str
    url: str


class DrsInfo(_Model):
    maxBulkRequestLength: int
    objectCount: int
    totalObjectSize: int


class ServiceInfo(_Model):
    id: str
    name: str
    type: ServiceType
    description: str | None = None
    organization: Organization
    version: str
    environment: str | None = None
    maxBulkRequestLength: int | None = None
    drs: DrsInfo | None = None


class Error(_Model):
    msg: str
    status_code: int
