"""Format rules for one notiflow.json that JSON Schema cannot express.

Pure: takes the decoded document, returns `Finding`s carrying a JSON path (no positions, no I/O);
`validate.DocumentChecker` turns them into located `Problem`s. Every rule is defensive: it runs on
documents that already failed the schema and skips anything that is not the expected type
(a list where a string belongs is never hashed or compared).

The document is the one that is pushed (after `${NAME}` substitution); `raw` maps the path of
each substituted string to its text as written, and messages quote that text, never the value.

| code                     | severity | what                                                                  |
|--------------------------|----------|-----------------------------------------------------------------------|
| trigger-missing          | error    | no step of type `trigger`                                             |
| trigger-duplicate        | error    | more than one `trigger` (reported on each extra one)                  |
| trigger-position         | error    | the trigger is not at position 0 of the root sequence                 |
| end-missing              | error    | no step of type `end`                                                 |
| end-duplicate            | error    | more than one `end`                                                   |
| end-position             | error    | the end step is not last in the root sequence                         |
| step-handle-duplicate    | error    | two steps share a handle                                              |
| step-handle-style        | warning  | handle outside the vendor's documented pattern ^[a-z_]+(_\\d+)?$      |
| position-duplicate       | error    | two steps share a position within one scope                           |
| position-gap             | error    | positions of a scope do not run 0..n-1                                |
| parent-unknown           | error    | parent_step_handle names no step (an orphaned step)                   |
| parent-not-condition     | error    | parent_step_handle names a step that is not a condition               |
| branch-unknown           | error    | branch_handle is not a branch of the parent condition                 |
| branch-incomplete        | error    | only one of parent_step_handle / branch_handle is set (the other null)|
| step-cycle               | error    | parent_step_handle chain loops back on itself                         |
| branch-handle-duplicate  | error    | two branches of one condition share a handle                          |
| branches-all-finish      | error    | every branch of a condition has finish: true                          |
| condition-depth          | error    | conditions nested more than MAX_CONDITION_DEPTH deep                  |
| template-channel-mismatch| error    | template.channel_type differs from the step's channel_type            |
| body-empty               | error    | an inline template body is empty or whitespace only                   |
| text-blank               | error    | `name`, or a text the channel requires (subject, title, url), is blank|
| body-extension           | warning  | the `body@` file's extension does not suit the channel type           |

The branch count (2..10) is left to the schema (minItems/maxItems) so it is reported once, and so
are positions the schema refuses (a negative one is not also "not at position 0"). Every finding
carries a hint; a hint never spells out a substituted value (no "did you mean" for one).
"""

from __future__ import annotations

import difflib
import posixpath
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import Severity

Path = tuple[str | int, ...]

MAX_CONDITION_DEPTH = 5
# Matched with fullmatch: `$` would also accept a trailing newline ("email_1\n").
VENDOR_HANDLE = re.compile(r"[a-z_]+(_[0-9]+)?")
LOOSE_HANDLE = re.compile(r"[a-z_][a-z0-9_]*")
BODY_EXTENSIONS: dict[str, str] = {
    "email": ".html",
    "in_app": ".md",
    "chat": ".md",
    "sms": ".txt",
    "mobile_push": ".txt",
    "web_push": ".txt",
    "webhook": ".json",
}
BODY_OPTIONAL = frozenset({"webhook"})
# Template texts (besides the body) a channel requires: blank ones are refused by the server.
REQUIRED_TEXT: dict[str, tuple[str, ...]] = {
    "email": ("subject",),
    "web_push": ("title",),
    "mobile_push": ("title",),
    "webhook": ("url",),
}
STEP_TYPES = frozenset({"trigger", "end", "channel", "condition", "wait", "digest", "throttle"})


@dataclass(frozen=True)
class Finding:
    code: str
    path: Path
    message: str
    severity: Severity = Severity.ERROR
    hint: str = ""
    key: bool = False  # locate the key at `path` rather than its value


@dataclass(frozen=True)
class _Step:
    index: int
    data: dict[str, Any]
    raw: Mapping[Path, str] = field(default_factory=dict, repr=False)  # substituted strings as written

    @property
    def path(self) -> Path:
        return ("steps", self.index)

    def str_field(self, name: str) -> str | None:
        value = self.data.get(name)
        return value if isinstance(value, str) else None

    def text(self, value: str, *where: str | int) -> str:
        """`value`, found at `where` inside this step, as a message may show it (as written)."""
        return self.raw.get((*self.path, *where), value)

    def show(self, value: str, *where: str | int) -> str:
        """`text` quoted, as in the messages: 'email_1' or '${HANDLE}'."""
        return repr(self.text(value, *where))

    def substituted(self, *where: str | int) -> bool:
        return (*self.path, *where) in self.raw

    @property
    def handle(self) -> str | None:
        return self.str_field("handle")

    @property
    def type(self) -> str | None:
        return self.str_field("type")

    @property
    def position(self) -> int | None:
        value = self.data.get("position")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def parent(self) -> str | None:
        return self.str_field("parent_step_handle")

    @property
    def branch(self) -> str | None:
        return self.str_field("branch_handle")

    def branches(self) -> list[tuple[int, dict[str, Any]]]:
        settings = self.data.get("settings")
        branches = settings.get("branches") if isinstance(settings, dict) else None
        if not isinstance(branches, list):
            return []
        return [(i, b) for i, b in enumerate(branches) if isinstance(b, dict)]

    def branch_handles(self) -> set[str]:
        return {b["handle"] for _, b in self.branches() if isinstance(b.get("handle"), str)}

    def shown_branch_handles(self) -> list[str]:
        """This condition's branch handles as a message may show them, sorted."""
        return sorted({
            self.text(b["handle"], "settings", "branches", i, "handle")
            for i, b in self.branches() if isinstance(b.get("handle"), str)
        })


def check_rules(document: Any, *, raw: Mapping[Path, str] | None = None) -> list[Finding]:
    """Every format-rule finding for `document` (the decoded notiflow.json), in document order.

    `raw`: the text as written of every substituted string, by path (quoted instead of the value).
    """
    if not isinstance(document, dict) or not isinstance(document.get("steps"), list):
        return []
    written = raw or {}
    steps = [_Step(i, s, written) for i, s in enumerate(document["steps"]) if isinstance(s, dict)]
    findings: list[Finding] = []
    findings.extend(_blank_name(document))
    for rule in (_terminal_steps, _handles, _tree, _branch_scope, _positions, _branches, _templates):
        findings.extend(rule(steps))
    return findings


def is_blank(value: Any) -> bool:
    """A string holding nothing but whitespace (or nothing at all)."""
    return isinstance(value, str) and not value.strip()


def _blank_name(document: dict[str, Any]) -> Iterator[Finding]:
    name = document.get("name")
    if is_blank(name) and name:  # "" is the schema's (minLength: "must not be empty")
        yield Finding(
            "text-blank",
            ("name",),
            "name: the notiflow's name is blank (only whitespace); the server refuses a blank name",
            hint='write a display name, e.g. "name": "Welcome series"',
        )


def _terminal_steps(steps: list[_Step]) -> Iterator[Finding]:
    root = [s for s in steps if s.parent is None and s.branch is None]
    root_positions = [s.position for s in root if s.position is not None]
    last = max(root_positions, default=None)
    for kind in ("trigger", "end"):
        found = [s for s in steps if s.type == kind]
        if not found:
            yield Finding(
                f"{kind}-missing",
                ("steps",),
                f"steps: there is no {kind!r} step; every notiflow keeps exactly one",
                key=True,
                hint=f'add {{ "handle": "{kind}", "type": "{kind}", "position": ... }}'
                + (" at position 0" if kind == "trigger" else " as the last root step"),
            )
            continue
        for extra in found[1:]:
            yield Finding(
                f"{kind}-duplicate",
                (*extra.path, "type"),
                f"{_name(extra)}: a second {kind!r} step; a notiflow has exactly one",
                hint=f"the first one is steps[{found[0].index}]",
            )
        step = found[0]
        if len(found) > 1:
            continue  # where "last" is depends on which one is removed; the duplicate says enough
        position = step.position if step.position is not None and step.position >= 0 else None  # else the schema's
        if step.parent is not None or step.branch is not None:
            key = "parent_step_handle" if step.parent is not None else "branch_handle"
            yield Finding(
                f"{kind}-position",
                (*step.path, key),
                f"{_name(step)}: the {kind} step must be in the root sequence, not inside a branch",
                key=True,
                hint=f'remove "parent_step_handle" and "branch_handle" from the {kind} step',
            )
        elif kind == "trigger" and position is not None and position != 0:
            yield Finding(
                "trigger-position",
                (*step.path, "position"),
                f"{_name(step)}.position: the trigger step must be at position 0, not {position}",
                hint="give the trigger position 0 and number the other root steps after it: 1, 2, ...",
            )
        elif kind == "end" and position is not None and last is not None and position != last:
            yield Finding(
                "end-position",
                (*step.path, "position"),
                f"{_name(step)}.position: the end step must be last in the root sequence "
                f"(position {last}), not at {position}",
                hint="give the end step the highest position of the root sequence and renumber the steps before it",
            )


def _handles(steps: list[_Step]) -> Iterator[Finding]:
    first: dict[str, _Step] = {}
    for step in steps:
        handle = step.handle
        if handle is None:
            continue
        if handle in first:
            yield Finding(
                "step-handle-duplicate",
                (*step.path, "handle"),
                f"{_name(step)}.handle: {step.show(handle, 'handle')} is already the handle of "
                f"steps[{first[handle].index}]",
                hint="step handles must be unique within a notiflow",
            )
            continue
        first[handle] = step
        if not VENDOR_HANDLE.fullmatch(handle) and LOOSE_HANDLE.fullmatch(handle):
            yield Finding(
                "step-handle-style",
                (*step.path, "handle"),
                f"{_name(step)}.handle: {step.show(handle, 'handle')} does not follow the documented handle pattern "
                f"^[a-z_]+(_\\d+)?$ (e.g. email_1); the server may refuse it",
                severity=Severity.WARNING,
                hint="name it like the vendor does: lowercase words joined by _, optionally ending in _<number>",
            )


def _tree(steps: list[_Step]) -> Iterator[Finding]:
    """Parent references, cycles and condition nesting depth."""
    by_handle: dict[str, _Step] = {}
    for step in steps:
        if step.handle is not None:
            by_handle.setdefault(step.handle, step)
    for step in steps:
        parent_handle = step.parent
        if parent_handle is None:
            continue
        parent = by_handle.get(parent_handle)
        where = (*step.path, "parent_step_handle")
        if parent is None:
            close = "" if step.substituted("parent_step_handle") else _close(parent_handle, [
                s.handle for s in steps if s.type == "condition" and s.handle and not s.substituted("handle")
            ])
            yield Finding(
                "parent-unknown",
                where,
                f"{_name(step)}.parent_step_handle: no step has the handle "
                f"{step.show(parent_handle, 'parent_step_handle')}, so this step is orphaned",
                hint=close or "set it to the handle of a condition step of this notiflow, or remove "
                '"parent_step_handle" and "branch_handle" to put the step in the root sequence',
            )
        elif parent.type != "condition" and parent.type in STEP_TYPES:  # an unknown type is the schema's
            yield Finding(
                "parent-not-condition",
                where,
                f"{_name(step)}.parent_step_handle: {step.show(parent_handle, 'parent_step_handle')} is a "
                f"{parent.show(parent.type, 'type')} step; only condition steps have branches",
                hint="point parent_step_handle at a condition step, or remove \"parent_step_handle\" and "
                '"branch_handle" to put the step in the root sequence',
            )
        elif step.branch is not None and step.branch not in parent.branch_handles():
            branches = parent.shown_branch_handles()
            yield Finding(
                "branch-unknown",
                (*step.path, "branch_handle"),
                f"{_name(step)}.branch_handle: condition {step.show(parent_handle, 'parent_step_handle')} has no "
                f"branch {step.show(step.branch, 'branch_handle')}"
                + (f" (its branches: {', '.join(branches)})" if branches else ""),
                hint=("" if step.substituted("branch_handle") else _close(step.branch, branches))
                or ("use one of the condition's branch handles, or add this branch to its settings.branches"),
            )

    # Cycles: follow each chain; report a loop once, on the step of the loop that comes first.
    reported: set[str] = set()
    for step in steps:
        chain: list[str] = []
        current: _Step | None = step
        while current is not None and current.handle is not None and current.handle not in chain:
            chain.append(current.handle)
            current = by_handle.get(current.parent) if current.parent is not None else None
        if current is None or current.handle is None:
            continue
        loop = chain[chain.index(current.handle):]
        if step.handle in loop and not reported.intersection(loop):
            reported.update(loop)
            yield Finding(
                "step-cycle",
                (*step.path, "parent_step_handle"),
                f"{_name(step)}.parent_step_handle: the parent chain loops: "
                + " -> ".join(by_handle[h].text(h, "handle") for h in [*loop, loop[0]]),
                hint="a branch child cannot contain its own ancestor",
            )

    # Nesting depth: report where the limit is first exceeded, not on every deeper step.
    for step in steps:
        if step.type != "condition":
            continue
        depth, current, seen = 1, step, {step.handle}
        while current.parent is not None:
            parent = by_handle.get(current.parent)
            if parent is None or parent.handle in seen:
                break
            seen.add(parent.handle)
            if parent.type == "condition":
                depth += 1
            current = parent
        if depth == MAX_CONDITION_DEPTH + 1:
            yield Finding(
                "condition-depth",
                (*step.path, "type"),
                f"{_name(step)}: condition steps are nested {depth} deep; at most {MAX_CONDITION_DEPTH} are allowed",
                hint="flatten the logic: merge a nested condition into its parent (more branches, or combined "
                "conditions in one branch)",
            )


def _branch_scope(steps: list[_Step]) -> Iterator[Finding]:
    """parent_step_handle and branch_handle come together: one set and the other null is no scope at all.

    A key that is absent is the schema's (dependentRequired); this is the case it cannot see: null.
    """
    for step in steps:
        parent, branch = step.parent, step.branch
        if (parent is None) == (branch is None):
            continue
        if branch is not None and "parent_step_handle" in step.data and step.data["parent_step_handle"] is None:
            yield Finding(
                "branch-incomplete",
                (*step.path, "branch_handle"),
                f"{_name(step)}.branch_handle: {step.show(branch, 'branch_handle')} names a branch, but "
                "parent_step_handle is null, so the step belongs to no condition",
                key=True,
                hint="set parent_step_handle to the condition step that has this branch, or set branch_handle "
                "to null for a step in the root sequence",
            )
        elif parent is not None and "branch_handle" in step.data and step.data["branch_handle"] is None:
            yield Finding(
                "branch-incomplete",
                (*step.path, "parent_step_handle"),
                f"{_name(step)}.parent_step_handle: the step is inside condition "
                f"{step.show(parent, 'parent_step_handle')}, but branch_handle is null, so it is in none of "
                "its branches",
                key=True,
                hint="set branch_handle to one of the condition's branch handles, or set parent_step_handle to "
                "null for a step in the root sequence",
            )


def _positions(steps: list[_Step]) -> Iterator[Finding]:
    scopes: dict[tuple[str | None, str | None], list[_Step]] = {}
    unusable: set[tuple[str | None, str | None]] = set()  # scopes with a position the schema rejects
    for step in steps:
        scope_key = (step.parent, step.branch)
        if (step.parent is None) != (step.branch is None):
            continue  # half a branch reference is no scope (branch-incomplete, or the schema, says so)
        if step.position is not None and step.position >= 0:
            scopes.setdefault(scope_key, []).append(step)
        else:
            unusable.add(scope_key)
    for (parent, branch), members in scopes.items():
        scope = _scope_name(members[0])
        counts = Counter(s.position for s in members)
        if any(n > 1 for n in counts.values()):
            seen: dict[int, _Step] = {}
            for step in members:
                pos = step.position
                assert pos is not None
                if pos in seen:
                    yield Finding(
                        "position-duplicate",
                        (*step.path, "position"),
                        f"{_name(step)}.position: position {pos} is already used by steps[{seen[pos].index}] "
                        f"in {scope}",
                        hint="positions in a scope must be unique and run 0, 1, 2, ...",
                    )
                else:
                    seen[pos] = step
            continue
        if (parent, branch) in unusable:
            continue  # a gap would only echo the schema error on the bad position
        wanted = set(range(len(members)))
        missing = sorted(wanted - counts.keys())
        if missing:
            gap = missing[0]
            after = min((s for s in members if s.position is not None and s.position > gap),
                        key=lambda s: s.position or 0)
            yield Finding(
                "position-gap",
                (*after.path, "position"),
                f"{_name(after)}.position: positions in {scope} must run 0..{len(members) - 1} without gaps; "
                f"{gap} is missing",
                hint=f"renumber {scope}: 0, 1, 2, ...",
            )


def _branches(steps: list[_Step]) -> Iterator[Finding]:
    for step in steps:
        if step.type != "condition":
            continue
        branches = step.branches()
        seen: dict[str, int] = {}
        for i, branch in branches:
            handle = branch.get("handle")
            if not isinstance(handle, str):
                continue
            if handle in seen:
                yield Finding(
                    "branch-handle-duplicate",
                    (*step.path, "settings", "branches", i, "handle"),
                    f"{_name(step)}.settings.branches[{i}].handle: "
                    f"{step.show(handle, 'settings', 'branches', i, 'handle')} is already used by "
                    f"branches[{seen[handle]}]",
                    hint="branch handles must be unique within a condition step",
                )
            else:
                seen[handle] = i
        if len(branches) >= 2 and all(b.get("finish") is True for _, b in branches):
            yield Finding(
                "branches-all-finish",
                (*step.path, "settings", "branches"),
                f"{_name(step)}.settings.branches: every branch has finish: true; at least one must continue",
                hint="set finish to false on the default branch",
            )


def _templates(steps: list[_Step]) -> Iterator[Finding]:
    for step in steps:
        if step.type != "channel":
            continue
        template = step.data.get("template")
        if not isinstance(template, dict):
            continue
        step_channel = step.str_field("channel_type")
        template_channel = template.get("channel_type")
        if (
            isinstance(template_channel, str)
            and step_channel in BODY_EXTENSIONS  # an unknown step channel_type is the schema's to report
            and template_channel != step_channel
        ):
            yield Finding(
                "template-channel-mismatch",
                (*step.path, "template", "channel_type"),
                f"{_name(step)}.template.channel_type: {step.show(template_channel, 'template', 'channel_type')} "
                f"does not match the step's channel_type {step.show(step_channel, 'channel_type')}",
                hint="write the same channel type in both: template.channel_type must equal the step's channel_type",
            )
        channel = template_channel if isinstance(template_channel, str) else step_channel
        channel_shown = (step.text(template_channel, "template", "channel_type") if isinstance(template_channel, str)
                         else step.text(step_channel or "", "channel_type"))
        data = template.get("data")
        if not isinstance(data, dict):
            continue
        body = data.get("body")
        if isinstance(body, str) and not body.strip() and channel not in BODY_OPTIONAL:
            yield Finding(
                "body-empty",
                (*step.path, "template", "data", "body"),
                f"{_name(step)}.template.data.body: the body is empty; a channel step needs a non-empty body",
                hint='write the template body here, or extract it into a file and point at it with "body@"',
            )
        yield from _blank_texts(step, data, channel, channel_shown)
        pointer = data.get("body@")
        expected = BODY_EXTENSIONS.get(channel or "")
        if isinstance(pointer, str) and expected:
            ext = posixpath.splitext(pointer)[1].lower()
            if ext != expected:
                yield Finding(
                    "body-extension",
                    (*step.path, "template", "data", "body@"),
                    f"{_name(step)}.template.data.body@: the body file of {article(channel_shown)} "
                    f"{channel_shown} step should end in {expected}, not {ext or '(no extension)'!s}",
                    severity=Severity.WARNING,
                    hint=f"rename it to steps/{_plain_handle(step)}/body{expected}",
                )


def _blank_texts(step: _Step, data: dict[str, Any], channel: str | None, shown: str) -> Iterator[Finding]:
    """The texts the channel requires (subject, title, url): present but blank. A missing one is the schema's."""
    for key in REQUIRED_TEXT.get(channel or "", ()):
        if is_blank(data.get(key)):
            yield Finding(
                "text-blank",
                (*step.path, "template", "data", key),
                f"{_name(step)}.template.data.{key}: the {key} is blank; {article(shown)} {shown} template "
                f"needs a {key}",
                hint=f"write the {key} here, or extract it into a file and point at it with \"{key}@\"",
            )


def _name(step: _Step) -> str:
    return f"steps[{step.index}]"


def _scope_name(step: _Step) -> str:
    """The scope `step` is in, for messages: "the root sequence" or "branch <parent>/<branch>" (as written)."""
    parent, branch = step.parent, step.branch
    if parent is None and branch is None:
        return "the root sequence"
    shown_parent = step.text(parent, "parent_step_handle") if parent is not None else "None"
    shown_branch = step.text(branch, "branch_handle") if branch is not None else "None"
    return f"branch {shown_parent}/{shown_branch}"


def _plain_handle(step: _Step) -> str:
    """The step's handle for a path in a hint; a substituted one is not spelled out."""
    handle = step.handle
    return handle if handle is not None and not step.substituted("handle") else "<handle>"


def article(word: str) -> str:
    """ "a" or "an" before `word`: "an email step", "an in_app step", "an sms step" (read "an SMS")."""
    first = word[:1].lower()
    return "an" if (first and first in "aeio") or word.lower().startswith("sms") else "a"


def _close(word: str, options: list[str]) -> str:
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else ""
