"""`validate` through the command line: `cli.main(argv, env)` in-process and `python -m notiflows_deploy`.

Covers --all and --base/--head ranges on real git repositories, the text and json formats (CONTRACT
section 6 shape), exit codes, per-notiflow statuses when one is broken, error locations relative to
the repository root (also for a project in a subdirectory), --schema, --help/--version and the
console-script entry point.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from gitutil import TestRepo, notiflow_json

from notiflows_deploy import __version__, cli

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "corpus"


# --- helpers ------------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    code = cli.main(list(argv), dict(env or {}))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str, env: Mapping[str, str] | None = None
             ) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, *argv, "--format", "json", env=env)
    report = json.loads(out)
    assert report["exit_code"] == code
    return code, report


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "NOTIFLOWS_", "INPUT_")) or k.startswith("NOTIFLOWS_DEPLOY_")}
    env.update(extra)
    return env


def run_module(*argv: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "notiflows_deploy", *argv], cwd=cwd, env=dict(env or subprocess_env()),
                          capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


def by_handle(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["handle"]: n for n in report["notiflows"]}


def check_report_shape(report: dict[str, Any]) -> None:
    """CONTRACT section 6: the keys and types every report carries."""
    for key in ("version", "mode", "result", "project", "base", "head", "notiflows"):
        assert key in report, key
    assert report["version"] == 1
    assert report["result"] in ("success", "no-changes", "drift", "conflict", "invalid", "failed", "error")
    assert report["base"] is None or isinstance(report["base"], str)
    assert report["head"] is None or isinstance(report["head"], str)
    for n in report["notiflows"]:
        assert isinstance(n["handle"], str) and isinstance(n["status"], str) and isinstance(n["path"], str)
        assert isinstance(n["errors"], list)
        for e in n["errors"]:
            assert set(e) >= {"file", "line", "column", "message", "code"}
            assert isinstance(e["line"], int) and e["line"] >= 1
            assert isinstance(e["column"], int) and e["column"] >= 1
            assert not e["file"].startswith("/")


BROKEN = '{\n  "name": "Broken",\n  "active": tru\n}\n'  # json syntax error at line 3


@pytest.fixture
def repo(tmp_path: Path) -> TestRepo:
    r = TestRepo(tmp_path / "repo")
    r.init_project("alpha", "beta", "gamma")
    return r


# --- --all ----------------------------------------------------------------------------------------


def test_validate_all_text_ok(repo: TestRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "--all", "--repo", str(repo.path), "--format", "text")
    assert code == 0
    assert out.startswith("notiflows-deploy validate: success (exit 0)")
    for handle in ("alpha", "beta", "gamma"):
        assert any(line.split()[:2] == ["valid", handle] for line in out.splitlines()), out
    assert "3 notiflows: 3 valid" in out


def test_validate_all_json_shape(repo: TestRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(capsys, "validate", "--all", "--repo", str(repo.path))
    assert code == 0
    check_report_shape(report)
    assert report["mode"] == "validate"
    assert report["result"] == "success"
    assert report["project"] == "my-app"
    assert report["head"] == repo.sha()
    assert [n["handle"] for n in report["notiflows"]] == ["alpha", "beta", "gamma"]
    assert {n["status"] for n in report["notiflows"]} == {"valid"}
    assert by_handle(report)["beta"]["path"] == ".notiflows/notiflows/beta"


def test_default_format_is_text_outside_actions_and_github_under_actions(
    repo: TestRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "validate", "--all", "--repo", str(repo.path))
    assert out.startswith("notiflows-deploy validate:")
    _, out, _ = run(capsys, "validate", "--all", "--repo", str(repo.path), env={"GITHUB_ACTIONS": "true"})
    assert out.startswith("::stop-commands::")


def test_one_broken_notiflow_does_not_hide_the_others(repo: TestRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write(repo.nf_path("beta", "notiflow.json"), BROKEN)
    repo.commit("break beta")
    code, report = run_json(capsys, "validate", "--all", "--repo", str(repo.path))
    assert code == 4
    check_report_shape(report)
    assert report["result"] == "invalid"
    statuses = {h: n["status"] for h, n in by_handle(report).items()}
    assert statuses == {"alpha": "valid", "beta": "invalid", "gamma": "valid"}
    [error] = by_handle(report)["beta"]["errors"]
    assert error["file"] == ".notiflows/notiflows/beta/notiflow.json"
    assert error["code"] == "json-syntax"
    assert error["line"] == 3
    assert error["column"] >= 13  # at (or just after) the bad literal "tru"


def test_text_format_shows_file_line_column(repo: TestRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write(repo.nf_path("beta", "notiflow.json"), BROKEN)
    repo.commit("break beta")
    code, out, _ = run(capsys, "validate", "--all", "--repo", str(repo.path), "--format", "text")
    assert code == 4
    assert out.startswith("notiflows-deploy validate: invalid (exit 4)")
    assert ".notiflows/notiflows/beta/notiflow.json:3:" in out
    assert "[json-syntax]" in out


# --- --base / --head ------------------------------------------------------------------------------


def test_range_validates_only_changed_notiflows(repo: TestRepo, capsys: pytest.CaptureFixture[str]) -> None:
    first = repo.sha()
    repo.write(repo.nf_path("beta", "steps/email_1/body.html"), "<p>changed</p>\n")
    second = repo.commit("edit beta")
    code, report = run_json(capsys, "validate", "--base", first, "--head", second, "--repo", str(repo.path))
    assert code == 0
    assert (report["base"], report["head"]) == (first, second)
    assert [(n["handle"], n["status"]) for n in report["notiflows"]] == [("beta", "valid")]

    repo.write(repo.nf_path("gamma", "notiflow.json"), BROKEN)
    third = repo.commit("break gamma")
    code, report = run_json(capsys, "validate", "--base", second, "--head", third, "--repo", str(repo.path))
    assert code == 4
    assert [(n["handle"], n["status"]) for n in report["notiflows"]] == [("gamma", "invalid")]
    # the earlier range is still valid: only changes inside the range count
    code, report = run_json(capsys, "validate", "--base", first, "--head", second, "--repo", str(repo.path))
    assert code == 0


def test_range_reads_head_commit_not_working_tree(repo: TestRepo, capsys: pytest.CaptureFixture[str]) -> None:
    first = repo.sha()
    repo.write(repo.nf_path("beta", "notiflow.json"), BROKEN)
    broken = repo.commit("break beta")
    repo.write(repo.nf_path("beta", "notiflow.json"), notiflow_json("beta"))
    repo.commit("fix beta")
    code, report = run_json(capsys, "validate", "--base", first, "--head", broken, "--repo", str(repo.path))
    assert code == 4
    assert by_handle(report)["beta"]["status"] == "invalid"


def test_no_changes_is_exit_0(repo: TestRepo, capsys: pytest.CaptureFixture[str]) -> None:
    first = repo.sha()
    repo.write("README.md", "# unrelated\n")
    second = repo.commit("docs only")
    code, report = run_json(capsys, "validate", "--base", first, "--head", second, "--repo", str(repo.path))
    assert code == 0
    assert report["result"] == "no-changes"
    assert report["notiflows"] == []
    code, out, _ = run(capsys, "validate", "--base", first, "--head", second, "--repo", str(repo.path))
    assert code == 0 and "no-changes (exit 0)" in out


def test_default_range_is_head_parent(repo: TestRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write(repo.nf_path("alpha", "steps/email_1/body.html"), "<p>new</p>\n")
    repo.commit("edit alpha")
    code, report = run_json(capsys, "validate", "--repo", str(repo.path))
    assert code == 0
    assert [n["handle"] for n in report["notiflows"]] == ["alpha"]
    assert report["base"] == repo.sha("HEAD~1")


def test_removed_notiflow_is_reported_not_an_error(repo: TestRepo, capsys: pytest.CaptureFixture[str]) -> None:
    first = repo.sha()
    repo.remove(repo.nf_path("gamma"))
    second = repo.commit("drop gamma")
    code, report = run_json(capsys, "validate", "--base", first, "--head", second, "--repo", str(repo.path))
    assert code == 0
    assert [(n["handle"], n["status"]) for n in report["notiflows"]] == [("gamma", "removed")]


# --- locations relative to the repository root ----------------------------------------------------

CORPUS_CASES = ["active-string", "json-trailing-comma", "position-gap", "webhook-missing-url", "step-key-typo",
                "template-unknown-pointer", "body-empty"]


def test_errors_relative_to_repo_root_when_project_in_subdirectory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Corpus cases copied into apps/notify/.notiflows: same codes/positions, paths from the git top level."""
    repo = TestRepo(tmp_path / "mono", project="apps/notify")
    repo.init_project("fine")
    for case in CORPUS_CASES:
        shutil.copytree(CORPUS / "invalid" / case, repo.path / repo.nf_path(case))
        (repo.path / repo.nf_path(case, "expected.json")).unlink()
    repo.commit("add broken ones")
    for where in (repo.project_path(), repo.project_path(".notiflows/notiflows/fine")):
        code, report = run_json(capsys, "validate", "--all", "--repo", str(where))
        assert code == 4
        check_report_shape(report)
        got = by_handle(report)
        assert got["fine"]["status"] == "valid"
        assert got["fine"]["path"] == "apps/notify/.notiflows/notiflows/fine"
        for case in CORPUS_CASES:
            expected = json.loads((CORPUS / "invalid" / case / "expected.json").read_text())
            n = got[case]
            assert n["status"] == "invalid", case
            assert n["path"] == f"apps/notify/.notiflows/notiflows/{case}"
            assert [(e["code"], e["line"], e["column"]) for e in n["errors"]] == [
                (x["code"], x["line"], x["column"]) for x in expected if x["severity"] == "error"
            ], case
            for e in n["errors"]:
                assert e["file"].startswith(f"apps/notify/.notiflows/notiflows/{case}/"), e


def test_error_in_extracted_file_points_into_that_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = TestRepo(tmp_path / "mono", project="svc")
    repo.init_project("alpha")
    repo.write(repo.nf_path("alpha", "steps/email_1/body.html"), "<p>\n  hi ${MISSING_VAR}\n</p>\n")
    repo.commit("use an env var")
    code, report = run_json(capsys, "validate", "--all", "--repo", str(repo.project_path()))
    assert code == 4
    [error] = by_handle(report)["alpha"]["errors"]
    assert error["file"] == "svc/.notiflows/notiflows/alpha/steps/email_1/body.html"
    assert (error["line"], error["column"]) == (2, 6)
    code, report = run_json(capsys, "validate", "--all", "--repo", str(repo.project_path()),
                            env={"MISSING_VAR": "there"})
    assert code == 0


def test_github_format_annotation_uses_repo_relative_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = TestRepo(tmp_path / "mono", project="svc")
    repo.init_project("alpha")
    repo.write(repo.nf_path("alpha", "notiflow.json"), BROKEN)
    repo.commit("break")
    code, out, _ = run(capsys, "validate", "--all", "--repo", str(repo.project_path()), "--format", "github")
    assert code == 4
    errors = [line for line in out.splitlines() if line.startswith("::error ")]
    assert errors and "file=svc/.notiflows/notiflows/alpha/notiflow.json" in errors[0]
    assert ",line=3" in errors[0]


# --- --schema ---------------------------------------------------------------------------------------


def test_schema_override_is_used_and_reported(repo: TestRepo, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    schema = tmp_path / "strict.schema.json"
    schema.write_text(json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["name", "steps"],
        "properties": {"name": {"type": "string", "maxLength": 4}},
    }))
    code, report = run_json(capsys, "validate", "--all", "--repo", str(repo.path), "--schema", str(schema))
    assert f"schema: --schema {schema}" in report["notes"]
    assert code == 4  # the names are the handles: "alpha" and "gamma" are longer than 4, "beta" is not
    invalid = [n for n in report["notiflows"] if n["status"] == "invalid"]
    assert [n["handle"] for n in invalid] == ["alpha", "gamma"]
    [error] = invalid[0]["errors"]
    assert error["file"] == ".notiflows/notiflows/alpha/notiflow.json"
    assert error["line"] == 2  # the "name" value
    # without the override the bundled schema is used and everything passes
    code, report = run_json(capsys, "validate", "--all", "--repo", str(repo.path))
    assert code == 0
    assert not any(note.startswith("schema: --schema") for note in report["notes"])
    assert any(note.startswith("schema: bundled schema") for note in report["notes"])


# --- exit codes -------------------------------------------------------------------------------------


def test_exit_codes(repo: TestRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "validate", "--all", "--repo", str(repo.path))[0] == 0
    empty = tmp_path / "no-config"
    empty.mkdir()
    assert run(capsys, "validate", "--all", "--repo", str(empty))[0] == 1
    repo.write(repo.nf_path("alpha", "notiflow.json"), BROKEN)
    assert run(capsys, "validate", "--all", "--repo", str(repo.path))[0] == 4


# --- the program as a program ------------------------------------------------------------------------


def test_subprocess_validate_json_and_text(repo: TestRepo) -> None:
    proc = run_module("validate", "--all", "--format", "json", cwd=repo.path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    check_report_shape(report)
    assert report["result"] == "success" and len(report["notiflows"]) == 3

    repo.write(repo.nf_path("beta", "notiflow.json"), BROKEN)
    proc = run_module("validate", "--all", "--repo", str(repo.path), cwd=repo.path.parent)
    assert proc.returncode == 4
    assert ".notiflows/notiflows/beta/notiflow.json:3:" in proc.stdout
    # --repo nowhere near a notiflows.json: a configuration error, exit 1
    proc = run_module("validate", "--all", cwd=repo.path.parent)
    assert proc.returncode == 1
    assert "no notiflows.json found" in proc.stdout + proc.stderr


def test_help_and_version_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"], {})
    assert info.value.code == 0
    out = capsys.readouterr().out
    for mode in ("validate", "plan", "deploy", "drift"):
        assert mode in out
    with pytest.raises(SystemExit) as info:
        cli.main(["validate", "--help"], {})
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--repo", "--base", "--head", "--all", "--format", "--schema", "--report-json", "--summary"):
        assert flag in out
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"], {})
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"notiflows-deploy {__version__}"


def test_help_and_version_subprocess() -> None:
    proc = run_module("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"notiflows-deploy {__version__}"
    proc = run_module("--help")
    assert proc.returncode == 0 and "NOTIFLOWS_TOKEN" in proc.stdout


def test_console_script_entry_point() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert data["project"]["scripts"]["notiflows-deploy"] == "notiflows_deploy.cli:main"
    module, _, attr = data["project"]["scripts"]["notiflows-deploy"].partition(":")
    target = getattr(__import__(module, fromlist=[attr]), attr)
    assert target is cli.main
    # the installed script (editable install in the venv) runs the same main
    script = shutil.which("notiflows-deploy", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("notiflows-deploy script not installed next to this interpreter")
    proc = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and __version__ in proc.stdout
