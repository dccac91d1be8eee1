from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from notiflows_deploy.github import masking
from notiflows_deploy.model import NotiflowOutcome, RunResult, Status
from notiflows_deploy.report.outputs import (
    OUTPUT_NAMES,
    OutputError,
    format_output,
    outputs_from_report,
    outputs_from_result,
    write_outputs,
)


def parse_output_file(text: str) -> dict[str, str]:
    """The runner's file-command parser (FileCommandManager): `name=value` or `name<<DELIM` heredoc."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if eq >= 0 and (heredoc < 0 or eq < heredoc):
            name, value = line[:eq], line[eq + 1 :]
            assert name, "empty name"
            values[name] = value
            i += 1
            continue
        assert heredoc > 0, f"invalid line {line!r}"
        name, delim = line[:heredoc], line[heredoc + 2 :]
        assert name and delim
        body: list[str] = []
        i += 1
        while True:
            if i >= len(lines):
                raise AssertionError("Matching delimiter not found")
            if lines[i] == delim:
                break
            body.append(lines[i])
            i += 1
        values[name] = "\n".join(body)
        i += 1
    return values


@pytest.fixture(autouse=True)
def _fresh_masks() -> None:
    masking.reset()


def _result() -> RunResult:
    return RunResult(
        mode="deploy",
        notiflows=[
            NotiflowOutcome("a", Status.CREATED, "n/a"),
            NotiflowOutcome("b", Status.UPDATED, "n/b"),
            NotiflowOutcome("c", Status.CONFLICT, "n/c"),
            NotiflowOutcome("d", Status.INVALID, "n/d"),
            NotiflowOutcome("e", Status.FORCED, "n/e"),
            NotiflowOutcome("f", Status.UNCHANGED, "n/f"),
            NotiflowOutcome("g", Status.PUBLISHED, "n/g"),
        ],
    )


def test_values_and_status_table() -> None:
    out = outputs_from_result(_result(), "/tmp/r.json")
    assert tuple(out) == OUTPUT_NAMES
    assert out["result"] == "invalid"
    assert json.loads(out["changed"]) == ["a", "b", "e", "g"]
    assert json.loads(out["deployed"]) == ["a", "b", "e", "g"]
    assert json.loads(out["conflicts"]) == ["c"]
    assert json.loads(out["invalid"]) == ["d"]
    assert json.loads(out["drifted"]) == []
    assert out["report-path"] == "/tmp/r.json"
    plan = RunResult(mode="plan", notiflows=[NotiflowOutcome("x", Status.WOULD_CREATE, "n/x")])
    assert json.loads(outputs_from_result(plan, None)["changed"]) == ["x"]
    assert json.loads(outputs_from_result(plan, None)["deployed"]) == []
    pairs = [("u", Status.UNDEPLOYED), ("r", Status.REMOTE_ONLY), ("i", Status.IN_SYNC)]
    drift = RunResult(mode="drift", notiflows=[NotiflowOutcome(h, s, "") for h, s in pairs])
    assert json.loads(outputs_from_result(drift, None)["drifted"]) == ["u", "r"]


def test_a_pushed_draft_is_deployed_whatever_its_final_status() -> None:
    """Pushed, then refused at publish (failed) or raced at publish (conflict): a draft was written."""
    result = RunResult(mode="deploy", notiflows=[
        NotiflowOutcome("refused", Status.FAILED, "n/r", extra={"pushed": True}),
        NotiflowOutcome("raced", Status.CONFLICT, "n/x", extra={"pushed": True}),
        NotiflowOutcome("never", Status.FAILED, "n/n"),
    ])
    out = outputs_from_result(result, None)
    assert json.loads(out["deployed"]) == ["refused", "raced"]
    assert json.loads(out["changed"]) == ["refused", "raced"]
    assert json.loads(out["conflicts"]) == ["raced"]


def test_no_report_means_error() -> None:
    out = outputs_from_report(None, None)
    assert out["result"] == "error" and out["changed"] == "[]" and out["report-path"] == ""


def test_round_trip_through_runner_parser(tmp_path: Path) -> None:
    target = tmp_path / "output"
    target.write_text("earlier=1\n")  # the file may already hold other outputs
    tricky = {
        "result": "conflict",
        "changed": json.dumps(["a=b", "c<<d", "line\nbreak", "ünï"]),
        "report-path": "/github/home/notiflows-deploy/report.json",
        "empty": "",
    }
    assert write_outputs(tricky, target) == []
    parsed = parse_output_file(target.read_text(encoding="utf-8"))
    assert parsed == {"earlier": "1", **tricky}
    assert json.loads(parsed["changed"])[2] == "line\nbreak"


def test_multiline_value_survives(tmp_path: Path) -> None:
    target = tmp_path / "output"
    write_outputs({"x": "one\ntwo\n"}, target)
    assert parse_output_file(target.read_text())["x"] == "one\ntwo\n"


def test_random_delimiter_and_guard() -> None:
    a, b = format_output("x", "v"), format_output("x", "v")
    assert a.split("\n")[0].startswith("x<<ghadelimiter_") and a != b
    with pytest.raises(OutputError):
        format_output("x", "has ghadelimiter_1 inside", delimiter="ghadelimiter_1")
    with pytest.raises(OutputError):
        format_output("x=y", "v")


def test_masked_value_is_never_written(tmp_path: Path) -> None:
    masking.mask("super-secret-value", io.StringIO())
    target = tmp_path / "output"
    skipped = write_outputs({"ok": "fine", "bad": "prefix super-secret-value"}, target)
    assert skipped == ["bad"]
    assert "super-secret-value" not in target.read_text()
    assert parse_output_file(target.read_text()) == {"ok": "fine"}


def test_no_output_file_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    assert write_outputs({"result": "success"}) == []
