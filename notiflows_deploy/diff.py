"""Semantic diffs of notiflow content, and the three-way view shown for conflicts.

Pure. Works on normalised content (see `normalize`; raw payloads are normalised on the way in), so
volatile server fields never appear. Steps are matched by handle. Rendering is plain text with a stable
order, meant for a Markdown code block; every render masks the caller's secret values as ``***``.

Secret *locations* are masked too (`SecretPath`): a field the repo fills from an environment variable is
shown as ``***`` on every side, so a rotated secret's old value, still on the server and no longer in the
environment, is never printed. Only display is masked: changes are computed, and sides compared, on the
real values; a masked field that differs says so (``"***" -> "***" (changed; the value holds a secret)``).

`secret_paths` may be a mapping from each location to the raw texts it may hold (``Call ${PHONE} now``,
see `envsubst`). A side whose value fits one of them is shown as that text with each variable as ``***``:
what is shown comes from the repo's own text, never from the value, so the wording stays readable and no
value (old or new) can show. When a side's value fits none (its other text changed too), the location is
hidden whole on every side, as without templates.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from notiflows_deploy import envsubst
from notiflows_deploy.normalize import TOP_LEVEL_KEYS, normalize_content
from notiflows_deploy.redact import variants

INLINE_LIMIT = 80  # longer values (or any multi-line string) are shown as a unified diff
MOVE_KEYS = frozenset({"position", "parent_step_handle", "branch_handle"})
INDENT = "    "
MASK = "***"
SECRET_CHANGED = "(changed; the value holds a secret)"

Key = tuple[str | int, ...]
# Where a secret sits, independent of step order: ("", ("name",)) for a top-level field,
# (step handle, path inside the step) for a step field, e.g. ("webhook_1", ("template", "data", "url")).
SecretPath = tuple[str, Key]
# Secret locations with the raw texts each may hold (a plain collection of locations hides them whole).
SecretTemplates = Mapping[SecretPath, Collection[str]]


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Final = _Absent()


@dataclass(frozen=True)
class FieldChange:
    """One leaf that differs; `path` is dotted (``template.data.subject``, ``conditions[0].value``)."""

    path: str
    old: Any  # ABSENT when the field did not exist
    new: Any  # ABSENT when the field is gone
    key: Key = ()  # `path` as keys and indexes (inside the step for step fields)
    shown: tuple[Any, Any] | None = None  # (old, new) as displayed when a secret location is masked

    @property
    def shown_old(self) -> Any:
        return self.shown[0] if self.shown is not None else self.old

    @property
    def shown_new(self) -> Any:
        return self.shown[1] if self.shown is not None else self.new


@dataclass(frozen=True)
class StepChange:
    handle: str
    kind: str  # "added" | "removed" | "changed"
    label: str  # "channel/email", "wait", ...
    fields: tuple[FieldChange, ...] = ()
    sort_key: tuple[int, str] = (0, "")

    @property
    def moved(self) -> bool:
        return self.kind == "changed" and any(f.path in MOVE_KEYS for f in self.fields)

    @property
    def edited(self) -> bool:
        """Changed in something other than its place in the flow."""
        return self.kind == "changed" and any(f.path not in MOVE_KEYS for f in self.fields)


@dataclass(frozen=True)
class NotiflowDiff:
    top: tuple[FieldChange, ...] = ()
    steps: tuple[StepChange, ...] = ()
    old_label: str = "old"
    new_label: str = "new"
    created: bool = False  # `old` was None: everything is new

    @property
    def is_empty(self) -> bool:
        return not self.top and not self.steps

    def summary(self) -> str:
        """One line, e.g. ``name changed; 2 steps changed, 1 added, 1 removed, 1 moved``."""
        if self.is_empty:
            return "no changes"
        if self.created:
            return f"new notiflow with {len(self.steps)} step{'s' if len(self.steps) != 1 else ''}"
        parts: list[str] = []
        if self.top:
            parts.append(", ".join(f.path for f in self.top) + " changed")
        edited = sum(1 for s in self.steps if s.edited)
        added = sum(1 for s in self.steps if s.kind == "added")
        removed = sum(1 for s in self.steps if s.kind == "removed")
        moved = sum(1 for s in self.steps if s.moved and not s.edited)
        counts = [(edited, "changed"), (added, "added"), (removed, "removed"), (moved, "moved")]
        step_parts = [f"{n} {word}" for n, word in counts if n]
        if step_parts:
            first_n = next(n for n, _ in counts if n)
            step_parts[0] = step_parts[0].replace(" ", " step " if first_n == 1 else " steps ", 1)
            parts.append(", ".join(step_parts))
        return "; ".join(parts)

    def render(self, secrets: Collection[str] = ()) -> str:
        lines: list[str] = []
        for change in self.top:
            sign = "+" if change.old is ABSENT else "-" if change.new is ABSENT else "~"
            lines.extend(_field_lines(change, sign + " ", self.old_label, self.new_label, bare=self.created))
        for step in self.steps:
            sign = {"added": "+", "removed": "-"}.get(step.kind, "~")
            lines.append(f"{sign} step {step.handle} ({step.label})")
            for change in step.fields:
                lines.extend(
                    _field_lines(change, INDENT, self.old_label, self.new_label, bare=step.kind == "added")
                )
        return mask("\n".join(lines), secrets)

    def change_map(self) -> dict[tuple[str, str], FieldChange]:
        """Every change keyed by (step handle or "", path); a removed step is one entry with path "(step)"."""
        out: dict[tuple[str, str], FieldChange] = {("", f.path): f for f in self.top}
        for step in self.steps:
            if step.kind == "removed":
                out[(step.handle, "(step)")] = FieldChange("(step)", step.label, ABSENT)
            else:
                out.update({(step.handle, f.path): f for f in step.fields})
        return out


# ---- computing ------------------------------------------------------------------------------------


def _leaves(value: Any, prefix: str, key: Key = ()) -> Iterable[tuple[str, Key, Any]]:
    if isinstance(value, Mapping) and value:
        for name in sorted(value):
            yield from _leaves(value[name], f"{prefix}.{name}" if prefix else str(name), (*key, name))
    else:
        yield prefix, key, value


def _compare(old: Any, new: Any, prefix: str, key: Key = ()) -> list[FieldChange]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[FieldChange] = []
        for name in sorted(set(old) | set(new)):
            path = f"{prefix}.{name}" if prefix else str(name)
            sub = (*key, name)
            if name not in old:
                out.extend(FieldChange(p, ABSENT, v, k) for p, k, v in _leaves(new[name], path, sub))
            elif name not in new:
                out.extend(FieldChange(p, v, ABSENT, k) for p, k, v in _leaves(old[name], path, sub))
            else:
                out.extend(_compare(old[name], new[name], path, sub))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out.extend(_compare(a, b, f"{prefix}[{i}]", (*key, i)))
        return out
    if _canonical(old) == _canonical(new):
        return []
    return [FieldChange(prefix, old, new, key)]


# ---- secret locations -----------------------------------------------------------------------------


def secret_paths_from_payload(payload: Mapping[str, Any] | None, paths: Iterable[Key]) -> frozenset[SecretPath]:
    """Payload paths (``("steps", 3, "template", "data", "url")``) as `SecretPath`s, steps by handle.

    Step keys follow `normalize.normalize_steps` (a step without a handle is ``#<index>``), so the result
    applies to any side of a diff, whatever order its steps are in.
    """
    return frozenset(secret_path_map(payload, paths).values())


def secret_path_map(payload: Mapping[str, Any] | None, paths: Iterable[Key]) -> dict[Key, SecretPath]:
    """Each payload path of `paths` that names a field, to its `SecretPath` (see `secret_paths_from_payload`)."""
    if payload is None:
        return {}
    steps = payload.get("steps")
    handles: dict[int, str] = {}
    if isinstance(steps, list):
        handles = {i: key for key, i in _step_keys(steps).items()}
    out: dict[Key, SecretPath] = {}
    for path in paths:
        if not path:
            continue
        if path[0] == "steps" and len(path) >= 3 and isinstance(path[1], int) and path[1] in handles:
            out[tuple(path)] = (handles[path[1]], tuple(path[2:]))
        elif path[0] != "steps":
            out[tuple(path)] = ("", tuple(path))
    return out


def _step_keys(steps: list[Any]) -> dict[str, int]:
    """The key `normalize_steps` gives each step (mapping steps only), to its index."""
    out: dict[str, int] = {}
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping):
            continue
        handle = step.get("handle")
        key = handle if isinstance(handle, str) and handle else f"#{index}"
        if key in out:
            key = f"{key}#{index}"
        out[key] = index
    return out


def _mask_at(value: Any, rest: Key, shown: str = MASK) -> Any:
    """A copy of `value` with the leaf at `rest` (below it) shown as `shown`; missing paths change nothing."""
    if not rest:
        return shown
    head, tail = rest[0], rest[1:]
    if isinstance(value, Mapping) and head in value:
        return {**value, head: _mask_at(value[head], tail, shown)}
    if isinstance(value, list) and isinstance(head, int) and 0 <= head < len(value):
        return [*value[:head], _mask_at(value[head], tail, shown), *value[head + 1:]]
    return value


def _leaf_view(value: Any, rest: Key, templates: Collection[str]) -> str | None:
    """How the secret leaf at `rest` inside `value` may be shown: the raw text it fits with its variables
    as MASK (a text derived from the template alone), or None when it fits none (hide it whole)."""
    for head in rest:
        inside = (head in value if isinstance(value, Mapping)
                  else isinstance(value, list) and isinstance(head, int) and 0 <= head < len(value))
        if not inside:
            return MASK  # no such leaf on this side: nothing to show or hide
        value = value[head]
    if isinstance(value, str):
        for template in templates:
            if envsubst.extract_values(template, value) is not None:
                return envsubst.masked_template(template, MASK)
    return None


def _mask_change(change: FieldChange, secret_keys: Iterable[tuple[Key, Collection[str]]]) -> FieldChange:
    """`change` with `shown` set when a secret location is at, above or below it."""
    old, new = change.old, change.new
    touched = False
    for secret, templates in secret_keys:
        if secret[: len(change.key)] == change.key:  # the secret is this field or inside it
            rest = secret[len(change.key):]
            old_view = MASK if old is ABSENT else _leaf_view(old, rest, templates)
            new_view = MASK if new is ABSENT else _leaf_view(new, rest, templates)
            if old_view is None or new_view is None:  # a side the repo's text cannot explain: hide both
                old_view = new_view = MASK
            old = old if old is ABSENT else _mask_at(old, rest, old_view)
            new = new if new is ABSENT else _mask_at(new, rest, new_view)
            touched = True
        elif change.key[: len(secret)] == secret:  # a side holds structure where the repo has a secret
            old = old if old is ABSENT else MASK
            new = new if new is ABSENT else MASK
            touched = True
    if not touched:
        return change
    return replace(change, shown=(old, new))


def _masked_changes(changes: Iterable[FieldChange], handle: str,
                    secret_paths: Collection[SecretPath]) -> tuple[FieldChange, ...]:
    templates: SecretTemplates = secret_paths if isinstance(secret_paths, Mapping) else {}
    keys = [(key, templates.get((where, key), ())) for where, key in secret_paths if where == handle]
    if not keys:
        return tuple(changes)
    return tuple(_mask_change(c, keys) for c in changes)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _step_label(step: Mapping[str, Any]) -> str:
    stype = str(step.get("type", "?"))
    if stype == "channel" and step.get("channel_type"):
        return f"channel/{step['channel_type']}"
    return stype


def _position(step: Mapping[str, Any]) -> int:
    pos = step.get("position")
    return pos if isinstance(pos, int) and not isinstance(pos, bool) else 1_000_000


def semantic_diff(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    old_label: str = "old",
    new_label: str = "new",
    secret_paths: Collection[SecretPath] = (),
) -> NotiflowDiff:
    """What changes from `old` to `new` (None: nothing existed). Keys `new` omits are not changes.

    `secret_paths`: locations shown as ``***`` on both sides (see the module docstring).
    """
    before = normalize_content(old) if old is not None else {}
    after = normalize_content(new)
    top: list[FieldChange] = []
    for key in TOP_LEVEL_KEYS:
        if key in after and (key not in before or _canonical(before[key]) != _canonical(after[key])):
            top.append(FieldChange(key, before.get(key, ABSENT), after[key], (key,)))
    steps: list[StepChange] = []
    if "steps" in after:
        old_steps: dict[str, dict[str, Any]] = before.get("steps", {})
        new_steps: dict[str, dict[str, Any]] = after["steps"]
        for handle in sorted(set(old_steps) | set(new_steps)):
            if handle not in old_steps:
                step = new_steps[handle]
                fields = _masked_changes((FieldChange(p, ABSENT, v, k) for p, k, v in _leaves(step, "")), handle,
                                         secret_paths)
                steps.append(StepChange(handle, "added", _step_label(step), fields, (_position(step), handle)))
            elif handle not in new_steps:
                step = old_steps[handle]
                steps.append(StepChange(handle, "removed", _step_label(step), (), (_position(step), handle)))
            else:
                fields = _masked_changes(_compare(old_steps[handle], new_steps[handle], ""), handle, secret_paths)
                if fields:
                    step = new_steps[handle]
                    steps.append(StepChange(handle, "changed", _step_label(step), fields, (_position(step), handle)))
        steps.sort(key=lambda s: s.sort_key)
    return NotiflowDiff(_masked_changes(top, "", secret_paths), tuple(steps), old_label, new_label,
                        created=old is None)


# ---- rendering ------------------------------------------------------------------------------------


def _inline(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _is_long(value: Any) -> bool:
    if value is ABSENT:
        return False
    if isinstance(value, str):
        return "\n" in value or len(value) > INLINE_LIMIT
    return len(_inline(value)) > INLINE_LIMIT


def _as_text(value: Any) -> list[str]:
    if value is ABSENT:
        return []
    if isinstance(value, str):
        return value.splitlines()
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2).splitlines()


def _field_lines(change: FieldChange, lead: str, old_label: str, new_label: str, *, bare: bool) -> list[str]:
    old, new = change.shown_old, change.shown_new
    # Masked sides that look alike still differ for real: say so without showing either value.
    hidden = change.shown is not None and _same_value(old, new)
    if not (_is_long(old) or _is_long(new)):
        if bare:
            return [f"{lead}{change.path}: {_inline(new)}"]
        note = f" {SECRET_CHANGED}" if hidden else ""
        return [f"{lead}{change.path}: {_inline(old)} -> {_inline(new)}{note}"]
    a, b = _as_text(old), _as_text(new)
    pad = lead if lead.strip() == "" else INDENT
    if hidden:
        return [f"{lead}{change.path}: {SECRET_CHANGED}"]
    if a == b:  # only a final newline or line-ending style differs: say so rather than show an empty diff
        return [f"{lead}{change.path}: line endings or the final newline differ ({_ends(old)} -> "
                f"{_ends(new)})"]
    body = difflib.unified_diff(a, b, fromfile=old_label, tofile=new_label, lineterm="", n=2)
    return [f"{lead}{change.path}:", *(f"{pad}  {line}" for line in body)]


def _ends(value: Any) -> str:
    if not isinstance(value, str):
        return _inline(value)[:20]
    crlf = "CRLF" if "\r\n" in value else "LF"
    return f"{crlf}, {'final newline' if value.endswith(chr(10)) else 'no final newline'}"


def mask(text: str, secrets: Collection[str] = ()) -> str:
    """Replace every occurrence of a secret value (and each line of a multi-line one, and the spellings
    a server may echo it in: `redact.variants`) with ``***``."""
    needles: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        needles.add(secret)
        escaped = json.dumps(secret, ensure_ascii=False)[1:-1]  # as it appears inside inline JSON values
        needles.add(escaped)
        needles.update(line for line in secret.splitlines() if line.strip())
        needles.update(variants(secret))
    for needle in sorted(needles, key=len, reverse=True):
        text = text.replace(needle, "***")
    return text


# ---- three-way --------------------------------------------------------------------------------------


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" if line else line for line in text.splitlines())


def three_way(
    base: Mapping[str, Any] | None,
    repo: Mapping[str, Any],
    server: Mapping[str, Any],
    *,
    secrets: Collection[str] = (),
    secret_paths: Collection[SecretPath] = (),
) -> str:
    """Readable conflict view: repo changes since base, server changes since base, and the overlap.

    `secret_paths` are shown as ``***`` on all three sides (overlaps are still found on the real values).
    """
    if base is None:
        direct = semantic_diff(server, repo, old_label="server", new_label="repo", secret_paths=secret_paths)
        text = (
            "The base is unknown (no earlier revision of this notiflow in the range), so the changes cannot be\n"
            "split by side. What a forced push would change on the server (server -> repo):\n"
            + (_indent(direct.render()) if not direct.is_empty else "  (nothing: the contents are equal)")
        )
        return mask(text, secrets)
    # The server may hold top-level keys the repo does not manage; compare only what the repo gives.
    repo_keys = set(normalize_content(repo))
    server_view = {k: v for k, v in normalize_content(server).items() if k in repo_keys}
    ours = semantic_diff(base, repo, old_label="base", new_label="repo", secret_paths=secret_paths)
    theirs = semantic_diff(base, server_view, old_label="base", new_label="server", secret_paths=secret_paths)
    lines = [f"Changed in the repo since base ({ours.summary()}):"]
    lines.append(_indent(ours.render()) if not ours.is_empty else "  (nothing)")
    lines.append(f"Changed on the server since base ({theirs.summary()}):")
    lines.append(_indent(theirs.render()) if not theirs.is_empty else "  (nothing)")
    lines.extend(_overlap_lines(ours.change_map(), theirs.change_map()))
    return mask("\n".join(lines), secrets)


def _same_value(a: Any, b: Any) -> bool:
    if a is ABSENT or b is ABSENT:
        return a is b
    return _canonical(a) == _canonical(b)


def _overlap_lines(mine: dict[tuple[str, str], FieldChange], others: dict[tuple[str, str], FieldChange]) -> list[str]:
    found: list[str] = []
    for key in sorted(set(mine) & set(others)):
        handle, path = key
        where = f"step {handle}" + ("" if path == "(step)" else f" {path}") if handle else path
        a, b = mine[key], others[key]
        if _same_value(a.new, b.new):  # the real values: a masked secret is compared too
            found.append(f"  ! {where}: same change on both sides: {_short(a.shown_new)}")
        else:
            note = " (different values; they hold a secret)" if _same_value(a.shown_new, b.shown_new) else ""
            found.append(f"  ! {where}: repo {_short(a.shown_new)}, server {_short(b.shown_new)}{note}")
    # A step added/removed on one side while the other side edited it.
    for handle in sorted({h for (h, p) in set(mine) ^ set(others) if h and p == "(step)"}):
        whole_mine = (handle, "(step)") in mine
        edits = others if whole_mine else mine
        if any(h == handle and p != "(step)" for (h, p) in edits):
            who, other = ("repo", "server") if whole_mine else ("server", "repo")
            found.append(f"  ! step {handle}: {who} removed it, {other} edited it")
    if not found:
        return ["Changed on both sides: nothing overlaps (the edits touch different fields)."]
    return ["Changed on both sides (overlapping):", *found]


def _short(value: Any) -> str:
    if value is ABSENT:
        return "removed"
    text = _inline(value)
    return text if len(text) <= 40 and "\n" not in text else f"({_describe(value)})"


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"text, {len(value.splitlines()) or 1} lines, {len(value)} chars"
    if isinstance(value, list):
        return f"list of {len(value)}"
    if isinstance(value, dict):
        return f"object with {len(value)} keys"
    return type(value).__name__
