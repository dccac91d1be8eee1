"""Typed views of Management API answers. `raw` keeps the whole JSON for anything not modelled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Actor:
    type: str
    id: str
    name: str

    @staticmethod
    def from_json(data: Any) -> Actor | None:
        if not isinstance(data, dict):
            return None
        return Actor(type=str(data.get("type", "")), id=str(data.get("id", "")), name=str(data.get("name", "")))


@dataclass(frozen=True)
class RemoteVersion:
    sha: str
    status: str  # "draft" | "published" | "archived"
    version_number: int
    valid: bool
    steps: list[dict[str, Any]]
    inserted_at: str | None = None
    published_at: str | None = None
    created_by: Actor | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def from_json(data: Any) -> RemoteVersion | None:
        if not isinstance(data, dict):
            return None
        steps = data.get("steps")
        return RemoteVersion(
            sha=str(data.get("sha") or ""),
            status=str(data.get("status") or ""),
            version_number=int(data.get("version_number") or 0),
            valid=bool(data.get("valid", True)),
            steps=[s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else [],
            inserted_at=data.get("inserted_at"),
            published_at=data.get("published_at"),
            created_by=Actor.from_json(data.get("created_by")),
            raw=data,
        )


@dataclass(frozen=True)
class RemoteNotiflow:
    """`GET P/notiflows/{handle}` (and the PUT / publish answers)."""

    handle: str
    name: str | None
    active: bool | None
    include_in_preferences: bool | None
    has_unpublished_changes: bool
    current_version: RemoteVersion | None
    published_version: RemoteVersion | None
    updated_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def from_json(data: dict[str, Any]) -> RemoteNotiflow:
        return RemoteNotiflow(
            handle=str(data.get("handle", "")),
            name=data.get("name"),
            active=data.get("active"),
            include_in_preferences=data.get("include_in_preferences"),
            has_unpublished_changes=bool(data.get("has_unpublished_changes", False)),
            current_version=RemoteVersion.from_json(data.get("current_version")),
            published_version=RemoteVersion.from_json(data.get("published_version")),
            updated_at=data.get("updated_at"),
            raw=data,
        )


@dataclass(frozen=True)
class NotiflowSummary:
    """One item of `GET P/notiflows` (metadata only, no steps)."""

    handle: str
    name: str | None
    active: bool | None
    has_unpublished_changes: bool
    current_version_id: str | None
    published_version_id: str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def from_json(data: dict[str, Any]) -> NotiflowSummary:
        return NotiflowSummary(
            handle=str(data.get("handle", "")),
            name=data.get("name"),
            active=data.get("active"),
            has_unpublished_changes=bool(data.get("has_unpublished_changes", False)),
            current_version_id=data.get("current_version_id"),
            published_version_id=data.get("published_version_id"),
            raw=data,
        )


@dataclass(frozen=True)
class UpsertResult:
    created: bool  # 201 vs 200
    notiflow: RemoteNotiflow
