"""Turn a GitHub Actions event into the commit range whose changes count.

Pure except `read_event_file` (and `range_request_from_env`, which calls it), which read
GITHUB_EVENT_PATH.

The payload is read defensively: scheduled payloads have historically been `{"schedule": ...}`
only, and any key may be missing or of the wrong type, so every lookup tolerates that.
`gitrepo.GitRepo.resolve_range` turns the request into real commits (and handles zero shas,
force pushes and shallow clones).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ZERO_SHA = "0" * 40

# RangeRequest.kind values
KIND_PULL_REQUEST = "pull_request"  # diff merge-base(base, head)..head
KIND_PUSH = "push"  # diff before..after
KIND_NEW_BRANCH = "push-new-branch"  # push that created a branch: no usable `before`
KIND_DELETED = "push-deleted"  # push that deleted a branch: nothing to deploy
KIND_MERGE_GROUP = "merge_group"
KIND_EVERYTHING = "everything"  # schedule, workflow_dispatch
KIND_DEFAULT = "default"  # unknown event or not under Actions: HEAD~1..HEAD


@dataclass(frozen=True)
class RangeRequest:
    """What the event asks for, before looking at the repository.

    `base`/`head` are commit shas (or refs) as the event names them; None means "decide from the
    repository" (head: HEAD; base: HEAD's first parent, or the new-branch rules).
    """

    base: str | None
    head: str | None
    everything: bool
    reason: str
    kind: str
    # pull_request only: GITHUB_SHA, the test merge commit (pull_request_target checks out the base tip)
    merge_commit: str | None = None
    ref: str | None = None  # the pushed ref, e.g. refs/heads/main
    default_branch: str | None = None  # repository.default_branch when the payload has it
    forced: bool = False


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _sha(value: Any) -> str | None:
    """A usable sha from the payload: a non-empty string that is not the all-zero id."""
    if not isinstance(value, str):
        return None
    text: str = value.strip()
    if not text or set(text) == {"0"}:
        return None
    return text


def _is_zero(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and set(value.strip()) == {"0"}


def parse_event_payload(text: str | bytes | None) -> dict[str, Any]:
    """The event JSON as a dict; {} when missing, empty or not a JSON object (never raises)."""
    return _parse_payload(text, "the event payload")[0]


def _parse_payload(text: str | bytes | None, where: str) -> tuple[dict[str, Any], str | None]:
    """(payload, what is wrong with it or None); never raises."""
    if text is None or not text.strip():
        return {}, f"{where} is empty"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, f"{where} is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    except (ValueError, UnicodeDecodeError):
        return {}, f"{where} is not UTF-8 JSON"
    if not isinstance(data, dict):
        return {}, f"{where} holds a JSON {type(data).__name__}, not an object"
    return data, None


@dataclass(frozen=True)
class EventFile:
    payload: dict[str, Any]
    problem: str | None  # what is wrong with GITHUB_EVENT_PATH or its content, for the run's notes


def read_event_file(env: Mapping[str, str]) -> EventFile:
    """The payload GITHUB_EVENT_PATH names, and what went wrong reading it (never raises)."""
    path = env.get("GITHUB_EVENT_PATH", "")
    if not path:
        return EventFile({}, "GITHUB_EVENT_PATH is not set")
    where = f"the event file {path} (GITHUB_EVENT_PATH)"
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except FileNotFoundError:
        return EventFile({}, f"{where} does not exist")
    except OSError as exc:
        return EventFile({}, f"cannot read {where}: {exc.strerror or exc}")
    payload, problem = _parse_payload(text, where)
    return EventFile(payload, problem)


def _missing(payload: Mapping[str, Any], problem: str | None, *keys: str) -> str:
    """Why the payload gives no usable sha at `keys`: the file's own problem first."""
    if problem:
        return problem
    value = _get(payload, *keys)
    name = ".".join(keys)
    if value is None:
        return f"the payload has no `{name}`"
    return f"`{name}` in the payload is not a commit sha ({json.dumps(value)[:60]})"


def range_request(
    event_name: str | None, event: Mapping[str, Any] | None, *, github_sha: str | None = None,
    payload_problem: str | None = None,
) -> RangeRequest:
    """The range request for `event_name` (GITHUB_EVENT_NAME) and its parsed payload.

    `payload_problem` says what was wrong with the event file (see `read_event_file`); a fallback
    to HEAD~1..HEAD names it, so the note says exactly why the event's range was not used.
    """
    name = (event_name or "").strip()
    payload: Mapping[str, Any] = event if isinstance(event, Mapping) else {}
    sha = _sha(github_sha)
    default_branch = _get(payload, "repository", "default_branch")
    default_branch = default_branch if isinstance(default_branch, str) and default_branch else None

    if name in ("pull_request", "pull_request_target"):
        base = _sha(_get(payload, "pull_request", "base", "sha"))
        head = _sha(_get(payload, "pull_request", "head", "sha"))
        number = _get(payload, "pull_request", "number") or _get(payload, "number")
        label = f"pull request #{number}" if isinstance(number, int) else "pull request"
        # Only pull_request runs on a merge commit; pull_request_target's GITHUB_SHA is the base branch tip,
        # whose first parent (when it is itself a merge) is an older base, not "ours".
        merge = sha if name == "pull_request" else None
        if base is None or head is None:
            # Payload without the shas: fall back to the checked-out commit and its parent.
            keys = ("pull_request", "base", "sha") if base is None else ("pull_request", "head", "sha")
            return RangeRequest(
                None, sha, False, f"{name} event: {_missing(payload, payload_problem, *keys)}; using HEAD~1..HEAD",
                KIND_DEFAULT, merge_commit=merge, default_branch=default_branch,
            )
        return RangeRequest(
            base, head, False, f"{label}: changes since the merge base of {base[:12]} and {head[:12]}",
            KIND_PULL_REQUEST, merge_commit=merge, default_branch=default_branch,
        )

    if name == "push":
        ref = _get(payload, "ref")
        ref = ref if isinstance(ref, str) and ref else None
        forced = _get(payload, "forced") is True
        after_raw = _get(payload, "after")
        if _get(payload, "deleted") is True or _is_zero(after_raw):
            return RangeRequest(
                None, None, False, f"push deleted {ref or 'a ref'}: nothing to deploy", KIND_DELETED,
                ref=ref, default_branch=default_branch,
            )
        after = _sha(after_raw) or sha
        before_raw = _get(payload, "before")
        if _is_zero(before_raw) or _get(payload, "created") is True:
            return RangeRequest(
                None, after, False, f"push created {ref or 'a branch'} (no previous commit)", KIND_NEW_BRANCH,
                ref=ref, default_branch=default_branch, forced=forced,
            )
        before = _sha(before_raw)
        if before is None:
            return RangeRequest(
                None, after, False, f"push event: {_missing(payload, payload_problem, 'before')}; using HEAD~1..HEAD",
                KIND_DEFAULT, ref=ref, default_branch=default_branch, forced=forced,
            )
        return RangeRequest(
            before, after, False, f"push {before[:12]}..{(after or 'HEAD')[:12]}" + (" (forced)" if forced else ""),
            KIND_PUSH, ref=ref, default_branch=default_branch, forced=forced,
        )

    if name == "merge_group":
        base = _sha(_get(payload, "merge_group", "base_sha"))
        head = _sha(_get(payload, "merge_group", "head_sha")) or sha
        if base is None:
            why = _missing(payload, payload_problem, "merge_group", "base_sha")
            return RangeRequest(
                None, head, False, f"merge_group event: {why}; using HEAD~1..HEAD", KIND_DEFAULT,
                default_branch=default_branch,
            )
        return RangeRequest(
            base, head, False, f"merge group {base[:12]}..{(head or 'HEAD')[:12]}", KIND_MERGE_GROUP,
            default_branch=default_branch,
        )

    if name in ("schedule", "workflow_dispatch"):
        return RangeRequest(None, sha, True, f"{name} event: every notiflow counts", KIND_EVERYTHING,
                            default_branch=default_branch)

    reason = f"event {name!r} names no range; using HEAD~1..HEAD" if name else "no GitHub event; using HEAD~1..HEAD"
    return RangeRequest(None, None, False, reason, KIND_DEFAULT, default_branch=default_branch)


def range_request_from_env(env: Mapping[str, str], event_text: str | bytes | None = None) -> RangeRequest:
    """GITHUB_EVENT_NAME and GITHUB_SHA from `env`; the payload from `event_text`, or else read from
    GITHUB_EVENT_PATH. A missing, unreadable or malformed file counts as no payload, and the fallback
    note says which. Outside Actions (no GITHUB_EVENT_NAME) this is the default HEAD~1..HEAD request."""
    name = env.get("GITHUB_EVENT_NAME")
    if not name:
        return range_request(None, None)
    if event_text is not None:
        payload, problem = _parse_payload(event_text, "the event payload")
    else:
        event = read_event_file(env)
        payload, problem = event.payload, event.problem
    return range_request(name, payload, github_sha=env.get("GITHUB_SHA"), payload_problem=problem)
