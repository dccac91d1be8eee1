from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from notiflows_deploy.model import NotiflowOutcome, Problem, RunResult, Status
from notiflows_deploy.report.json_report import REPORT_VERSION, build_report, dumps_report, write_report
from notiflows_deploy.report.summary import example_result


def test_section_6_shape() -> None:
    report = build_report(example_result())
    assert report["version"] == REPORT_VERSION == 1
    assert report["mode"] == "plan" and report["result"] == "invalid" and report["exit_code"] == 4
    assert report["project"] == "my-app"
    assert len(report["base"]) == 40 and len(report["head"]) == 40
    assert report["counts"] == {"would-update": 1, "would-create": 1, "conflict": 1, "invalid": 1, "unchanged": 1}
    first = report["notiflows"][0]
    for key in ("handle", "status", "path", "remote_sha_before", "remote_sha_after", "version", "published",
                "errors", "diff"):
        assert key in first
    invalid = next(n for n in report["notiflows"] if n["status"] == "invalid")
    assert invalid["errors"][0] == {
        "file": ".notiflows/notiflows/digest-weekly/notiflow.json", "line": 12, "column": 7,
        "message": "'channel' is a required property", "code": "schema",
        "hint": "add \"channel\": \"email\" to the step",
    }
    assert report["errors"] == [] and report["notes"]
    json.dumps(report)  # serialisable


def test_run_level_errors_and_fatal() -> None:
    result = RunResult(mode="deploy", errors=[Problem("notiflows.json", 1, 1, "config", "bad")], fatal="stopped")
    report = build_report(result)
    assert report["result"] == "error" and report["exit_code"] == 1
    assert report["errors"][0]["code"] == "config" and report["fatal"] == "stopped"
    assert report["base"] is None and report["notiflows"] == []


def test_write_is_atomic_and_readable(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.json"
    result = RunResult(mode="plan", notiflows=[NotiflowOutcome("ünï", Status.WOULD_CREATE, "n/u")])
    assert write_report(result, target) == target
    assert json.loads(target.read_text(encoding="utf-8"))["notiflows"][0]["handle"] == "ünï"
    assert target.read_text(encoding="utf-8") == dumps_report(result)
    assert oct(os.stat(target).st_mode & 0o777) == "0o644"
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]  # no temp file left


def test_failed_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")

    def boom(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_report(RunResult(mode="plan"), target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
