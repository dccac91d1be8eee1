"""entrypoint.py: inputs -> masking -> safe directory -> CLI -> outputs.

Part 1 runs the entrypoint against a stand-in CLI (no Notiflows logic needed). Part 2 runs the
real CLI against the bundled emulator with the environment exactly as the runner builds it for
pull_request, push (also creating a branch), schedule and workflow_dispatch; it is skipped until
the lead's CLI (`notiflows_deploy.cli` + `notiflows_deploy.app`) is importable.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_outputs import parse_output_file

from notiflows_deploy.github import masking
from notiflows_deploy.model import NotiflowOutcome, RunResult, Status
from notiflows_deploy.report.json_report import write_report

ROOT = Path(__file__).resolve().parent.parent


def _load_entrypoint() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("nfd_entrypoint", ROOT / "entrypoint.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


entrypoint = _load_entrypoint()


def importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    """The entrypoint writes os.environ (tokens, GIT_CONFIG_*) like the real process; undo it."""
    saved = dict(os.environ)
    masking.reset()
    yield
    os.environ.clear()
    os.environ.update(saved)
    masking.reset()


def action_defaults() -> dict[str, str]:
    data = yaml.safe_load((ROOT / "action.yml").read_text())
    env = {}
    for name, spec in data["inputs"].items():
        default = str(spec.get("default", ""))
        env[f"INPUT_{name.upper()}"] = "ghs_runner_token_0001" if default == "${{ github.token }}" else default
    return env


def runner_env(
    tmp_path: Path, workspace: Path, event_name: str, event: dict[str, Any], **inputs: str
) -> dict[str, str]:
    """The variables a Docker action sees (paths under tmp_path instead of the /github mounts)."""
    files = tmp_path / "file_commands"
    files.mkdir(exist_ok=True)
    (files / "output").touch()
    (files / "summary").touch()
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event))
    runner_temp = tmp_path / "runner_temp"
    runner_temp.mkdir(exist_ok=True)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = action_defaults()
    for key, value in inputs.items():
        env[f"INPUT_{key.replace('_', '-').upper()}"] = value
    env.update(
        GITHUB_ACTIONS="true", CI="true", HOME=str(home), RUNNER_TEMP=str(runner_temp),
        GITHUB_WORKSPACE=str(workspace), GITHUB_EVENT_NAME=event_name, GITHUB_EVENT_PATH=str(event_path),
        GITHUB_OUTPUT=str(files / "output"), GITHUB_STEP_SUMMARY=str(files / "summary"),
        GITHUB_REPOSITORY="octo/app", GITHUB_SERVER_URL="https://github.com", GITHUB_RUN_ID="1",
        GITHUB_API_URL="http://127.0.0.1:9", RUNNER_OS="Linux",
    )
    return env


def run_entrypoint(env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    for key in [k for k in os.environ if k.startswith(("INPUT_", "GITHUB_", "NOTIFLOWS_", "RUNNER_"))]:
        del os.environ[key]
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = entrypoint.main()
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------------------------
# Part 1: the entrypoint with a stand-in CLI


class FakeCli:
    def __init__(self, result: RunResult | None = None, raise_exc: Exception | None = None) -> None:
        self.result = result or RunResult(mode="plan", notiflows=[NotiflowOutcome("a", Status.WOULD_CREATE, "n/a")])
        self.raise_exc = raise_exc
        self.writes_report = True
        self.calls: list[list[str]] = []
        self.env_seen: dict[str, str] = {}

    def main(self, argv: list[str], env: dict[str, str] | None = None) -> int:
        self.calls.append(list(argv))
        self.env_seen = dict(os.environ if env is None else env)
        print("cli says hello")
        if self.raise_exc:
            raise self.raise_exc
        path = option(argv, "--report-json")
        if path and self.writes_report:
            write_report(self.result, path)
        return int(self.result.exit_code)


def option(argv: list[str], name: str) -> str | None:
    """The value of `--name=VALUE` in argv (the entrypoint passes every valued option that way)."""
    values = [a.partition("=")[2] for a in argv if a.startswith(name + "=")]
    return values[-1] if values else None


@pytest.fixture
def fake_cli(monkeypatch: pytest.MonkeyPatch) -> FakeCli:
    fake = FakeCli()
    module = types.ModuleType("notiflows_deploy.cli")
    module.main = fake.main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "notiflows_deploy.cli", module)
    return fake


def test_masks_first_passes_tokens_by_env_and_writes_outputs(tmp_path: Path, fake_cli: FakeCli) -> None:
    env = runner_env(tmp_path, tmp_path, "pull_request", {"number": 1}, token="nf_at_secret_1234", project="demo")
    code, out, _ = run_entrypoint(env, tmp_path)
    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == ["::add-mask::nf_at_secret_1234", "::add-mask::ghs_runner_token_0001"]
    argv = fake_cli.calls[0]
    assert argv[:3] == ["plan", "--repo=.", "--format=github"]
    assert "nf_at_secret_1234" not in " ".join(argv) and "ghs_runner" not in " ".join(argv)
    assert fake_cli.env_seen["NOTIFLOWS_TOKEN"] == "nf_at_secret_1234"
    assert fake_cli.env_seen["GITHUB_TOKEN"] == "ghs_runner_token_0001"
    report_path = option(argv, "--report-json")
    assert report_path and fake_cli.env_seen["NOTIFLOWS_DEPLOY_REPORT_PATH_SHOWN"] == report_path
    assert Path(report_path).parent == tmp_path / "runner_temp" / "notiflows-deploy"
    assert re.fullmatch(r"report-step-[0-9a-f]{12}\.json", Path(report_path).name)
    outputs = parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text())
    assert outputs["result"] == "success" and outputs["changed"] == '["a"]'
    assert outputs["report-path"] == report_path
    assert not any(tmp_path.glob("*.json.tmp"))


@pytest.mark.parametrize("inputs,needle", [
    ({"mode": "apply"}, "Input `mode` must be one of"),
    ({"mode": "plan"}, "Input `token` is required for mode `plan`"),
    ({"mode": "validate", "publish": "yes"}, "Input `publish` must be true or false"),
    ({"mode": "validate", "concurrency": "99"}, "Input `concurrency` must be from 1 to 32"),
])
def test_bad_input_is_one_error_and_exit_1(tmp_path: Path, fake_cli: FakeCli, inputs: dict[str, str],
                                           needle: str) -> None:
    env = runner_env(tmp_path, tmp_path, "push", {}, **inputs)
    code, out, err = run_entrypoint(env, tmp_path)
    assert code == 1
    errors = [ln for ln in out.splitlines() if ln.startswith("::error")]
    assert len(errors) == 1 and errors[0].startswith("::error title=notiflows-deploy::")
    assert needle in errors[0]
    assert "Traceback" not in out + err
    assert fake_cli.calls == []


def test_validate_needs_no_token(tmp_path: Path, fake_cli: FakeCli) -> None:
    env = runner_env(tmp_path, tmp_path, "push", {}, mode="validate")
    code, _, _ = run_entrypoint(env, tmp_path)
    assert code == 0 and fake_cli.calls[0][0] == "validate"


def test_cli_crash_is_reported_without_bare_traceback(tmp_path: Path, fake_cli: FakeCli) -> None:
    fake_cli.raise_exc = RuntimeError("boom")
    env = runner_env(tmp_path, tmp_path, "push", {}, mode="validate")
    code, out, err = run_entrypoint(env, tmp_path)
    assert code == 1
    lines = out.splitlines()
    error = lines.index("::error title=notiflows-deploy::unexpected error: RuntimeError: boom")
    # The traceback follows on the same pipe (order kept), fenced (it cannot inject commands).
    assert lines[error + 1].startswith("::stop-commands::") and "Traceback" in out
    assert lines[error + 1][2:].partition("::")[2] and lines[-1] == "::" + lines[error + 1].split("::")[2] + "::"
    assert err == ""
    outputs = parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text())
    assert outputs["result"] == "error" and outputs["report-path"] == ""


def test_exit_code_passes_through(tmp_path: Path, fake_cli: FakeCli) -> None:
    fake_cli.result = RunResult(mode="deploy", notiflows=[NotiflowOutcome("c", Status.CONFLICT, "n/c")])
    env = runner_env(tmp_path, tmp_path, "push", {}, mode="deploy", token="nf_at_xxxx")
    code, _, _ = run_entrypoint(env, tmp_path)
    assert code == 3
    assert parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text())["conflicts"] == '["c"]'


def test_report_path_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    temp = tmp_path / "rt"
    temp.mkdir()
    written, shown = entrypoint.choose_report_path({"RUNNER_TEMP": str(temp), "GITHUB_ACTION": "plan"})
    assert written == shown and Path(written).parent == temp / "notiflows-deploy"
    assert Path(written).name.startswith("report-plan-")
    # In the container: HOME is the /github/home mount, RUNNER_TEMP a host path not mounted here.
    root = tmp_path / "github"
    home, mounted_temp = root / "home", root / "runner_temp"
    home.mkdir(parents=True)
    monkeypatch.setattr(entrypoint, "CONTAINER_ROOT", str(root))
    monkeypatch.setattr(entrypoint, "CONTAINER_HOME", str(home))
    monkeypatch.setattr(entrypoint, "CONTAINER_RUNNER_TEMP", str(mounted_temp))
    written, shown = entrypoint.choose_report_path(
        {"RUNNER_TEMP": "/home/runner/work/_temp", "HOME": str(home), "RUNNER_WORKSPACE": "/home/runner/work/app"})
    assert Path(written).parent == home / "notiflows-deploy"
    assert shown == "/home/runner/work/_temp/_github_home/notiflows-deploy/" + Path(written).name
    # Runner PR #4011: RUNNER_TEMP is rewritten to the /github/runner_temp mount, so the host path is
    # not in it; the runner's layout puts it beside RUNNER_WORKSPACE. Never publish a container path.
    mounted_temp.mkdir()
    pr4011 = {"RUNNER_TEMP": str(mounted_temp), "HOME": str(home), "RUNNER_WORKSPACE": "/home/runner/work/app"}
    written, shown = entrypoint.choose_report_path(pr4011)
    assert shown == "/home/runner/work/_temp/_github_home/notiflows-deploy/" + Path(written).name
    (mounted_temp / "_github_home").mkdir()  # HOME may also be rewritten under that mount
    written, shown = entrypoint.choose_report_path({**pr4011, "HOME": str(mounted_temp / "_github_home")})
    assert shown == "/home/runner/work/_temp/_github_home/notiflows-deploy/" + Path(written).name
    written, shown = entrypoint.choose_report_path({**pr4011, "HOME": str(tmp_path / "elsewhere")})
    assert Path(written).parent == mounted_temp / "notiflows-deploy"
    assert shown == "/home/runner/work/_temp/notiflows-deploy/" + Path(written).name
    # Nothing says where the host keeps it: the container path, which the entrypoint warns about.
    written, shown = entrypoint.choose_report_path({"RUNNER_TEMP": str(mounted_temp), "HOME": str(home)})
    assert written == shown
    # nothing usable: a private temp dir
    written, shown = entrypoint.choose_report_path({"HOME": str(tmp_path)})
    assert written == shown and written.endswith(".json") and not written.startswith(str(tmp_path))


def test_each_step_gets_its_own_report(tmp_path: Path, fake_cli: FakeCli) -> None:
    """Two action steps of one job (same RUNNER_TEMP, even the same step id) never share a report."""
    env = runner_env(tmp_path, tmp_path, "push", {}, mode="validate")
    env["GITHUB_ACTION"] = "__self"
    run_entrypoint(env, tmp_path)
    first = parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text())["report-path"]
    Path(env["GITHUB_OUTPUT"]).write_text("")
    fake_cli.result = RunResult(mode="validate", notiflows=[NotiflowOutcome("b", Status.INVALID, "n/b")])
    run_entrypoint(env, tmp_path)
    second = parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text())["report-path"]
    assert first != second and Path(first).is_file() and Path(second).is_file()
    assert json.loads(Path(first).read_text())["result"] == "success"
    assert json.loads(Path(second).read_text())["result"] == "invalid"


def test_a_step_that_stops_early_never_republishes_an_earlier_report(tmp_path: Path, fake_cli: FakeCli) -> None:
    env = runner_env(tmp_path, tmp_path, "push", {}, mode="validate")
    assert run_entrypoint(env, tmp_path)[0] == 0
    assert parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text())["result"] == "success"
    # The next step stops before writing its report (a usage error, a crash in argv handling).
    Path(env["GITHUB_OUTPUT"]).write_text("")
    fake_cli.writes_report = False
    fake_cli.raise_exc = SystemExit(1)
    assert run_entrypoint(env, tmp_path)[0] == 1
    assert parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text()) == ERROR_OUTPUTS


ERROR_OUTPUTS = {"result": "error", "changed": "[]", "deployed": "[]", "conflicts": "[]", "invalid": "[]",
                 "drifted": "[]", "report-path": ""}


@pytest.mark.parametrize("inputs", [
    {"mode": "apply"}, {"mode": "plan"}, {"mode": "validate", "concurrency": "٣"},
    {"mode": "validate", "working_directory": "no-such-dir"},
])
def test_input_errors_still_write_the_error_outputs(tmp_path: Path, fake_cli: FakeCli, inputs: dict[str, str]) -> None:
    env = runner_env(tmp_path, tmp_path, "push", {}, **inputs)
    code, out, _ = run_entrypoint(env, tmp_path)
    assert code == 1 and fake_cli.calls == []
    assert len([ln for ln in out.splitlines() if ln.startswith("::error")]) == 1
    assert parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text()) == ERROR_OUTPUTS


def test_missing_working_directory_names_the_input_and_no_file(tmp_path: Path, fake_cli: FakeCli) -> None:
    env = runner_env(tmp_path, tmp_path, "push", {}, mode="validate", working_directory="apps/missing")
    code, out, _ = run_entrypoint(env, tmp_path)
    (error,) = [ln for ln in out.splitlines() if ln.startswith("::error")]
    assert code == 1
    assert error.startswith("::error title=notiflows-deploy::Input `working-directory` is 'apps/missing', but ")
    assert "does not exist" in error and "file=" not in error


def test_fork_pull_request_without_a_token_validates_with_a_notice(tmp_path: Path, fake_cli: FakeCli) -> None:
    event = {"number": 4, "pull_request": {"number": 4, "head": {"repo": {"full_name": "mallory/app"}},
                                           "base": {"repo": {"full_name": "octo/app"}}}}
    env = runner_env(tmp_path, tmp_path, "pull_request", event, mode="plan")
    code, out, _ = run_entrypoint(env, tmp_path)
    assert code == 0 and fake_cli.calls[0][0] == "validate"
    # A notice, not a warning: the 10 warnings GitHub keeps stay for the notiflows' own problems.
    assert not [ln for ln in out.splitlines() if ln.startswith("::warning")]
    (notice,) = [ln for ln in out.splitlines() if ln.startswith("::notice")]
    assert "No Notiflows token" in notice and "fork (mallory/app)" in notice
    assert "no secrets" in notice


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files by another uid")
def test_report_directory_is_given_to_the_owner_of_the_runner_temp(tmp_path: Path, fake_cli: FakeCli) -> None:
    """Root writes the report; a self-hosted runner (its own uid) must still be able to delete it."""
    env = runner_env(tmp_path, tmp_path, "push", {}, mode="validate")
    os.lchown(env["RUNNER_TEMP"], 4242, 4343)
    stale = Path(env["RUNNER_TEMP"]) / "notiflows-deploy" / "other-owner.json"
    stale.parent.mkdir()
    stale.write_text("{}")
    os.lchown(stale, 5000, 5000)
    code, _, _ = run_entrypoint(env, tmp_path)
    assert code == 0
    report = Path(parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text())["report-path"])
    for path in (report.parent, report):
        assert (os.lstat(path).st_uid, os.lstat(path).st_gid) == (4242, 4343), path
    assert os.lstat(stale).st_uid == 5000  # not root's: left alone
    # A temp space root owns itself, and no report at all, change nothing.
    assert entrypoint.restore_report_ownership(None) == (0, 0)
    own = tmp_path / "root-temp" / "notiflows-deploy"
    own.mkdir(parents=True)
    (own / "r.json").write_text("{}")
    assert entrypoint.restore_report_ownership(str(own / "r.json")) == (0, 0)


def _owned_by_other_uid(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), 4242, 4242)
    os.lchown(path, 4242, 4242)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own the workspace by another uid")
def test_safe_directory_is_process_scoped(tmp_path: Path) -> None:
    repo = tmp_path / "ws"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    _owned_by_other_uid(repo)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    clean.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    refused = subprocess.run(["git", "-C", str(repo), "status"], env=clean, capture_output=True, text=True)
    assert "dubious ownership" in refused.stderr
    env = dict(clean)
    entrypoint.mark_safe([str(repo)], env)
    ok = subprocess.run(["git", "-C", str(repo), "status"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert env["GIT_CONFIG_COUNT"] == "1"
    assert not (tmp_path / ".gitconfig").exists()


def test_marking_appends_to_existing_git_config_env(tmp_path: Path) -> None:
    env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.x", "GIT_CONFIG_VALUE_0": "y"}
    (tmp_path / "ws").mkdir()
    entrypoint.mark_safe([str(tmp_path / "ws")], env)
    assert env["GIT_CONFIG_COUNT"] == "2"
    assert env["GIT_CONFIG_KEY_1"] == "safe.directory" and env["GIT_CONFIG_VALUE_1"] == str((tmp_path / "ws").resolve())


def test_git_toplevel_walks_up(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "sub" / "dir").mkdir(parents=True)
    assert entrypoint.git_toplevel(str(tmp_path / "repo" / "sub" / "dir")) == str((tmp_path / "repo").resolve())


# ---------------------------------------------------------------------------------------------
# Part 2: full runs with the real CLI against the emulator (the lead finishes these)

needs_cli = pytest.mark.skipif(
    not (importable("notiflows_deploy.cli") and importable("notiflows_deploy.app")),
    reason="the CLI (notiflows_deploy.cli / app) is not written yet",
)


@pytest.fixture
def emulator() -> Iterator[Any]:
    from emulator_support import running_emulator

    with running_emulator() as emu:
        yield emu


def _repo(tmp_path: Path) -> Any:
    from gitutil import TestRepo

    repo = TestRepo(tmp_path / "workspace")
    repo.config({"notiflowsDir": ".notiflows", "project": "demo"})
    repo.add_notiflow("welcome-series")
    repo.commit("initial")
    return repo


def _outputs(env: dict[str, str]) -> dict[str, str]:
    return parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text(encoding="utf-8"))


@needs_cli
def test_full_pull_request_plan(tmp_path: Path, emulator: Any) -> None:
    repo = _repo(tmp_path)
    base = repo.sha()
    repo.git("checkout", "-q", "-b", "feature")
    repo.add_notiflow("password-reset")
    head = repo.commit("add password reset")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "feature", "-m", "Merge into refs/pull/5/merge")
    merge = repo.sha()
    event = {"number": 5, "pull_request": {"number": 5, "base": {"sha": base, "ref": "main"},
                                           "head": {"sha": head, "ref": "feature"}}}
    env = runner_env(tmp_path, repo.path, "pull_request", event, mode="plan", token=emulator.token,
                     project="demo", api_url=emulator.base_url)
    env.update(GITHUB_SHA=merge, GITHUB_REF="refs/pull/5/merge", GITHUB_BASE_REF="main", GITHUB_HEAD_REF="feature")
    code, out, _ = run_entrypoint(env, repo.path)
    outputs = _outputs(env)
    assert code == 0, out
    assert json.loads(outputs["changed"]) == ["password-reset"]
    assert outputs["result"] == "success"
    assert Path(outputs["report-path"]).is_file()
    assert "password-reset" in Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    # the token appears once, in its own ::add-mask:: line, and nowhere else
    assert [ln for ln in out.splitlines() if emulator.token in ln] == [f"::add-mask::{emulator.token}"]


@needs_cli
def test_full_push_deploy_then_no_changes_then_drift(tmp_path: Path, emulator: Any) -> None:
    repo = _repo(tmp_path)
    before = repo.sha()
    repo.add_notiflow("order-shipped")
    after = repo.commit("add order shipped")
    event = {"ref": "refs/heads/main", "before": before, "after": after, "created": False, "deleted": False,
             "forced": False, "repository": {"default_branch": "main"}}
    env = runner_env(tmp_path, repo.path, "push", event, mode="deploy", token=emulator.token, project="demo",
                     api_url=emulator.base_url)
    env.update(GITHUB_SHA=after, GITHUB_REF="refs/heads/main")
    code, out, _ = run_entrypoint(env, repo.path)
    assert code == 0, out
    assert json.loads(_outputs(env)["deployed"]) == ["order-shipped"]

    Path(env["GITHUB_OUTPUT"]).write_text("")
    code, out, _ = run_entrypoint(env, repo.path)
    assert code == 0, out
    assert _outputs(env)["result"] == "no-changes"

    # nightly drift: welcome-series was never deployed -> repo-only -> exit 2 unless fail-on-drift false
    drift_env = runner_env(tmp_path, repo.path, "schedule", {"schedule": "17 5 * * *"}, mode="drift",
                           token=emulator.token, project="demo", api_url=emulator.base_url)
    drift_env.update(GITHUB_SHA=after, GITHUB_REF="refs/heads/main")
    Path(drift_env["GITHUB_OUTPUT"]).write_text("")
    code, out, _ = run_entrypoint(drift_env, repo.path)
    assert code == 2, out
    assert "welcome-series" in json.loads(_outputs(drift_env)["drifted"])
    drift_env["INPUT_FAIL-ON-DRIFT"] = "false"
    Path(drift_env["GITHUB_OUTPUT"]).write_text("")
    code, _, _ = run_entrypoint(drift_env, repo.path)
    assert code == 0 and _outputs(drift_env)["result"] == "drift"


@needs_cli
def test_full_push_creating_a_branch(tmp_path: Path, emulator: Any) -> None:
    repo = _repo(tmp_path)
    repo.git("checkout", "-q", "-b", "release")
    repo.add_notiflow("digest")
    after = repo.commit("digest")
    event = {"ref": "refs/heads/release", "before": "0" * 40, "after": after, "created": True, "deleted": False,
             "forced": False, "base_ref": None, "repository": {"default_branch": "main"}}
    env = runner_env(tmp_path, repo.path, "push", event, mode="plan", token=emulator.token, project="demo",
                     api_url=emulator.base_url)
    env.update(GITHUB_SHA=after, GITHUB_REF="refs/heads/release")
    code, out, _ = run_entrypoint(env, repo.path)
    assert code == 0, out
    assert "digest" in json.loads(_outputs(env)["changed"])
    assert "bad object" not in out


@needs_cli
def test_full_workflow_dispatch_validate_and_plan(tmp_path: Path, emulator: Any) -> None:
    repo = _repo(tmp_path)
    event = {"inputs": {"dry": "true"}, "ref": "refs/heads/main", "workflow": ".github/workflows/x.yml",
             "repository": {"default_branch": "main"}}
    env = runner_env(tmp_path, repo.path, "workflow_dispatch", event, mode="validate")
    env.update(GITHUB_SHA=repo.sha(), GITHUB_REF="refs/heads/main")
    code, out, _ = run_entrypoint(env, repo.path)
    assert code == 0, out
    env.update({"INPUT_MODE": "plan", "INPUT_TOKEN": emulator.token, "INPUT_PROJECT": "demo",
                "INPUT_API-URL": emulator.base_url})
    Path(env["GITHUB_OUTPUT"]).write_text("")
    code, out, _ = run_entrypoint(env, repo.path)
    assert code == 0, out
    assert "welcome-series" in json.loads(_outputs(env)["changed"])


@needs_cli
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own the workspace by another uid")
def test_full_workspace_owned_by_another_uid(tmp_path: Path, emulator: Any) -> None:
    repo = _repo(tmp_path)
    sha = repo.sha()
    _owned_by_other_uid(repo.path)
    env = runner_env(tmp_path, repo.path, "schedule", {"schedule": "0 0 * * *"}, mode="plan",
                     token=emulator.token, project="demo", api_url=emulator.base_url)
    env.update(GITHUB_SHA=sha, GITHUB_REF="refs/heads/main", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    code, out, _ = run_entrypoint(env, repo.path)
    assert code == 0, out
    assert "dubious ownership" not in out
    assert not (Path(env["HOME"]) / ".gitconfig").exists()  # nothing written to the global config


def test_as_a_process_bad_input_prints_one_error(tmp_path: Path) -> None:
    """`python entrypoint.py` as the container runs it: exit 1, one ::error line, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_", "NOTIFLOWS_"))}
    env.update({"INPUT_MODE": "deploy", "INPUT_TOKEN": "", "INPUT_FAIL-ON-DRIFT": "maybe"})
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, str(ROOT / "entrypoint.py")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "::error title=notiflows-deploy::Input `token` is required for mode `deploy`: store your Notiflows account "
        "token (nf_at_…) as a repository secret, e.g. NOTIFLOWS_TOKEN, and pass "
        "`token: ${{ secrets.NOTIFLOWS_TOKEN }}`."
    ]
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# Root-owned files under .git: what git writes as root is given back to the checkout's owner


def _root_owned(path: Path) -> list[str]:
    found = []
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(base, name)
            if os.lstat(full).st_uid == 0:
                found.append(os.path.relpath(full, path))
    return sorted(found)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files by another uid")
def test_restore_git_ownership_walks_only_dot_git(tmp_path: Path) -> None:
    repo = tmp_path / "ws"
    (repo / ".git" / "objects" / "ab").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / "tracked.txt").write_text("x")
    _owned_by_other_uid(repo)
    # What a fetch run as root leaves behind:
    (repo / ".git" / "FETCH_HEAD").write_text("x")
    (repo / ".git" / "objects" / "cd").mkdir()
    (repo / ".git" / "objects" / "cd" / "ef01").write_text("x")
    (repo / "root-file-outside-git").write_text("x")  # not ours to touch: outside .git
    assert entrypoint.restore_git_ownership(str(repo)) == (3, 0)
    assert _root_owned(repo) == ["root-file-outside-git"]
    assert os.lstat(repo / ".git" / "FETCH_HEAD").st_uid == 4242
    assert os.lstat(repo / ".git" / "FETCH_HEAD").st_gid == 4242
    # A checkout that root owns itself is left alone, and so is a non-repository.
    root_repo = tmp_path / "root-ws"
    (root_repo / ".git").mkdir(parents=True)
    (root_repo / ".git" / "FETCH_HEAD").write_text("x")
    assert entrypoint.restore_git_ownership(str(root_repo)) == (0, 0)
    assert entrypoint.restore_git_ownership(None) == (0, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files by another uid")
def test_gitdir_file_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "modules" / "app"
    real.mkdir(parents=True)
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / ".git").write_text(f"gitdir: {real}\n")
    _owned_by_other_uid(real)
    (real / "FETCH_HEAD").write_text("x")
    assert entrypoint.git_dir(str(tmp_path / "ws")) == str(real)
    assert entrypoint.restore_git_ownership(str(tmp_path / "ws")) == (1, 0)


@needs_cli
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own the workspace by another uid")
def test_shallow_clone_deepened_as_root_leaves_nothing_root_owned(tmp_path: Path, emulator: Any) -> None:
    """actions/checkout's default depth-1 clone, owned by the runner user; the plan deepens it as root."""
    from gitutil import TestRepo, git_env

    upstream = TestRepo(tmp_path / "upstream")
    upstream.config({"notiflowsDir": ".notiflows", "project": "demo"})
    upstream.add_notiflow("alpha")
    before = upstream.commit("alpha")
    upstream.add_notiflow("beta")
    after = upstream.commit("beta")
    workspace = tmp_path / "workspace"
    subprocess.run(["git", "clone", "-q", "--depth=1", "--no-local", f"file://{upstream.path}", str(workspace)],
                   check=True, env=git_env(), capture_output=True)
    _owned_by_other_uid(workspace)
    event = {"ref": "refs/heads/main", "before": before, "after": after, "created": False, "deleted": False,
             "forced": False, "repository": {"default_branch": "main"}}
    env = runner_env(tmp_path, workspace, "push", event, mode="plan", token=emulator.token, project="demo",
                     api_url=emulator.base_url)
    env.update(GITHUB_SHA=after, GITHUB_REF="refs/heads/main", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    code, out, _ = run_entrypoint(env, workspace)
    assert code == 0, out
    assert json.loads(_outputs(env)["changed"]) == ["beta"]  # the range needed the deepened history
    assert (workspace / ".git" / "FETCH_HEAD").exists()  # the run did fetch, as root
    assert _root_owned(workspace) == []
    status = subprocess.run(["git", "-C", str(workspace), "-c", f"safe.directory={workspace}", "status", "--porcelain"],
                            env=git_env(), capture_output=True, text=True, check=True)
    assert status.stdout == ""


@needs_cli
def test_working_directory_starting_with_a_dash(tmp_path: Path) -> None:
    from gitutil import TestRepo

    repo = TestRepo(tmp_path / "workspace", project="-x")
    repo.config({"notiflowsDir": ".notiflows", "project": "demo"})
    repo.add_notiflow("welcome-series")
    repo.commit("initial")
    env = runner_env(tmp_path, repo.path, "push", {}, mode="validate", working_directory="-x")
    env.update(GITHUB_SHA=repo.sha(), GITHUB_REF="refs/heads/main")
    code, out, err = run_entrypoint(env, repo.path)
    assert code == 0, out + err
    assert _outputs(env)["result"] in ("success", "no-changes")
    assert "usage:" not in err


@needs_cli
def test_cli_usage_error_inside_the_action_is_one_error_and_error_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever argv problem remains (here: the CLI refuses an option) is one ::error, exit 1, error outputs."""
    from notiflows_deploy.github import inputs as inputs_module

    real = inputs_module.to_argv
    monkeypatch.setattr(entrypoint, "to_argv", lambda *a, **k: [*real(*a, **k), "--no-such-option"])
    env = runner_env(tmp_path, tmp_path, "push", {}, mode="validate")
    code, out, err = run_entrypoint(env, tmp_path)
    assert code == 1 and err == ""
    errors = [ln for ln in out.splitlines() if ln.startswith("::error")]
    assert len(errors) == 1 and "unrecognized arguments: --no-such-option" in errors[0]
    assert _outputs(env) == ERROR_OUTPUTS
