"""The values that flow through a run: problems, per-notiflow outcomes and the run result.

Pure data. Every later stage (plan, deploy, drift, reports) speaks in these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located in a file.

    `file` is relative to the repository root (POSIX separators); `line` and `column` start at 1.
    `code` is stable and machine-readable (e.g. ``json-syntax``, ``schema``, ``step-handle-duplicate``).
    """

    file: str
    line: int
    column: int
    code: str
    message: str
    severity: Severity = Severity.ERROR
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "code": self.code,
        }
        if self.hint:
            data["hint"] = self.hint
        return data

    def render(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.severity.value} [{self.code}] {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class Status(StrEnum):
    """Per-notiflow status, exactly the vocabulary of CONTRACT section 6."""

    VALID = "valid"  # validate mode: passed every local check
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    WOULD_CREATE = "would-create"
    WOULD_UPDATE = "would-update"
    CONFLICT = "conflict"
    FORCED = "forced"
    INVALID = "invalid"
    FAILED = "failed"
    REMOVED = "removed"
    PUBLISHED = "published"
    IN_SYNC = "in-sync"
    UNDEPLOYED = "undeployed"
    EDITED_REMOTELY = "edited-remotely"
    REPO_ONLY = "repo-only"
    REMOTE_ONLY = "remote-only"


DRIFT_STATUSES = frozenset(
    {Status.UNDEPLOYED, Status.EDITED_REMOTELY, Status.REPO_ONLY, Status.REMOTE_ONLY}
)
CHANGE_STATUSES = frozenset(
    {Status.CREATED, Status.UPDATED, Status.FORCED, Status.PUBLISHED, Status.WOULD_CREATE, Status.WOULD_UPDATE}
)
DEPLOYED_STATUSES = frozenset({Status.CREATED, Status.UPDATED, Status.FORCED, Status.PUBLISHED})


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    DRIFT = 2
    CONFLICT = 3
    INVALID = 4
    FAILED = 5


@dataclass
class NotiflowOutcome:
    """What happened to one notiflow. One bad notiflow never hides another's outcome."""

    handle: str
    status: Status
    path: str
    remote_sha_before: str | None = None
    remote_sha_after: str | None = None
    version: int | None = None
    version_before: int | None = None
    published: bool = False
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    diff: str = ""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "handle": self.handle,
            "status": self.status.value,
            "path": self.path,
            "remote_sha_before": self.remote_sha_before,
            "remote_sha_after": self.remote_sha_after,
            "version": self.version,
            "version_before": self.version_before,
            "published": self.published,
            "errors": [p.to_dict() for p in self.errors],
            "warnings": [p.to_dict() for p in self.warnings],
            "diff": self.diff,
        }
        if self.detail:
            data["detail"] = self.detail
        data.update(self.extra)
        return data


@dataclass
class RunResult:
    mode: str
    project: str | None = None
    base: str | None = None
    head: str | None = None
    notiflows: list[NotiflowOutcome] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)  # run-level problems (config, usage, git)
    notes: list[str] = field(default_factory=list)  # facts worth telling the user (schema source, range)
    fail_on_drift: bool = True
    fatal: str = ""  # message of an error that stopped the run early
    failures: list[str] = field(default_factory=list)  # API failures of the run itself (e.g. the drift listing)

    def with_status(self, *statuses: Status) -> list[NotiflowOutcome]:
        wanted = set(statuses)
        return [n for n in self.notiflows if n.status in wanted]

    def handles(self, *statuses: Status) -> list[str]:
        return [n.handle for n in self.with_status(*statuses)]

    @property
    def result(self) -> str:
        """The `result` word; precedence of CONTRACT section 3: 1, 4, 3, 5, 2."""
        statuses = {n.status for n in self.notiflows}
        if self.fatal or self.errors:
            return "error"
        if Status.INVALID in statuses:
            return "invalid"
        if Status.CONFLICT in statuses:
            return "conflict"
        if Status.FAILED in statuses or self.failures:
            return "failed"
        if statuses & DRIFT_STATUSES:
            return "drift"
        if self.mode == "drift" or statuses & CHANGE_STATUSES or Status.VALID in statuses:
            return "success"
        return "no-changes"

    @property
    def exit_code(self) -> ExitCode:
        return {
            "error": ExitCode.ERROR,
            "invalid": ExitCode.INVALID,
            "conflict": ExitCode.CONFLICT,
            "failed": ExitCode.FAILED,
            "drift": ExitCode.DRIFT if self.fail_on_drift else ExitCode.OK,
        }.get(self.result, ExitCode.OK)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in self.notiflows:
            out[n.status.value] = out.get(n.status.value, 0) + 1
        return out
