"""Bad input gets one clear message and the right exit code, never a traceback, in every mode.

Every run's captured stdout+stderr is checked for "Traceback". Network cases use the bundled
emulator (or a closed loopback port) and a client that does not sleep between retries.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from emulator_support import PROJECT, TOKEN, running_emulator
from gitutil import TestRepo

from notiflows_deploy import cli, runner
from notiflows_deploy.api import client as api_client
from notiflows_deploy.emulator import Emulator

MODES = ("validate", "plan", "deploy", "drift")
NET_MODES = ("plan", "deploy", "drift")


def run(capsys: pytest.CaptureFixture[str], *argv: str, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    code = cli.main(list(argv), dict(env or {}))
    out, err = capsys.readouterr()
    both = out + err
    assert "Traceback" not in both, both
    return code, both


def run_json(capsys: pytest.CaptureFixture[str], *argv: str, env: Mapping[str, str] | None = None
             ) -> tuple[int, dict[str, Any]]:
    code = cli.main([*argv, "--format", "json"], dict(env or {}))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, json.loads(out)


def usage_exit(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int | str | None, str]:
    with pytest.raises(SystemExit) as info:
        cli.main(list(argv), {})
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return info.value.code, out + err


class _NoSleepClient(api_client.ManagementClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("sleep", lambda _s: None)
        super().__init__(*args, **kwargs)


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_client, "ManagementClient", _NoSleepClient)


@pytest.fixture
def repo(tmp_path: Path) -> TestRepo:
    r = TestRepo(tmp_path / "repo")
    r.config({"notiflowsDir": ".notiflows", "project": PROJECT})
    for handle in ("alpha", "beta"):
        r.add_notiflow(handle)
    r.commit("initial")
    return r


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with running_emulator() as emu:
        yield emu


def net_env(emu: Emulator | None = None, token: str = TOKEN, **extra: str) -> dict[str, str]:
    env = {"NOTIFLOWS_TOKEN": token, **extra}
    if emu is not None:
        env["NOTIFLOWS_BASE_URL"] = emu.base_url
    return env


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens there


# --- notiflows.json ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_no_config_says_how_to_create_it(mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(capsys, mode, "--all", "--repo", str(tmp_path), env=net_env())
    assert code == 1
    assert "no notiflows.json found" in text
    assert "create notiflows.json" in text and '"notiflowsDir": ".notiflows"' in text


def test_no_config_is_not_pinned_on_a_file_that_does_not_exist(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    code, text = run(capsys, "validate", "--all", "--repo", str(tmp_path), "--format", "github",
                     "--report-json", str(report), env=net_env())
    assert code == 1
    assert "file=notiflows.json" not in text and "::error" in text
    (error,) = json.loads(report.read_text())["errors"]
    assert error["file"] == "" and "no notiflows.json found" in error["message"]


@pytest.mark.parametrize("mode", MODES)
def test_broken_config_points_at_line_and_column(mode: str, repo: TestRepo,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("notiflows.json", '{\n  "notiflowsDir": ".notiflows",\n  "project": demo\n}\n')
    code, text = run(capsys, mode, "--all", "--repo", str(repo.path), env=net_env())
    assert code == 1
    assert "notiflows.json:3:14" in text
    code, report = run_json(capsys, mode, "--all", "--repo", str(repo.path), env=net_env())
    assert code == 1 and report["result"] == "error"
    [error] = report["errors"]
    assert (error["file"], error["line"], error["column"], error["code"]) == ("notiflows.json", 3, 14, "config")


def test_broken_config_in_subdirectory_is_located_from_repo_root(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """CONTRACT section 6: `file` is relative to the repo root, also for run-level (config) errors.

    Known bug: config.load_config reports plain "notiflows.json" whatever the project's directory,
    so the GitHub annotation lands on a file that does not exist.
    """
    repo = TestRepo(tmp_path / "mono", project="apps/notify")
    repo.init_project("alpha")
    repo.write(repo.prefix + "notiflows.json", '{"project": nope}\n')
    code, report = run_json(capsys, "validate", "--all", "--repo", str(repo.project_path()))
    assert code == 1
    [error] = report["errors"]
    assert error["file"] == "apps/notify/notiflows.json"


def test_config_not_utf8(repo: TestRepo, capsys: pytest.CaptureFixture[str]) -> None:
    (repo.path / "notiflows.json").write_bytes(b'{"project": "caf\xe9"}')
    code, text = run(capsys, "validate", "--all", "--repo", str(repo.path))
    assert code == 1 and "not UTF-8" in text


# --- --repo and git ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_repo_pointing_nowhere(mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(capsys, mode, "--repo", str(tmp_path / "does" / "not" / "exist"), env=net_env())
    assert code == 1
    assert "does not exist" in text


def test_not_a_git_repo_with_base(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = TestRepo(tmp_path / "plain", init=False)
    plain.config()
    plain.add_notiflow("alpha")
    code, text = run(capsys, "validate", "--base", "main", "--repo", str(plain.path))
    assert code == 1
    assert "need a git repository" in text and "--all" in text
    # without a range it still validates everything, and says why
    code, report = run_json(capsys, "validate", "--repo", str(plain.path))
    assert code == 0
    assert [n["status"] for n in report["notiflows"]] == ["valid"]
    assert any("not a git repository" in note for note in report["notes"])


@pytest.mark.parametrize("flag", ["--base", "--head"])
def test_unknown_ref(flag: str, repo: TestRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(capsys, "validate", flag, "no-such-ref", "--repo", str(repo.path))
    assert code == 1
    assert "'no-such-ref' is not a commit" in text


# --- usage errors: exit 1 (CONTRACT section 3), never argparse's 2 (which means drift) ----------------


@pytest.mark.parametrize("argv", [
    ["validate", "--concurrency", "0"],
    ["plan", "--concurrency", "abc"],
    ["deploy", "--concurrency", "33"],
    ["drift", "--fail-on-drift", "maybe"],
    ["validate", "--format", "xml"],
    ["frobnicate"],
    [],
    ["validate", "--no-such-flag"],
])
def test_usage_errors_exit_1(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, text = usage_exit(capsys, *argv)
    assert code == 1
    assert "error:" in text and "usage:" in text


def test_usage_error_subprocess_exit_1() -> None:
    proc = subprocess.run([sys.executable, "-m", "notiflows_deploy", "validate", "--concurrency", "abc"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert "expected a whole number, got 'abc'" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


# --- token, project, server ----------------------------------------------------------------------


@pytest.mark.parametrize("token_env", [{}, {"NOTIFLOWS_TOKEN": ""}, {"NOTIFLOWS_TOKEN": "  "}])
@pytest.mark.parametrize("mode", NET_MODES)
def test_missing_token(mode: str, token_env: dict[str, str], repo: TestRepo,
                       capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(capsys, mode, "--all", "--repo", str(repo.path), env=token_env)
    assert code == 1
    assert f"{mode} needs a Notiflows account token in NOTIFLOWS_TOKEN" in text


@pytest.mark.parametrize("mode", NET_MODES)
def test_missing_project(mode: str, repo: TestRepo, emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    repo.config({"notiflowsDir": ".notiflows"})
    code, text = run(capsys, mode, "--all", "--repo", str(repo.path), env=net_env(emulator))
    assert code == 1
    assert "no project" in text and "NOTIFLOWS_PROJECT" in text
    assert emulator.request_count == 0


@pytest.mark.parametrize("mode", NET_MODES)
def test_wrong_token_is_one_clear_error(mode: str, repo: TestRepo, emulator: Emulator,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(capsys, mode, "--all", "--repo", str(repo.path),
                            env=net_env(emulator, token="nf_at_wrong"))
    assert code == 1
    assert report["result"] == "error"
    assert report["notiflows"] == []  # not one failure per notiflow
    assert "Authentication required" in report["fatal"] and "NOTIFLOWS_TOKEN" in report["fatal"]
    assert "nf_at_wrong" not in json.dumps(report)
    assert emulator.request_count == 1  # one whoami, not retried (401 is final)


@pytest.mark.parametrize("mode", NET_MODES)
def test_unknown_project_404(mode: str, repo: TestRepo, emulator: Emulator,
                             capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(capsys, mode, "--all", "--repo", str(repo.path), "--project", "no-such-project",
                     env=net_env(emulator))
    assert code == 1
    assert "Project not found" in text and "check the project slug" in text
    assert emulator.request_count == 1


@pytest.mark.parametrize("mode", NET_MODES)
def test_server_unreachable(mode: str, repo: TestRepo, capsys: pytest.CaptureFixture[str]) -> None:
    """Connection refused at the first call (whoami): a run-level error, exit 1, after the retries.

    Exit 1 rather than 5 is sensible: nothing about any notiflow was learnt, and 5 means "the API
    refused or failed for at least one notiflow".
    """
    url = f"http://127.0.0.1:{closed_port()}/management/v1"
    code, report = run_json(capsys, mode, "--all", "--repo", str(repo.path), "--api-url", url, env=net_env())
    assert code == 1
    assert report["result"] == "error" and report["notiflows"] == []
    assert "could not connect" in report["fatal"] and "gave up after 5 attempts" in report["fatal"]
    assert "--api-url" in report["fatal"]


@pytest.mark.parametrize("url", ["not-a-url", "ftp://127.0.0.1/management/v1", "http://"])
def test_bad_api_url_is_a_usage_error_not_a_crash(url: str, repo: TestRepo,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Known bug: ManagementClient raises ValueError, which cli reports as "unexpected error ... a bug"."""
    code, text = run(capsys, "plan", "--all", "--repo", str(repo.path), "--api-url", url, env=net_env())
    assert code == 1
    assert "unexpected error" not in text
    assert "api-url" in text.lower()


# --- hostile notiflow files ----------------------------------------------------------------------

HOSTILE: dict[str, tuple[bytes, str]] = {
    "latin1": (b'{"name": "Caf\xe9", "active": true, "steps": []}\n', "notiflow-json-not-utf8"),
    "garbage": (bytes(range(256)) * 8, "notiflow-json-not-utf8"),
    "nuls": (b"\x00\x01\x02{}\x00", "json-syntax"),
    "deep": (b"[" * 50_000 + b"]" * 50_000, "json-too-deep"),
    "deep-objects": (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "json-too-deep"),
    "oversized": (b'{"name": "' + b"x" * (4 * 1024 * 1024 + 10) + b'"}', "notiflow-json-too-large"),
    "empty": (b"", "notiflow-json-empty"),
}


def _add_hostile(repo: TestRepo) -> None:
    for handle, (data, _) in HOSTILE.items():
        path = repo.path / repo.nf_path(handle, "notiflow.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_hostile_notiflow_files_validate(repo: TestRepo, capsys: pytest.CaptureFixture[str]) -> None:
    _add_hostile(repo)
    repo.commit("hostile")
    code, report = run_json(capsys, "validate", "--all", "--repo", str(repo.path))
    assert code == 4
    got = {n["handle"]: n for n in report["notiflows"]}
    assert got["alpha"]["status"] == got["beta"]["status"] == "valid"
    for handle, (_, expected_code) in HOSTILE.items():
        assert got[handle]["status"] == "invalid", handle
        codes = [e["code"] for e in got[handle]["errors"]]
        assert codes == [expected_code], (handle, codes)
        assert got[handle]["errors"][0]["file"] == f".notiflows/notiflows/{handle}/notiflow.json"
    # a non-UTF-8 byte is located where it is
    latin = got["latin1"]["errors"][0]
    assert (latin["line"], latin["column"]) == (1, 14)
    code, _ = run(capsys, "validate", "--all", "--repo", str(repo.path), "--format", "github")
    assert code == 4


def test_hostile_notiflow_files_plan_and_deploy(repo: TestRepo, emulator: Emulator,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _add_hostile(repo)
    repo.commit("hostile")
    for mode in ("plan", "deploy"):
        code, report = run_json(capsys, mode, "--all", "--repo", str(repo.path), env=net_env(emulator))
        assert code == 4, mode
        got = {n["handle"]: n["status"] for n in report["notiflows"]}
        assert {h: got[h] for h in HOSTILE} == dict.fromkeys(HOSTILE, "invalid")
        assert got["alpha"] == got["beta"] == ("would-create" if mode == "plan" else "created")
    code, report = run_json(capsys, "drift", "--repo", str(repo.path), env=net_env(emulator))
    assert code in (2, 4)
    assert "Traceback" not in json.dumps(report)


def test_extracted_body_not_utf8_points_into_body(repo: TestRepo, capsys: pytest.CaptureFixture[str]) -> None:
    (repo.path / repo.nf_path("beta", "steps/email_1/body.html")).write_bytes(b"<p>ok</p>\n<p>\xff</p>\n")
    code, report = run_json(capsys, "validate", "--all", "--repo", str(repo.path))
    assert code == 4
    [error] = next(n for n in report["notiflows"] if n["handle"] == "beta")["errors"]
    assert error["file"] == ".notiflows/notiflows/beta/steps/email_1/body.html"
    assert (error["line"], error["column"], error["code"]) == (2, 4, "pointer-not-utf8")


# --- bugs: "unexpected error", never a traceback unless asked ---------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_unexpected_internal_error(mode: str, repo: TestRepo, emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    def boom(ctx: runner.Context, result: Any) -> None:
        raise RuntimeError("kaboom in the pipeline")

    monkeypatch.setitem(runner.MODES, mode, boom)
    code, text = run(capsys, mode, "--all", "--repo", str(repo.path), env=net_env(emulator))
    assert code == 1
    assert "unexpected error" in text and "RuntimeError: kaboom in the pipeline" in text
    assert "please report this as a bug" in text

    code = cli.main([mode, "--all", "--repo", str(repo.path)], {**net_env(emulator), "NOTIFLOWS_DEPLOY_DEBUG": "1"})
    out, err = capsys.readouterr()
    assert code == 1
    assert "Traceback" in err and "kaboom in the pipeline" in err
    assert "Traceback" not in out


def test_unexpected_error_in_prepare(repo: TestRepo, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise KeyError("surprise")

    monkeypatch.setattr(runner, "prepare", boom)
    code, report = run_json(capsys, "validate", "--all", "--repo", str(repo.path))
    assert code == 1
    assert report["result"] == "error" and "unexpected error" in report["fatal"]


def test_unexpected_error_subprocess_has_no_traceback(repo: TestRepo, tmp_path: Path) -> None:
    """A real process: patch the pipeline from a sitecustomize-free wrapper script."""
    script = tmp_path / "crash.py"
    script.write_text(
        "import sys\n"
        "from notiflows_deploy import cli, runner\n"
        "def boom(ctx, result):\n"
        "    raise RuntimeError('kaboom')\n"
        "runner.MODES['validate'] = boom\n"
        "raise SystemExit(cli.main(sys.argv[1:]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "NOTIFLOWS_TOKEN"))}
    proc = subprocess.run([sys.executable, str(script), "validate", "--all", "--repo", str(repo.path)],
                          capture_output=True, text=True, timeout=60, check=False, env=env)
    assert proc.returncode == 1
    assert "unexpected error (RuntimeError: kaboom)" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, str(script), "validate", "--all", "--repo", str(repo.path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**env, "NOTIFLOWS_DEPLOY_DEBUG": "1"})
    assert proc.returncode == 1 and "Traceback" in proc.stderr


@pytest.mark.parametrize("argv,env", [
    (["plan", "--concurrency", "abc", "--format", "github"], {}),
    (["plan", "--format=github", "--no-such-flag"], {}),
    (["drift", "--fail-on-drift", "maybe"], {"GITHUB_ACTIONS": "true"}),  # github is the default there
    ([], {"GITHUB_ACTIONS": "true"}),
])
def test_usage_errors_under_github_are_one_error_command(argv: list[str], env: dict[str, str],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv, env)
    out, err = capsys.readouterr()
    assert info.value.code == 1
    assert err == ""  # no bare usage text: the runner would show it as plain log lines
    (line,) = out.splitlines()
    assert line.startswith("::error title=notiflows-deploy::notiflows-deploy")
    assert "--help" in line


def test_usage_error_under_text_still_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["plan", "--concurrency", "abc", "--format", "text"], {"GITHUB_ACTIONS": "true"})
    out, err = capsys.readouterr()
    assert info.value.code == 1 and out == ""
    assert err.startswith("usage: notiflows-deploy plan") and "error: argument --concurrency" in err
