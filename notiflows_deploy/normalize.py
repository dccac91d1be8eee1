"""The comparable content of a notiflow, from a push payload or from a server answer.

Pure. Content is ``{"name", "active", "include_in_preferences", "steps"}`` where each key is present only
when its side gives it, and ``steps`` is a dict keyed by step handle (order never matters; `position`,
`parent_step_handle` and `branch_handle` carry the structure). What is removed so that only real edits
make two contents differ (the Knock CLI's noisy-diff lesson):

* server bookkeeping: ids, timestamps, shas, version numbers, authors (``VOLATILE_KEYS``), on steps,
  templates and the structural parts of settings/conditions, never inside template ``data`` or
  ``provider_settings`` (user content there may legitimately use keys such as ``id`` or ``template_id``);
* null values, anywhere (an upsert treats null as "not given", as the emulator does);
* empty ``settings`` / ``conditions`` / ``provider_settings`` (same as absent);
* ``template.channel_type`` when missing: it is filled from the step (the on-disk format may omit it);
* integral floats become ints (``1.0`` == ``1``); booleans stay distinct from numbers.

Two comparisons: `equal_content` (is it the same notiflow? every top-level key on both sides, an omitted
``active`` / ``include_in_preferences`` meaning its documented default, true) decides what is "ours" and
"unchanged"; `same_content` (only the keys the payload gives) is the upsert's own view of a push.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from notiflows_deploy.api.models import RemoteNotiflow, RemoteVersion
from notiflows_deploy.envsubst import extract_values

CONTENT_KEYS = ("name", "active", "include_in_preferences", "steps")
TOP_LEVEL_KEYS = ("name", "active", "include_in_preferences")
# What an omitted optional top-level key means: the API reference's example notiflow and the emulator's
# create (a notiflow.json without `active` is an active notiflow). Pushes carry them (`with_defaults`).
TOP_LEVEL_DEFAULTS: dict[str, Any] = {"active": True, "include_in_preferences": True}
VOLATILE_KEYS = frozenset(
    {
        "id",
        "sha",
        "inserted_at",
        "updated_at",
        "created_at",
        "published_at",
        "archived_at",
        "deleted_at",
        "notiflow_id",
        "version_id",
        "notiflow_version_id",
        "current_version_id",
        "published_version_id",
        "version_number",
        "version",
        "step_id",
        "template_id",
        "created_by",
        "updated_by",
        "published_by",
    }
)
# Keys whose value is user content: kept verbatim apart from null-dropping.
_OPAQUE_KEYS = frozenset({"data", "provider_settings"})
_EMPTY_MEANS_ABSENT = frozenset({"settings", "conditions", "provider_settings"})


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _clean(value: Any, *, structural: bool) -> Any:
    """Drop nulls everywhere; drop volatile keys only where `structural` (not in user content)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None or (structural and key in VOLATILE_KEYS):
                continue
            out[str(key)] = _clean(item, structural=structural and key not in _OPAQUE_KEYS)
        return out
    if isinstance(value, list):
        return [_clean(item, structural=structural) for item in value]
    return _number(value)


def normalize_step(step: Mapping[str, Any]) -> dict[str, Any]:
    """One step's comparable fields (its `handle` included)."""
    out: dict[str, Any] = _clean(step, structural=True)
    for key in _EMPTY_MEANS_ABSENT:
        if key in out and out[key] in ({}, []):
            del out[key]
    template = out.get("template")
    if isinstance(template, dict) and "channel_type" not in template and "channel_type" in out:
        template["channel_type"] = out["channel_type"]
    return out


def normalize_steps(steps: Any) -> dict[str, dict[str, Any]]:
    """Steps keyed by handle. Accepts a list (payload/server) or an already keyed dict (idempotent)."""
    if isinstance(steps, Mapping):
        items = [{**dict(v), "handle": k} if isinstance(v, Mapping) else v for k, v in steps.items()]
    elif isinstance(steps, list):
        items = list(steps)
    else:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for index, step in enumerate(items):
        if not isinstance(step, Mapping):
            continue
        norm = normalize_step(step)
        handle = norm.pop("handle", None)
        key = handle if isinstance(handle, str) and handle else f"#{index}"
        if key in out:  # duplicate handles are invalid upstream; keep both visible rather than lose one
            key = f"{key}#{index}"
        out[key] = norm
    return out


def normalize_content(content: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise a payload-like mapping (steps as list or keyed dict); unknown top-level keys are ignored."""
    out: dict[str, Any] = {}
    for key in TOP_LEVEL_KEYS:
        if content.get(key) is not None:
            out[key] = _number(content[key])
    if content.get("steps") is not None:
        out["steps"] = normalize_steps(content["steps"])
    return out


def content_from_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The comparable content of a push payload (only the keys the payload gives)."""
    return normalize_content(payload)


def content_from_remote(remote: RemoteNotiflow, version: RemoteVersion | None = None) -> dict[str, Any]:
    """The comparable content of a server notiflow at `version` (default: its current version).

    The top-level fields always come from the notiflow itself; a notiflow without a version has no steps.
    """
    chosen = version if version is not None else remote.current_version
    out: dict[str, Any] = {}
    for key in TOP_LEVEL_KEYS:
        value = getattr(remote, key)
        if value is not None:
            out[key] = _number(value)
    out["steps"] = normalize_steps(chosen.steps if chosen is not None else [])
    return out


def _canonical(value: Any) -> str:
    # JSON text keeps `true` apart from `1`, which Python's == would not.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def same_content(payload: Mapping[str, Any], remote_content: Mapping[str, Any]) -> bool:
    """Would pushing `payload` leave content equal to `remote_content`?

    Only the keys the payload gives are compared (an upsert leaves omitted keys as they are); the steps,
    when given, are a full replace and compared fully. Either argument may be raw or normalised.
    """
    mine = normalize_content(payload)
    theirs = normalize_content(remote_content)
    for key in CONTENT_KEYS:
        if key not in mine:
            continue
        other = theirs.get(key, {} if key == "steps" else None)
        if _canonical(mine[key]) != _canonical(other):
            return False
    return True


def with_defaults(payload: Mapping[str, Any]) -> dict[str, Any]:
    """`payload` with every omitted (or null) key of TOP_LEVEL_DEFAULTS set to its default.

    This is what a deploy pushes: an upsert keeps the server's value of an omitted key (a dashboard's
    `active: false`), so without it the server would not end up with what `equal_content` assumes.
    """
    out = dict(payload)
    for key, value in TOP_LEVEL_DEFAULTS.items():
        if out.get(key) is None:
            out[key] = value
    return out


def _complete(content: Mapping[str, Any]) -> dict[str, Any]:
    out = normalize_content(content)
    for key, value in TOP_LEVEL_DEFAULTS.items():
        out.setdefault(key, value)
    out.setdefault("steps", {})
    return out


def equal_content(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Do `one` and `other` describe the same notiflow (raw or normalised, payload or server content)?

    Every top-level key the API defines is compared on both sides: a key one side omits counts as its
    default (TOP_LEVEL_DEFAULTS), or as absent (`name`) or no steps, so a dashboard's `active: false`
    differs from a notiflow.json that never mentions `active`.
    """
    mine, theirs = _complete(one), _complete(other)
    return all(_canonical(mine.get(key)) == _canonical(theirs.get(key)) for key in CONTENT_KEYS)


class _Differs(Exception):
    """Somewhere the two contents differ in more than a variable's value."""


def variables_only_difference(
    raw: Mapping[str, Any], other: Mapping[str, Any], env: Mapping[str, str]
) -> frozenset[str] | None:
    """The variables that alone make `other` differ from `raw` (content as written, `${NAME}` not
    substituted): the names whose value in `other` (read back with `extract_values`) is not the one `env`
    gives, or is unset there. None when anything else differs, or nothing does. Values are never returned."""
    names: set[str] = set()

    def walk(mine: Any, theirs: Any) -> None:
        if isinstance(mine, str) and "${" in mine:
            values = extract_values(mine, theirs) if isinstance(theirs, str) else None
            if values is None:
                raise _Differs
            names.update(name for name, value in values.items() if env.get(name) != value)
        elif isinstance(mine, Mapping) and isinstance(theirs, Mapping):
            if set(mine) != set(theirs):
                raise _Differs
            for key in mine:
                walk(mine[key], theirs[key])
        elif isinstance(mine, list) and isinstance(theirs, list):
            if len(mine) != len(theirs):
                raise _Differs
            for a, b in zip(mine, theirs, strict=True):
                walk(a, b)
        elif _canonical(mine) != _canonical(theirs):
            raise _Differs

    try:
        walk(_complete(raw), _complete(other))
    except _Differs:
        return None
    return frozenset(names) or None
