"""Typed views of Management API answers. `raw` keeps the whole JSON for anything not modelled.

Parsing is defensive: a field that is present with a type the API does not document (a
`version_number` of "abc", `steps` that are an object, a `current_version` that is a string) is a
`MalformedAnswer` naming the field, never a ValueError deep inside or a silent default (steps read
as "no steps" would plan the removal of every step). The client turns it into a BadResponseError
for that one call. Absent and null fields take their documented defaults; a version without a
`version_number` has None (unknown), not 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from notiflows_deploy.jsonpos import json_type_name


class MalformedAnswer(ValueError):
    """A field of a server answer with the wrong type: `field` is its path, e.g. current_version.steps."""

    def __init__(self, where: str, expected: str, value: Any) -> None:
        super().__init__(f"{where} is {json_type_name(value)}, not {expected}")
        self.field = where


def _where(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _opt_str(data: Mapping[str, Any], key: str, prefix: str = "") -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedAnswer(_where(prefix, key), "a string", value)


def _opt_bool(data: Mapping[str, Any], key: str, prefix: str = "") -> bool | None:
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise MalformedAnswer(_where(prefix, key), "true or false", value)


def _opt_int(data: Mapping[str, Any], key: str, prefix: str = "") -> int | None:
    value = data.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise MalformedAnswer(_where(prefix, key), "an integer", value)


def _opt_id(data: Mapping[str, Any], key: str, prefix: str = "") -> str | None:
    """An id: a string, or a number (the docs do not say which; a number is kept as its text)."""
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise MalformedAnswer(_where(prefix, key), "an id", value)


def _steps(data: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    value = data.get("steps")
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedAnswer(_where(prefix, "steps"), "a list of steps", value)
    for i, step in enumerate(value):
        if not isinstance(step, dict):
            raise MalformedAnswer(f"{_where(prefix, 'steps')}[{i}]", "an object", step)
    return value


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
    version_number: int | None  # None: the server did not say (shown as unknown, never as 0)
    valid: bool
    steps: list[dict[str, Any]]
    inserted_at: str | None = None
    published_at: str | None = None
    created_by: Actor | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def from_json(data: Any, where: str = "version") -> RemoteVersion | None:
        """None for null (no such version); MalformedAnswer for anything else that is not an object."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise MalformedAnswer(where, "an object", data)
        valid = _opt_bool(data, "valid", where)
        return RemoteVersion(
            sha=_opt_str(data, "sha", where) or "",
            status=_opt_str(data, "status", where) or "",
            version_number=_opt_int(data, "version_number", where),
            valid=True if valid is None else valid,
            steps=_steps(data, where),
            inserted_at=_opt_str(data, "inserted_at", where),
            published_at=_opt_str(data, "published_at", where),
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
        """MalformedAnswer when a field has a type the API does not document."""
        return RemoteNotiflow(
            handle=_opt_str(data, "handle") or "",
            name=_opt_str(data, "name"),
            active=_opt_bool(data, "active"),
            include_in_preferences=_opt_bool(data, "include_in_preferences"),
            has_unpublished_changes=bool(_opt_bool(data, "has_unpublished_changes")),
            current_version=RemoteVersion.from_json(data.get("current_version"), "current_version"),
            published_version=RemoteVersion.from_json(data.get("published_version"), "published_version"),
            updated_at=_opt_str(data, "updated_at"),
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
    def from_json(data: dict[str, Any], where: str = "") -> NotiflowSummary:
        """MalformedAnswer when a field has a type the API does not document (a missing handle too);
        `where` names the item in messages, e.g. items[3]."""
        handle = _opt_str(data, "handle", where)
        if not handle:
            raise MalformedAnswer(_where(where, "handle"), "a notiflow handle", handle)
        return NotiflowSummary(
            handle=handle,
            name=_opt_str(data, "name", where),
            active=_opt_bool(data, "active", where),
            has_unpublished_changes=bool(_opt_bool(data, "has_unpublished_changes", where)),
            current_version_id=_opt_id(data, "current_version_id", where),
            published_version_id=_opt_id(data, "published_version_id", where),
            raw=data,
        )


@dataclass(frozen=True)
class UpsertResult:
    created: bool  # 201 vs 200
    notiflow: RemoteNotiflow
