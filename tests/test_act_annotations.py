"""Annotations a step prints: the error that stopped a run, files that exist, and GitHub's budget
of 10 per kind per step (the results, the messages after them and the entrypoint's own, together)."""

from __future__ import annotations

import io
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator_support import TOKEN, running_emulator
from gitutil import TestRepo, notiflow_json
from test_entrypoint import entrypoint, run_entrypoint, runner_env
from workflow_commands import commands_outside_fences

from notiflows_deploy import cli
from notiflows_deploy.github import masking
from notiflows_deploy.model import NotiflowOutcome, Problem, RunResult, Severity, Status
from notiflows_deploy.report import annotations as wf
from notiflows_deploy.report.console import message, render, workspace_file_exists


@pytest.fixture(autouse=True)
def _clean_step() -> Iterator[None]:
    saved = dict(os.environ)
    masking.reset()
    wf.LEDGER.reset()
    yield
    os.environ.clear()
    os.environ.update(saved)
    masking.reset()
    wf.LEDGER.reset()


def of_kind(text: str, kind: str) -> list[str]:
    return [c for c in commands_outside_fences(text) if c.startswith(f"::{kind} ") or c.startswith(f"::{kind}::")]


def github(result: RunResult) -> str:
    out = io.StringIO()
    render(result, "github", out)
    return out.getvalue()


# ---- 1. the error that stopped the run ----------------------------------------------------------


def test_a_fatal_error_is_one_error_annotation_without_a_file() -> None:
    result = RunResult(mode="plan", fatal="Authentication required [401 unauthenticated] (check the token)")
    (error,) = of_kind(github(result), "error")
    assert error == ("::error title=notiflows-deploy%3A stopped::"
                     "Authentication required [401 unauthenticated] (check the token)")


def test_a_fatal_error_already_said_by_a_run_level_problem_is_not_repeated() -> None:
    # A config error is both: the located problem says it, the fatal text adds the hint.
    problem = Problem("notiflows.json", 2, 5, "config", "notiflowsDir must be a string", hint="fix it")
    result = RunResult(mode="plan", fatal="notiflowsDir must be a string (fix it)", errors=[problem])
    errors = of_kind(github(result), "error")
    assert len(errors) == 1 and "%3A config" in errors[0]


@pytest.mark.parametrize("argv,env_extra,needle", [
    (["--base", "nope"], {}, "'nope' is not a commit"),
    ([], {"NOTIFLOWS_TOKEN": "nf_at_wrong_token_123"}, "401"),
    ([], {"NOTIFLOWS_PROJECT": "nosuch"}, "Project not found"),
])
def test_runs_that_stop_get_an_error_annotation(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                argv: list[str], env_extra: dict[str, str], needle: str) -> None:
    repo = TestRepo(tmp_path / "repo")
    repo.config({"notiflowsDir": ".notiflows", "project": "demo"})
    repo.add_notiflow("welcome")
    repo.commit("initial")
    with running_emulator() as emu:
        env = {"NOTIFLOWS_TOKEN": TOKEN, "NOTIFLOWS_BASE_URL": emu.base_url, **env_extra}
        code = cli.main(["plan", "--repo", str(repo.path), "--format", "github", *argv], env)
    out = capsys.readouterr().out
    assert code == 1
    (error,) = of_kind(out, "error")
    assert error.startswith("::error title=notiflows-deploy%3A stopped::") and needle in error
    assert "file=" not in error


# ---- 2. only files that exist -------------------------------------------------------------------


def test_every_annotated_file_is_checked() -> None:
    result = RunResult(mode="validate", notiflows=[
        NotiflowOutcome("empty-dir", Status.INVALID, "n/empty-dir", errors=[
            Problem("n/empty-dir/notiflow.json", 1, 1, "missing-notiflow-json", "no notiflow.json")]),
        NotiflowOutcome("ok", Status.INVALID, "n/ok", errors=[Problem("n/ok/notiflow.json", 3, 4, "schema", "x")],
                        warnings=[Problem("n/ok/gone.html", 1, 1, "w", "y", severity=Severity.WARNING)]),
        NotiflowOutcome("lost", Status.FAILED, "n/lost"),  # synthesised on n/lost/notiflow.json
    ])
    present = {"n/ok/notiflow.json"}
    problems = wf.outcome_problems(result, present.__contains__)
    assert [(p.code, p.file, p.line) for p in problems] == [
        ("missing-notiflow-json", "", 0), ("schema", "n/ok/notiflow.json", 3), ("w", "", 0), ("failed", "", 0),
    ]
    assert [p.file for p in wf.outcome_problems(result)] == [  # no checker: as found
        "n/empty-dir/notiflow.json", "n/ok/notiflow.json", "n/ok/gone.html", "n/lost/notiflow.json"]


def test_workspace_check_says_missing_only_where_it_can_tell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    (tmp_path / "n" / "empty-dir").mkdir(parents=True)
    (tmp_path / "n" / "ok").mkdir()
    (tmp_path / "n" / "ok" / "notiflow.json").write_text("{}")
    assert workspace_file_exists("n/ok/notiflow.json")
    assert not workspace_file_exists("n/empty-dir/notiflow.json")  # its directory is here, the file is not
    assert not workspace_file_exists("notiflows.json")
    assert workspace_file_exists("svc/n/x/notiflow.json")  # nothing of it here: a run from elsewhere


def test_a_directory_without_notiflow_json_is_not_annotated_on_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = TestRepo(tmp_path / "repo")
    repo.config({"notiflowsDir": ".notiflows", "project": "demo"})
    repo.add_notiflow("welcome")
    repo.write(repo.nf_path("empty-dir", "README.md"), "nothing here\n")
    repo.commit("initial")
    monkeypatch.chdir(repo.path)  # the workspace, as in the action
    code = cli.main(["validate", "--all", "--repo", ".", "--format", "github"], {})
    out = capsys.readouterr().out
    assert code == 4
    errors = of_kind(out, "error")
    assert errors and not [e for e in errors if "empty-dir/notiflow.json" in e.partition("::")[2].partition("::")[0]]
    assert any("empty-dir" in e for e in errors)



def test_missing_files_are_judged_from_the_git_top_level_wherever_the_run_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = TestRepo(tmp_path / "repo")
    repo.project = "sub"  # actions/checkout `path:` or a monorepo: paths are relative to the git top level
    repo.config({"notiflowsDir": ".notiflows", "project": "demo"})
    repo.add_notiflow("welcome")
    repo.write(repo.nf_path("empty-dir", "README.md"), "nothing here\n")
    repo.commit("initial")
    monkeypatch.chdir(tmp_path)  # neither the workspace nor the repository
    code = cli.main(["validate", "--all", "--repo", str(repo.path / "sub"), "--format", "github"], {})
    errors = of_kind(capsys.readouterr().out, "error")
    assert code == 4 and errors
    assert not [e for e in errors if "empty-dir/notiflow.json" in e.partition("::")[2].partition("::")[0]]



# ---- 3. never more than 10 of a kind per step ---------------------------------------------------


def _warnings(n: int) -> RunResult:
    return RunResult(mode="validate", notiflows=[
        NotiflowOutcome(f"w{i}", Status.VALID, f"n/w{i}",
                        warnings=[Problem(f"n/w{i}/notiflow.json", 1, 1, "style", f"w{i}", severity=Severity.WARNING)])
        for i in range(n)
    ])


def test_results_leave_one_slot_for_late_messages_and_never_exceed_ten() -> None:
    out = io.StringIO()
    batch = render(_warnings(12), "github", out)
    assert batch.emitted == {"warning": 9} and batch.dropped == {"warning": 3}
    assert "3 more problems were not annotated" in out.getvalue()
    for text in ("the PR comment could not be posted: HTTP 403", "output changed was not set", "third"):
        message("warning", text, "github", out)
    log = out.getvalue()
    warnings = of_kind(log, "warning")
    assert len(warnings) == 10 and "HTTP 403" in warnings[-1]
    # What no longer fits is still in the log, fenced so it cannot act as a command.
    assert "warning: output changed was not set" in log and "warning: third" in log


def test_what_the_step_said_before_the_run_counts_too() -> None:
    assert wf.LEDGER.take("warning", step=True)  # e.g. the entrypoint's report-path warning
    batch = render(_warnings(12), "github", io.StringIO())
    assert batch.emitted == {"warning": 8} and batch.dropped == {"warning": 4}
    assert wf.LEDGER.room("warning") == 1


def test_a_new_run_starts_a_new_tally_but_keeps_the_steps() -> None:
    assert wf.LEDGER.take("warning", step=True)
    render(_warnings(12), "github", io.StringIO())
    assert render(_warnings(12), "github", io.StringIO()).emitted == {"warning": 8}
    wf.LEDGER.reset()
    assert render(_warnings(12), "github", io.StringIO()).emitted == {"warning": 9}


def test_budget_holds_for_every_mix() -> None:
    for before in range(0, 12):
        for late in range(0, 12):
            wf.LEDGER.reset()
            out = io.StringIO()
            for _ in range(before):
                out.write("\n".join(wf.say_lines("warning", "before", step=True)) + "\n")
            render(_warnings(15), "github", out)
            for _ in range(late):
                message("warning", "late", "github", out)
            assert len(of_kind(out.getvalue(), "warning")) <= wf.MAX_PER_KIND, (before, late)


def _fork_repo(tmp_path: Path, count: int) -> TestRepo:
    repo = TestRepo(tmp_path / "workspace")
    repo.config({"notiflowsDir": ".notiflows", "project": "demo"})
    for i in range(count):  # an email body that is not .html: one warning each
        repo.write(repo.nf_path(f"n{i:02d}", "notiflow.json"), notiflow_json(f"n{i:02d}", "steps/email_1/body.txt"))
        repo.write(repo.nf_path(f"n{i:02d}", "steps/email_1/body.txt"), "<p>hi</p>\n")
    repo.commit("initial")
    return repo


def test_fork_pull_request_with_many_warnings_stays_within_ten(tmp_path: Path) -> None:
    """The validate-only message is a notice; the CLI's warnings and the late ones share 10."""
    repo = _fork_repo(tmp_path, 11)
    event = {"number": 4, "pull_request": {"number": 4, "head": {"repo": {"full_name": "mallory/app"}},
                                           "base": {"repo": {"full_name": "octo/app"}}}}
    env = runner_env(tmp_path, repo.path, "pull_request", event, mode="plan")
    env.update(GITHUB_SHA=repo.sha(), GITHUB_REF="refs/pull/4/merge")
    code, out, _ = run_entrypoint(env, repo.path)
    assert code == 0, out
    notices, warnings = of_kind(out, "notice"), of_kind(out, "warning")
    assert len(notices) == 1 and "No Notiflows token" in notices[0]
    assert len(warnings) == 9 and all("body-extension" in w for w in warnings)
    assert "2 more problems were not annotated" in out
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "_2 more problems were not annotated" in summary


class _LateWarnings:
    """A stand-in CLI that prints 9 results and then more late warnings than fit."""

    def main(self, argv: list[str], env: dict[str, str] | None = None) -> int:
        render(_warnings(12), "github")
        for i in range(3):
            message("warning", f"late {i}", "github")
        return 0


def test_entrypoint_messages_after_the_cli_never_make_an_eleventh(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("notiflows_deploy.cli")
    module.main = _LateWarnings().main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "notiflows_deploy.cli", module)
    monkeypatch.setattr(entrypoint, "restore_git_ownership", lambda _top: (0, 3))  # one more warning after
    (tmp_path / ".git").mkdir()
    env = runner_env(tmp_path, tmp_path, "push", {}, mode="validate")
    code, out, _ = run_entrypoint(env, tmp_path)
    assert code == 0
    warnings = of_kind(out, "warning")
    assert len(warnings) == 10 and warnings[-1].endswith("late 0")
    assert "warning: late 2" in out and "could not be given back" in out  # in the log, fenced


def test_say_lines_refuses_unknown_kinds() -> None:
    with pytest.raises(ValueError):
        wf.say_lines("debug", "x")
