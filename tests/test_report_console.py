from __future__ import annotations

import io
import json
from typing import Any

import pytest
from workflow_commands import commands_outside_fences

from notiflows_deploy.model import NotiflowOutcome, Problem, RunResult, Status
from notiflows_deploy.report.console import RENDERERS, message, render
from notiflows_deploy.report.summary import example_result


def _out(fmt: str, result: RunResult) -> str:
    stream = io.StringIO()
    render(result, fmt, stream)
    return stream.getvalue()


def test_registry() -> None:
    assert set(RENDERERS) == {"text", "json", "github"}
    with pytest.raises(ValueError, match="unknown format"):
        render(example_result(), "xml", io.StringIO())


def test_text_format() -> None:
    text = _out("text", example_result())
    lines = text.splitlines()
    assert lines[0] == "notiflows-deploy plan: invalid (exit 4) — project my-app, range 3f9c2a1..9a8b7c6"
    assert lines[1].split()[:2] == ["invalid", "digest|weekly"]
    problem = ".notiflows/notiflows/digest-weekly/notiflow.json:12:7: error [schema] 'channel' is a required property"
    assert "  " + problem in lines
    assert "--- would-update: welcome-series (.notiflows/notiflows/welcome-series)" in lines
    assert '+      "subject": "Welcome to {{ app.name }}!",' in lines
    assert "--- would-create" not in text  # diffs only for would-update / conflict and friends
    assert not any(line.startswith("::") for line in lines)


def test_json_format() -> None:
    data = json.loads(_out("json", example_result()))
    assert data["version"] == 1 and data["result"] == "invalid"


def test_github_format_cannot_be_injected() -> None:
    evil = "::add-mask::x\n::error::forged\n::endgroup::\n::set-env name=A::b"
    result = RunResult(
        mode="plan",
        notiflows=[
            NotiflowOutcome("evil::error::x\n::warning::y", Status.CONFLICT, "n/e", detail=evil, diff=evil),
            NotiflowOutcome("ok", Status.WOULD_UPDATE, "n/o", diff="-a\n" + evil),
            NotiflowOutcome("bad", Status.INVALID, "n/b", errors=[Problem("n/b/notiflow.json", 2, 3, "schema", evil)]),
        ],
        notes=[evil],
    )
    text = _out("github", result)
    active = commands_outside_fences(text)
    names = [c[2:].split("::")[0].split(" ")[0] for c in active]
    assert names == ["error", "error", "group", "endgroup", "group", "endgroup"]
    assert all("\n" not in c for c in active)
    assert "forged" not in " ".join(c for c in active if not c.startswith("::error file="))
    assert "::group::conflict: evil::error::x ::warning::y" not in text  # newline escaped, not flattened
    assert "::group::conflict: evil::error::x%0A::warning::y" in text


def test_github_format_reports_dropped_annotations() -> None:
    result = RunResult(
        mode="validate",
        notiflows=[NotiflowOutcome(f"f{i}", Status.INVALID, f"n/f{i}",
                                   errors=[Problem(f"n/f{i}/notiflow.json", 1, 1, "c", "m")]) for i in range(12)],
    )
    stream = io.StringIO()
    batch = render(result, "github", stream)
    # 9 of GitHub's 10: one stays free for a message after the results (a PR comment that failed).
    assert batch.emitted == {"error": 9} and batch.dropped == {"error": 3}
    assert "3 more problems were not annotated" in stream.getvalue()


def test_message_helper() -> None:
    stream = io.StringIO()
    message("warning", "comment failed: 403\nread-only", "github", stream)
    assert stream.getvalue() == "::warning title=notiflows-deploy::comment failed: 403%0Aread-only\n"
    stream = io.StringIO()
    message("warning", "plain", "text", stream)
    assert stream.getvalue() == "warning: plain\n"


def _refused_publish() -> RunResult:
    detail = ("Updated to version 5 (draft; was version 4). Publishing was refused as invalid (422). "
              "The pushed draft (version 5, sha abc123) stays on the server unpublished.")
    problem = Problem(".notiflows/notiflows/welcome/notiflow.json", 3, 5, "publish-rejected",
                      "Publishing was refused: steps[1].template is incomplete")
    return RunResult(mode="deploy", notiflows=[
        NotiflowOutcome("welcome", Status.FAILED, ".notiflows/notiflows/welcome", version_before=4, version=5,
                        errors=[problem], detail=detail),
    ])


@pytest.mark.parametrize("fmt", ["text", "github"])
def test_refused_publish_shows_the_error_and_what_stays_on_the_server(fmt: str) -> None:
    text = _out(fmt, _refused_publish())
    assert "Publishing was refused: steps[1].template is incomplete" in text  # the first error
    assert "stays on the server unpublished" in text  # and the detail saying what it left behind
    assert "v4 → v5" in text


def test_plan_versions_are_honest() -> None:
    lines = _out("text", example_result()).splitlines()
    row = next(ln for ln in lines if ln.split()[:2] == ["would-update", "welcome-series"])
    assert "v3 → next" in row  # the server numbers the version on the push; a plan does not guess
    assert "new" in next(ln for ln in lines if ln.split()[:2] == ["would-create", "password-reset"]).split()


def test_message_goes_to_stdout_under_github(capsys: pytest.CaptureFixture[str]) -> None:
    message("warning", "comment failed", "github")
    message("warning", "plain", "text")
    out, err = capsys.readouterr()
    assert out == "::warning title=notiflows-deploy::comment failed\n" and err == "warning: plain\n"


def test_run_level_error_on_a_missing_file_is_not_located(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    (tmp_path / "present.json").write_text("{}")
    result = RunResult(mode="validate", errors=[
        Problem("notiflows.json", 1, 1, "config", "--repo nonexistent does not exist"),
        Problem("present.json", 2, 3, "config", "bad"),
    ])
    active = commands_outside_fences(_out("github", result))
    assert active[0] == "::error title=notiflows-deploy%3A config::--repo nonexistent does not exist"
    assert active[1].startswith("::error file=present.json,line=2,col=3,")
