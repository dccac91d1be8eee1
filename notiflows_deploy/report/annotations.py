"""Workflow commands: annotations, log groups and the stop-commands fence (string builders), and the
ledger that keeps a step within what GitHub keeps.

Escaping follows the runner (ActionCommand.cs): in the message (data) part ``%``, ``\\r`` and
``\\n`` become ``%25``, ``%0D`` and ``%0A``; in property values ``:`` and ``,`` are escaped too
(``%3A``, ``%2C``). ``%`` is escaped first so that an input already holding ``%0A`` survives
as text. GitHub keeps only the first 10 annotations of each kind per step and drops the rest
without a word, so every annotation this process prints is counted in `LEDGER` first: the results
(`build_annotations`) take at most `MAX_PER_KIND` - `LATE_SLOTS` of each kind and count the rest,
which leaves room for what is said after them (a PR comment that failed, an output not set); once
a kind is used up, a message goes to the log inside a stop-commands fence instead. The summary
lists everything.

Any untrusted free text (file contents, server messages, names) printed to a log that the runner
parses goes through `stop_commands`, so a line such as ``::add-mask::`` or ``::error::`` inside it
is never executed.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from notiflows_deploy.model import DRIFT_STATUSES, NotiflowOutcome, Problem, RunResult, Severity, Status
from notiflows_deploy.report.common import ordered, reason

MAX_PER_KIND = 10
KINDS = ("error", "warning", "notice")
# Slots per kind the results leave free for messages printed after them (see the module docstring).
LATE_SLOTS = 1
RESULT_SLOTS = MAX_PER_KIND - LATE_SLOTS
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


def fatal_problem(result: RunResult) -> Problem | None:
    """The error that stopped the run, as a run-level problem without a file, unless a run-level
    error already says it (a config error is both `fatal` and a located problem)."""
    if not result.fatal:
        return None
    if any(p.severity is Severity.ERROR and p.message and p.message in result.fatal for p in result.errors):
        return None
    return Problem(file="", line=0, column=0, code="stopped", message=result.fatal)


def _synthesised(outcome: NotiflowOutcome, drift_severity: Severity) -> Problem | None:
    """A conflict, failure, forced push or drift without an error of its own, on its notiflow.json."""
    severity: Severity | None = None
    if outcome.status in (Status.CONFLICT, Status.FAILED):
        severity = Severity.ERROR
    elif outcome.status is Status.FORCED:
        severity = Severity.WARNING
    elif outcome.status in DRIFT_STATUSES:
        severity = drift_severity
    if severity is None:
        return None
    # A remote-only notiflow has no file in the repo to point at.
    in_repo = outcome.path and outcome.status is not Status.REMOTE_ONLY
    file = f"{outcome.path.rstrip('/')}/notiflow.json" if in_repo else ""
    return Problem(
        file=file,
        line=1 if file else 0,
        column=1 if file else 0,
        code=outcome.status.value,
        message=f"{outcome.handle}: {reason(outcome)}",
        severity=severity,
    )


def outcome_problems(result: RunResult, file_exists: Callable[[str], bool] | None = None) -> list[Problem]:
    """Every problem worth an annotation, most important first.

    The error that stopped the run, run-level errors, then each notiflow's errors and warnings. A
    conflict, failure or drift that carries no located problem gets one on the notiflow's
    `notiflow.json`, so it still shows. With `file_exists`, a problem on a file that does not exist
    (the `notiflows.json` that was not found, the `notiflow.json` a directory lacks) is annotated
    without a location rather than on a file GitHub cannot show.
    """
    stopped = fatal_problem(result)
    found: list[Problem] = [stopped] if stopped is not None else []
    found.extend(result.errors)
    found.extend(Problem(file="", line=0, column=0, code="failed", message=f) for f in result.failures)
    drift_severity = Severity.ERROR if result.fail_on_drift else Severity.WARNING
    for outcome in ordered(result):
        found.extend(outcome.errors)
        found.extend(outcome.warnings)
        synthesised = None if outcome.errors else _synthesised(outcome, drift_severity)
        if synthesised is not None:
            found.append(synthesised)
    if file_exists is None:
        return found
    return [unlocated(p) if p.file and not file_exists(p.file) else p for p in found]


@dataclass
class AnnotationBatch:
    lines: list[str] = field(default_factory=list)
    emitted: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


def build_annotations(problems: Iterable[Problem], limit: int | Mapping[str, int] = MAX_PER_KIND) -> AnnotationBatch:
    """Annotation lines for `problems`, at most `limit` of each kind (one number, or one per kind)."""
    batch = AnnotationBatch()
    for problem in problems:
        kind = problem.severity.value
        allowed = limit if isinstance(limit, int) else limit.get(kind, 0)
        if batch.emitted.get(kind, 0) >= allowed:
            batch.dropped[kind] = batch.dropped.get(kind, 0) + 1
            continue
        batch.emitted[kind] = batch.emitted.get(kind, 0) + 1
        batch.lines.append(problem_annotation(problem))
    return batch


def result_annotations(
    result: RunResult,
    limit: int | Mapping[str, int] = RESULT_SLOTS,
    *,
    file_exists: Callable[[str], bool] | None = None,
) -> AnnotationBatch:
    return build_annotations(outcome_problems(result, file_exists), limit)


class Ledger:
    """Annotations of each kind printed so far in this step; GitHub keeps the first `limit`.

    Two tallies: the step's own (entrypoint.py around the CLI; kept until `reset`) and the current
    CLI run's (its results and the messages after them; `begin_run` clears it, as each CLI call is
    a run of its own when several share a process, e.g. in tests).
    """

    def __init__(self, limit: int = MAX_PER_KIND) -> None:
        self.limit = limit
        self._step: dict[str, int] = {}
        self._run: dict[str, int] = {}

    def used(self, kind: str) -> int:
        return self._step.get(kind, 0) + self._run.get(kind, 0)

    def room(self, kind: str) -> int:
        return max(0, self.limit - self.used(kind))

    def take(self, kind: str, count: int = 1, *, step: bool = False) -> bool:
        """Count `count` annotations of `kind` if they all fit; False (nothing counted) otherwise."""
        if count > self.room(kind):
            return False
        tally = self._step if step else self._run
        tally[kind] = tally.get(kind, 0) + count
        return True

    def begin_run(self) -> None:
        self._run = {}

    def reset(self) -> None:
        self._step, self._run = {}, {}


# One step is one process in production (the entrypoint calls the CLI in-process): one ledger.
LEDGER = Ledger()


def say_lines(kind: str, text: str, *, ledger: Ledger = LEDGER, step: bool = False) -> list[str]:
    """The lines that say one run-level `text`: an annotation while GitHub still keeps one of this
    kind, else ``kind: text`` inside a stop-commands fence (still in the log, never a command)."""
    if kind not in KINDS:
        raise ValueError(f"unknown annotation kind {kind!r}")
    if ledger.take(kind, step=step):
        return [annotation(kind, text, title=TITLE)]
    return stop_commands(f"{kind}: {text}")
