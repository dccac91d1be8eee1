"""Small text helpers shared by the renderers (pure)."""

from __future__ import annotations

import re

from notiflows_deploy.model import NotiflowOutcome, Problem, RunResult, Status

# The order people should read outcomes in: what needs action first. Stable within a rank.
_RANK: dict[Status, int] = {
    Status.INVALID: 0,
    Status.CONFLICT: 1,
    Status.FAILED: 2,
    Status.FORCED: 3,
    Status.EDITED_REMOTELY: 4,
    Status.UNDEPLOYED: 5,
    Status.REPO_ONLY: 6,
    Status.REMOTE_ONLY: 7,
    Status.WOULD_CREATE: 8,
    Status.WOULD_UPDATE: 9,
    Status.CREATED: 10,
    Status.UPDATED: 11,
    Status.PUBLISHED: 12,
    Status.REMOVED: 13,
    Status.UNCHANGED: 14,
    Status.IN_SYNC: 15,
    Status.VALID: 16,
}

_DEFAULT_REASON: dict[Status, str] = {
    Status.VALID: "passed every local check",
    Status.CREATED: "created on the server",
    Status.UPDATED: "updated on the server",
    Status.UNCHANGED: "server already holds this content",
    Status.WOULD_CREATE: "not on the server yet; deploy would create it",
    Status.WOULD_UPDATE: "content differs; deploy would update it",
    Status.CONFLICT: "changed on the server since the repo last saw it; not pushed",
    Status.FORCED: "pushed over a server-side change (--force)",
    Status.INVALID: "failed validation; not pushed",
    Status.FAILED: "the API refused or failed",
    Status.REMOVED: "directory deleted in the range; never deleted on the server",
    Status.PUBLISHED: "pushed and published",
    Status.IN_SYNC: "server matches the repo",
    Status.UNDEPLOYED: "server holds an earlier revision from the repo's history",
    Status.EDITED_REMOTELY: "server holds content the repo never had",
    Status.REPO_ONLY: "in the repo, not on the server",
    Status.REMOTE_ONLY: "on the server, not in the repo",
}


def rank(status: Status) -> int:
    return _RANK.get(status, 99)


def ordered(result: RunResult) -> list[NotiflowOutcome]:
    """Outcomes, most urgent first; ties keep the run's order."""
    return sorted(result.notiflows, key=lambda n: rank(n.status))


def short_sha(sha: str | None, length: int = 7) -> str:
    return sha[:length] if sha else ""


def one_line(text: str, limit: int = 200) -> str:
    """Collapse whitespace (newlines included) and cut to `limit` characters."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def location(problem: Problem) -> str:
    return f"{problem.file}:{problem.line}:{problem.column}"


def reason(outcome: NotiflowOutcome) -> str:
    """One line saying why the notiflow has its status (unescaped, untrusted text)."""
    if outcome.errors:
        first = outcome.errors[0]
        more = f" (+{len(outcome.errors) - 1} more)" if len(outcome.errors) > 1 else ""
        return one_line(f"{location(first)}: {first.message}") + more
    if outcome.detail:
        return one_line(outcome.detail.splitlines()[0] if outcome.detail.strip() else outcome.detail)
    return _DEFAULT_REASON.get(outcome.status, outcome.status.value)


def version_change(outcome: NotiflowOutcome) -> str:
    """"3 → 4" after a push; before one (a plan), the server's number and "next", or "new": the
    server numbers a version when it is saved, so a plan cannot know the number and does not guess."""
    before = "" if outcome.version_before is None else str(outcome.version_before)
    after = "" if outcome.version is None else str(outcome.version)
    if outcome.status is Status.WOULD_UPDATE:
        return f"{before} → next" if before else "next"
    if outcome.status is Status.WOULD_CREATE:
        return "new"
    if before and after and before != after:
        return f"{before} → {after}"
    return after or before


def range_text(result: RunResult) -> tuple[str, str]:
    """("range", "base..head") or ("commit", "head") or ("", "")."""
    if result.base and result.head:
        return "range", f"{short_sha(result.base)}..{short_sha(result.head)}"
    if result.head:
        return "commit", short_sha(result.head)
    return "", ""


def counts_text(result: RunResult) -> str:
    counts = result.counts()
    if not counts:
        return "no notiflows"
    parts = [f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: rank(Status(kv[0])))]
    total = sum(counts.values())
    noun = "notiflow" if total == 1 else "notiflows"
    return f"{total} {noun}: " + ", ".join(parts)


def longest_run(text: str, char: str) -> int:
    best = run = 0
    for c in text:
        run = run + 1 if c == char else 0
        best = max(best, run)
    return best


def fence_for(text: str) -> str:
    """A backtick fence longer than any backtick run inside `text` (CommonMark rule)."""
    return "`" * max(3, longest_run(text, "`") + 1)
