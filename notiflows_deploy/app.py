"""Run a mode and deliver what it found: console, JSON report, job summary, PR comment.

Every text leaves through the Redactor: the result is redacted once, before any renderer sees it,
and the console stream is redacted again line by line, so no renderer can leak a secret.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO, cast

from notiflows_deploy.model import NotiflowOutcome, Problem, RunResult
from notiflows_deploy.redact import RedactingWriter, Redactor, defuse_legacy_commands, printable
from notiflows_deploy.settings import Settings


def redact_result(result: RunResult, redactor: Redactor) -> RunResult:
    def problem(p: Problem) -> Problem:
        return dataclasses.replace(p, file=printable(p.file), message=redactor.text(p.message),
                                   hint=redactor.text(p.hint))

    def outcome(n: NotiflowOutcome) -> NotiflowOutcome:
        return dataclasses.replace(
            n,
            handle=printable(n.handle),  # public (directory names), but maybe not UTF-8
            path=printable(n.path),
            errors=[problem(p) for p in n.errors],
            warnings=[problem(p) for p in n.warnings],
            diff=redactor.text(n.diff),
            detail=redactor.text(n.detail),
            extra=redactor.data(n.extra),
        )

    return dataclasses.replace(
        result,
        notiflows=[outcome(n) for n in result.notiflows],
        errors=[problem(p) for p in result.errors],
        notes=[redactor.text(n) for n in result.notes],
        fatal=redactor.text(result.fatal),
        failures=[redactor.text(f) for f in result.failures],
    )


def run_and_report(settings: Settings) -> int:
    from notiflows_deploy.runner import SecretSink, execute

    mask = None
    if settings.format == "github":
        from notiflows_deploy.github import masking

        mask = masking.mask_many  # registers each secret before anything about it can print
    secrets = SecretSink(mask)
    _log_to_stderr(secrets)
    try:
        raw = execute(settings, secrets)
    except Exception as exc:  # a bug: say so plainly, keep the traceback for those who ask
        raw = _crash(settings, exc)
    redactor = Redactor(secrets)
    try:
        return deliver(redact_result(raw, redactor), settings, redactor)
    except Exception as exc:  # a bug in a renderer: one plain line, never a traceback or a secret
        if settings.env.get("NOTIFLOWS_DEPLOY_DEBUG") == "1":
            traceback.print_exc()
        from notiflows_deploy.report import console

        text = f"could not write the results ({type(exc).__name__}); please report this as a bug"
        console.message("error", text, settings.format, sys.stdout)  # within the step's annotation budget
        return 1


class _RedactingLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__(sys.stderr)
        self._secrets = secrets
        self.setFormatter(logging.Formatter("notiflows-deploy: %(message)s"))

    def format(self, record: logging.LogRecord) -> str:
        # One line per record, always starting with our prefix: server text inside a message can never
        # start a line of its own, so it cannot pass for a workflow command (`::error::...`), nor hold a
        # legacy one (`##[error]`, parsed anywhere in a line).
        text = super().format(record).replace("\r", " ").replace("\n", " ")
        return defuse_legacy_commands(Redactor(self._secrets).text(text))


def _log_to_stderr(secrets: Iterable[str]) -> None:
    """Retries and other API notices go to stderr, redacted like everything else."""
    logger = logging.getLogger("notiflows_deploy")
    for handler in list(logger.handlers):
        if isinstance(handler, _RedactingLogHandler):
            logger.removeHandler(handler)
    logger.addHandler(_RedactingLogHandler(secrets))
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def _crash(settings: Settings, exc: Exception) -> RunResult:
    result = RunResult(mode=settings.mode, fail_on_drift=settings.fail_on_drift)
    result.fatal = f"unexpected error ({type(exc).__name__}: {exc}); please report this as a bug"
    if settings.env.get("NOTIFLOWS_DEPLOY_DEBUG") == "1":
        traceback.print_exc()
    return result


def _repository_file_check(start: Path) -> Callable[[str], bool] | None:
    """Whether a file named relative to the git top level above `start` exists (annotations name files
    that way); None outside a git work tree (then the console judges from the workspace)."""
    from notiflows_deploy.gitrepo import NotAGitRepository, find_toplevel

    try:
        top = find_toplevel(start.resolve())
    except NotAGitRepository:
        return None

    def exists(file: str) -> bool:
        return (top / file).exists()

    return exists


def deliver(result: RunResult, settings: Settings, redactor: Redactor) -> int:
    from notiflows_deploy.report import console
    from notiflows_deploy.report.json_report import write_report
    from notiflows_deploy.report.summary import render_summary, write_summary

    stdout = cast(TextIO, RedactingWriter(sys.stdout, redactor))
    batch = console.render(result, settings.format, stdout, file_exists=_repository_file_check(settings.repo))
    stdout.flush()
    report_path = str(settings.report_json) if settings.report_json else None
    # Inside the container the report's path differs from the one later steps see (entrypoint.py).
    shown_report_path = settings.env.get("NOTIFLOWS_DEPLOY_REPORT_PATH_SHOWN") or report_path
    problems: list[str] = []
    if settings.report_json:
        try:
            write_report(result, settings.report_json)
        except OSError as exc:
            problems.append(f"could not write the report to {settings.report_json}: {exc.strerror or exc}")
    summary = render_summary(result, report_path=shown_report_path, annotations_dropped=batch.dropped_total)
    targets: list[tuple[Path, bool]] = []
    if settings.summary:
        targets.append((settings.summary, False))
    step_summary = settings.env.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        targets.append((Path(step_summary), True))
    for path, append in targets:
        try:
            write_summary(redactor.text(summary), path, append=append)
        except OSError as exc:
            problems.append(f"could not write the summary to {path}: {exc.strerror or exc}")
    if settings.comment_on_pr and settings.mode in ("plan", "validate", "deploy"):
        from notiflows_deploy.github.comment import post_plan_comment

        outcome = post_plan_comment(result, env=settings.env)
        if outcome.is_warning:
            problems.append(outcome.message)
    # Workflow commands go to stdout: the runner parses both pipes with one parser, so a command on
    # stderr can land while a ::stop-commands:: fence on stdout is open and be ignored.
    late = stdout if settings.format == "github" else cast(TextIO, RedactingWriter(sys.stderr, redactor))
    for text in problems:  # printed outside any stop-commands fence: no `##[` command may ride along
        console.message("warning", defuse_legacy_commands(redactor.text(text)), settings.format, late)
    late.flush()
    sys.stderr.flush()
    return int(result.exit_code)
