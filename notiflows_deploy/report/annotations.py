"""Workflow commands: annotations, log groups and the stop-commands fence (pure string builders).

Escaping follows the runner (ActionCommand.cs): in the message (data) part ``%``, ``\\r`` and
``\\n`` become ``%25``, ``%0D`` and ``%0A``; in property values ``:`` and ``,`` are escaped too
(``%3A``, ``%2C``). ``%`` is escaped first so that an input already holding ``%0A`` survives
as text. GitHub keeps only 10 error and 10 warning annotations per step, so `build_annotations`
emits at most `MAX_PER_KIND` of each and counts the rest; the summary lists everything.

Any untrusted free text (file contents, server messages, names) printed to a log that the runner
parses goes through `stop_commands`, so a line such as ``::add-mask::`` or ``::error::`` inside it
is never executed.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from notiflows_deploy.model import DRIFT_STATUSES, Problem, RunResult, Severity, Status
from notiflows_deploy.report.common import ordered, reason

MAX_PER_KIND = 10
TITLE = "notiflows-deploy"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: str | int | None) -> str:
    """One workflow command line. Properties with an empty value are left out (the runner drops them)."""
    props = ",".join(
        f"{key}={escape_property(str(value))}" for key, value in properties.items() if value not in (None, "")
    )
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def annotation(
    kind: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    col: int | None = None,
    title: str | None = None,
) -> str:
    if kind not in ("error", "warning", "notice"):
        raise ValueError(f"unknown annotation kind {kind!r}")
    # `col` without `line` is dropped by the runner anyway; leave it out to keep logs honest.
    return command(kind, message, file=file, line=line, col=col if line else None, title=title)


def problem_annotation(problem: Problem) -> str:
    message = problem.message + (f"\nhint: {problem.hint}" if problem.hint else "")
    return annotation(
        problem.severity.value,
        message,
        file=problem.file or None,
        line=problem.line if problem.file and problem.line > 0 else None,
        col=problem.column if problem.file and problem.column > 0 else None,
        title=f"{TITLE}: {problem.code}",
    )


def new_token() -> str:
    return secrets.token_hex(16)


def stop_commands(text: str, token: str | None = None) -> list[str]:
    """Lines that print `text` with workflow-command processing paused around it."""
    token = token or new_token()
    body = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # Defensive: a random token cannot appear by chance, but never let the text end the fence.
    if any(line.strip() == f"::{token}::" for line in body):  # pragma: no cover - 128-bit token
        return stop_commands(text)
    return [f"::stop-commands::{token}", *body, f"::{token}::"]


def group(title: str) -> str:
    return command("group", title)


def endgroup() -> str:
    return "::endgroup::"


def unlocated(problem: Problem) -> Problem:
    return dataclasses.replace(problem, file="", line=0, column=0)


def outcome_problems(result: RunResult, file_exists: Callable[[str], bool] | None = None) -> list[Problem]:
    """Every problem worth an annotation, most important first.

    Run-level errors, then each notiflow's errors and warnings. A conflict, failure or drift that
    carries no located problem gets one on the notiflow's `notiflow.json`, so it still shows.
    With `file_exists`, a run-level error on a file that does not exist (e.g. the `notiflows.json`
    that was not found) is annotated without a location rather than on a file GitHub cannot show.
    """
    found: list[Problem] = [
        unlocated(p) if p.file and file_exists is not None and not file_exists(p.file) else p
        for p in result.errors
    ]
    drift_severity = Severity.ERROR if result.fail_on_drift else Severity.WARNING
    for outcome in ordered(result):
        found.extend(outcome.errors)
        found.extend(outcome.warnings)
        if outcome.errors:
            continue
        severity: Severity | None = None
        if outcome.status in (Status.CONFLICT, Status.FAILED):
            severity = Severity.ERROR
        elif outcome.status is Status.FORCED:
            severity = Severity.WARNING
        elif outcome.status in DRIFT_STATUSES:
            severity = drift_severity
        if severity is None:
            continue
        # A remote-only notiflow has no file in the repo to point at.
        in_repo = outcome.path and outcome.status is not Status.REMOTE_ONLY
        file = f"{outcome.path.rstrip('/')}/notiflow.json" if in_repo else ""
        found.append(
            Problem(
                file=file,
                line=1 if file else 0,
                column=1 if file else 0,
                code=outcome.status.value,
                message=f"{outcome.handle}: {reason(outcome)}",
                severity=severity,
            )
        )
    return found


@dataclass
class AnnotationBatch:
    lines: list[str] = field(default_factory=list)
    emitted: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


def build_annotations(problems: Iterable[Problem], limit: int = MAX_PER_KIND) -> AnnotationBatch:
    batch = AnnotationBatch()
    for problem in problems:
        kind = problem.severity.value
        if batch.emitted.get(kind, 0) >= limit:
            batch.dropped[kind] = batch.dropped.get(kind, 0) + 1
            continue
        batch.emitted[kind] = batch.emitted.get(kind, 0) + 1
        batch.lines.append(problem_annotation(problem))
    return batch


def result_annotations(
    result: RunResult, limit: int = MAX_PER_KIND, *, file_exists: Callable[[str], bool] | None = None
) -> AnnotationBatch:
    return build_annotations(outcome_problems(result, file_exists), limit)
