"""Pure logic of the emulator: content normalisation, the content sha and the validation rules.

The sha is the emulator's answer to a gap in the Notiflows docs (CONTRACT section 5): sha256 hex over
the canonical JSON (sorted keys, compact separators, UTF-8, non-ASCII kept) of
``{name, active, include_in_preferences, steps}`` after dropping every key whose value is null.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

# Used with fullmatch: `$` would also accept a final newline (PUT .../nl%0A would create "nl\n").
HANDLE_RE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
STEP_HANDLE_RE = re.compile(r"[a-z0-9_]+")
STEP_TYPES = frozenset({"trigger", "end", "channel", "condition", "wait", "digest", "throttle"})
CHANNEL_TYPES = frozenset({"email", "sms", "in_app", "mobile_push", "web_push", "chat", "webhook"})
# Every channel template needs a body except webhook (where it is optional).
BODY_OPTIONAL = frozenset({"webhook"})
CONTENT_KEYS = ("name", "active", "include_in_preferences", "steps")

FieldError = dict[str, str]
MAX_JSON_DEPTH = 100  # the repo side allows 64 levels in a notiflow.json; control bodies add a few


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (RFC 8259 has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _too_deep(value: Any, limit: int) -> bool:
    """Level by level, iterative: a deep value cannot exhaust the stack here either."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for item in level:
            for child in item.values() if isinstance(item, dict) else item:
                if isinstance(child, (dict, list)):  # the tuple form: faster than a union here
                    below.append(child)
        level = below
    return False


def loads_strict(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads that refuses what strict JSON refuses (NaN, Infinity, numbers overflowing to inf)
    and anything nested deeper than `max_depth`; every refusal is a ValueError with a reason."""
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError(f"nested too deeply (more than {max_depth} levels)") from None
    if _too_deep(value, max_depth):
        raise ValueError(f"nested too deeply (more than {max_depth} levels)")
    return value


def drop_nulls(value: Any) -> Any:
    """Recursively drop dict keys whose value is None (lists keep their items)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def content_sha(content: dict[str, Any]) -> str:
    """sha256 hex of the normalised content (only the four content keys count)."""
    subset = {k: content.get(k) for k in CONTENT_KEYS}
    return hashlib.sha256(canonical_json(drop_nulls(subset))).hexdigest()


def field_error(field: str, message: str, reason: str) -> FieldError:
    return {"field": field, "message": message, "reason": reason}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


def validate_handle(handle: str) -> list[FieldError]:
    if HANDLE_RE.fullmatch(handle):
        return []
    return [
        field_error(
            "handle",
            "must be lowercase letters, digits and single hyphens (e.g. welcome-series)",
            "invalid_format",
        )
    ]


READ_ONLY_KEYS = ("$schema", "__meta")


def validate_top_level(body: dict[str, Any]) -> list[FieldError]:
    """Types of the optional top-level fields of a PUT body."""
    errors: list[FieldError] = [
        # The on-disk format's read-only keys must be stripped by the client before a push.
        field_error(key, "is read-only and must not be sent", "read_only") for key in READ_ONLY_KEYS if key in body
    ]
    if "name" in body and body["name"] is not None and (_blank(body["name"])):
        errors.append(field_error("name", "must be a non-blank string", "invalid_type"))
    for key in ("active", "include_in_preferences"):
        if key in body and body[key] is not None and not isinstance(body[key], bool):
            errors.append(field_error(key, "must be a boolean", "invalid_type"))
    if "expected_sha" in body and body["expected_sha"] is not None and not isinstance(body["expected_sha"], str):
        errors.append(field_error("expected_sha", "must be a string", "invalid_type"))
    if "steps" in body and not isinstance(body["steps"], list):
        errors.append(field_error("steps", "must be a list of steps", "invalid_type"))
    return errors


def _optional_strings(at: str, step: dict[str, Any], keys: tuple[str, ...]) -> list[FieldError]:
    """Fields that, when given, must be strings (a list there would be unhashable further on)."""
    return [
        field_error(f"{at}.{key}", "must be a string", "invalid_type")
        for key in keys
        if step.get(key) is not None and not isinstance(step.get(key), str)
    ]


def _scope(step: dict[str, Any]) -> tuple[str | None, str | None]:
    """The (parent, branch) scope of a step, with anything that is not a string read as absent."""
    parent, branch = step.get("parent_step_handle"), step.get("branch_handle")
    return (parent if isinstance(parent, str) else None, branch if isinstance(branch, str) else None)


def _branch_handles(parent: dict[str, Any]) -> set[str] | None:
    """The branch handles of a condition step (None when its settings hold no branch list)."""
    settings = parent.get("settings")
    branches = settings.get("branches") if isinstance(settings, dict) else None
    if not isinstance(branches, list):
        return None
    return {b["handle"] for b in branches if isinstance(b, dict) and isinstance(b.get("handle"), str)}


def _validate_branches(at: str, step: dict[str, Any]) -> list[FieldError]:
    """A condition's branches: a list of objects, each with a string handle."""
    settings = step.get("settings")
    branches = settings.get("branches") if isinstance(settings, dict) else None
    if branches is None:
        return []
    if not isinstance(branches, list):
        return [field_error(f"{at}.settings.branches", "must be a list of branches", "invalid_type")]
    errors: list[FieldError] = []
    for j, branch in enumerate(branches):
        where = f"{at}.settings.branches[{j}]"
        if not isinstance(branch, dict):
            errors.append(field_error(where, "must be an object", "invalid_type"))
        elif not isinstance(branch.get("handle"), str) or not branch["handle"].strip():
            errors.append(field_error(f"{where}.handle", "must be a non-blank string", "invalid_type"))
    return errors


def validate_steps(steps: Any) -> list[FieldError]:
    """Structural rules checked on every upsert (an invalid upsert is rejected as a whole).

    Defensive: any JSON value in any field is a 422 with details.fields, never an exception.
    """
    if not isinstance(steps, list):
        return [field_error("steps", "must be a list of steps", "invalid_type")]
    errors: list[FieldError] = []
    by_handle: dict[str, dict[str, Any]] = {}
    seen_positions: dict[tuple[str | None, str | None], set[int]] = {}
    for i, step in enumerate(steps):
        at = f"steps[{i}]"
        if not isinstance(step, dict):
            errors.append(field_error(at, "must be an object", "invalid_type"))
            continue
        errors.extend(_optional_strings(at, step, ("parent_step_handle", "branch_handle", "channel_handle", "name")))
        handle = step.get("handle")
        if not isinstance(handle, str) or not handle.strip():
            errors.append(field_error(f"{at}.handle", "can't be blank", "required"))
        elif not STEP_HANDLE_RE.fullmatch(handle):
            errors.append(field_error(f"{at}.handle", "must be lowercase letters, digits and _", "invalid_format"))
        elif handle in by_handle:
            errors.append(field_error(f"{at}.handle", f"step handle {handle!r} is used twice", "duplicate"))
        else:
            by_handle[handle] = step
        stype = step.get("type")
        if not isinstance(stype, str) or stype not in STEP_TYPES:
            errors.append(
                field_error(f"{at}.type", f"unknown step type {stype!r}", "required" if stype is None else "inclusion")
            )
        position = step.get("position")
        if not isinstance(position, int) or isinstance(position, bool) or position < 0:
            errors.append(field_error(f"{at}.position", "must be an integer >= 0", "invalid_type"))
        else:
            taken = seen_positions.setdefault(_scope(step), set())
            if position in taken:
                errors.append(field_error(f"{at}.position", f"position {position} is used twice", "duplicate"))
            taken.add(position)
        if "settings" in step and step["settings"] is not None and not isinstance(step["settings"], dict):
            errors.append(field_error(f"{at}.settings", "must be an object", "invalid_type"))
        if stype == "channel":
            errors.extend(_validate_channel_step(at, step))
        elif stype == "condition":
            errors.extend(_validate_branches(at, step))
    errors.extend(_validate_branch_children(steps, by_handle))
    root = [(i, s) for i, s in enumerate(steps) if isinstance(s, dict) and s.get("parent_step_handle") is None]
    if not any(s.get("type") == "trigger" and s.get("position") == 0 for _, s in root):
        errors.append(field_error("steps", "the root sequence must start with a trigger step at position 0",
                                  "missing_trigger"))
    ends = [(i, s) for i, s in root if s.get("type") == "end"]
    if not ends:
        errors.append(field_error("steps", "the root sequence must finish with an end step", "missing_end"))
    else:
        positions: list[int] = [s["position"] for _, s in root if _is_int(s.get("position"))]
        i, end = ends[0]
        if positions and _is_int(end.get("position")) and end["position"] != max(positions):
            errors.append(field_error(f"steps[{i}].position", "the end step must be last", "invalid"))
    return errors


def _validate_branch_children(steps: list[Any], by_handle: dict[str, dict[str, Any]]) -> list[FieldError]:
    """Steps in a branch: parent_step_handle names a condition step and branch_handle one of its
    branches; one of the two without the other puts the step in no scope at all."""
    errors: list[FieldError] = []
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        at = f"steps[{i}]"
        parent_handle, branch = _scope(step)
        if parent_handle is None:
            if branch is not None and step.get("parent_step_handle") is None:
                errors.append(field_error(f"{at}.branch_handle",
                                          "is set but parent_step_handle is not: the step belongs to no condition",
                                          "invalid"))
            continue
        parent = by_handle.get(parent_handle)
        if parent is None or parent.get("type") != "condition":
            errors.append(
                field_error(f"{at}.parent_step_handle", "must be the handle of a condition step", "invalid")
            )
            continue
        if branch is None or not branch.strip():
            if step.get("branch_handle") is None or isinstance(step.get("branch_handle"), str):
                errors.append(field_error(f"{at}.branch_handle", "can't be blank", "required"))
            continue
        names = _branch_handles(parent)
        if names is not None and branch not in names:
            errors.append(field_error(f"{at}.branch_handle", f"no branch {branch!r} in the parent", "invalid"))
    return errors


def _validate_channel_step(at: str, step: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    ctype = step.get("channel_type")
    if not isinstance(ctype, str) or ctype not in CHANNEL_TYPES:
        reason = "required" if ctype is None else "inclusion"
        errors.append(field_error(f"{at}.channel_type", f"unknown channel type {ctype!r}", reason))
    template = step.get("template")
    if template is None:
        return errors  # a step without a template is valid, just not publishable
    if not isinstance(template, dict):
        return [*errors, field_error(f"{at}.template", "must be an object", "invalid_type")]
    tctype = template.get("channel_type")
    if tctype is not None and tctype != ctype:
        errors.append(field_error(f"{at}.template.channel_type", "must equal the step's channel_type", "invalid"))
    data = template.get("data")
    if not isinstance(data, dict):
        return [*errors, field_error(f"{at}.template.data", "must be an object", "invalid_type")]
    for key in data:
        if isinstance(key, str) and key.endswith("@"):
            errors.append(field_error(f"{at}.template.data.{key}", "file pointers must be resolved before a push",
                                      "unresolved_pointer"))
    if (ctype if isinstance(ctype, str) else None) not in BODY_OPTIONAL and _blank(data.get("body")):
        errors.append(field_error(f"{at}.template.data.body", "can't be blank", "required"))
    return errors


def validate_for_publish(steps: Any) -> list[FieldError]:
    """Upsert rules plus what a live flow needs: every channel step has a channel and a template."""
    errors = validate_steps(steps)
    if not isinstance(steps, list):
        return errors
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or step.get("type") != "channel":
            continue
        if _blank(step.get("channel_handle")):
            errors.append(field_error(f"steps[{i}].channel_handle", "can't be blank", "required"))
        if step.get("template") is None:
            errors.append(field_error(f"steps[{i}].template", "a channel step needs a template", "required"))
    return errors
