from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

from notiflows_deploy.github.inputs import (
    DEFAULT_API_URL,
    DEFAULTS,
    INPUT_NAMES,
    ActionInputs,
    InputError,
    child_env,
    env_name,
    read_inputs,
    to_argv,
)

ACTION_YML = Path(__file__).resolve().parent.parent / "action.yml"


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers which names were read."""

    def __init__(self, data: dict[str, str]) -> None:
        self.data = data
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self.data[key]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.read.add(key)
        return self.data.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def _declared() -> dict[str, dict[str, object]]:
    data = yaml.safe_load(ACTION_YML.read_text())
    return dict(data["inputs"])


def runner_env(**with_: str) -> dict[str, str]:
    """INPUT_* as the runner builds them: every declared input, defaults filled in, hyphens kept."""
    env: dict[str, str] = {}
    for name, spec in _declared().items():
        default = str(spec.get("default", ""))
        if default == "${{ github.token }}":
            default = "ghs_runnertoken123"
        env[f"INPUT_{name.replace(' ', '_').upper()}"] = default
    for key, value in with_.items():
        env[f"INPUT_{key.replace('_', '-').upper()}"] = value
    return env


def test_declared_inputs_match_what_is_read() -> None:
    declared = _declared()
    recording = RecordingEnv(runner_env(token="nf_at_x"))
    read_inputs(recording)
    read_names = {k for k in recording.read if k.startswith("INPUT_")}
    assert read_names == {env_name(n) for n in declared}
    assert set(INPUT_NAMES) == set(declared)


def test_defaults_match_action_yml() -> None:
    for name, spec in _declared().items():
        default = str(spec.get("default", ""))
        if name == "github-token":
            assert default == "${{ github.token }}"
            continue
        assert DEFAULTS[name] == default, name


def test_hyphenated_names_are_read() -> None:
    env = runner_env(token="nf_at_abc")
    env["INPUT_API-URL"] = "http://127.0.0.1:9999/management/v1"
    env["INPUT_FAIL-ON-DRIFT"] = "false"
    env["INPUT_WORKING-DIRECTORY"] = "  sub/dir  "
    env["INPUT_COMMENT-ON-PR"] = "TRUE"
    env["INPUT_API_URL"] = "http://wrong.invalid"  # the underscore spelling is not what the runner sets
    inputs = read_inputs(env)
    assert inputs.api_url == "http://127.0.0.1:9999/management/v1"
    assert inputs.fail_on_drift is False and inputs.comment_on_pr is True
    assert inputs.working_directory == "sub/dir"
    assert inputs.github_token == "ghs_runnertoken123"


@pytest.mark.parametrize("spelling,expected", [("true", True), ("True", True), ("TRUE", True),
                                               ("false", False), ("False", False), ("FALSE", False),
                                               (" true\n", True), ("", False)])
def test_boolean_spellings(spelling: str, expected: bool) -> None:
    assert read_inputs(runner_env(token="t" * 8, publish=spelling)).publish is expected


@pytest.mark.parametrize("spelling", ["yes", "1", "on", "tRue", "no", "0"])
def test_bad_boolean_names_the_input(spelling: str) -> None:
    with pytest.raises(InputError, match=r"Input `fail-on-drift` must be true or false"):
        read_inputs(runner_env(token="t" * 8, fail_on_drift=spelling))


@pytest.mark.parametrize("value,ok", [("1", True), ("32", True), ("0", False), ("33", False), ("four", False),
                                      ("4.0", False), ("-1", False)])
def test_concurrency_range(value: str, ok: bool) -> None:
    env = runner_env(token="t" * 8, concurrency=value)
    if ok:
        assert read_inputs(env).concurrency == int(value)
    else:
        with pytest.raises(InputError, match="Input `concurrency`"):
            read_inputs(env)


def test_mode_checked() -> None:
    with pytest.raises(InputError, match="Input `mode` must be one of validate, plan, deploy, drift"):
        read_inputs(runner_env(token="t" * 8, mode="apply"))


@pytest.mark.parametrize("mode", ["plan", "deploy", "drift"])
def test_token_required_except_validate(mode: str) -> None:
    with pytest.raises(InputError) as info:
        read_inputs(runner_env(mode=mode))
    assert "Input `token` is required" in str(info.value) and "secrets.NOTIFLOWS_TOKEN" in str(info.value)
    assert read_inputs(runner_env(mode="validate")).token == ""
    env = runner_env(mode=mode)
    env["NOTIFLOWS_TOKEN"] = "nf_at_fromenv"
    assert read_inputs(env).token == "nf_at_fromenv"


def test_missing_variables_use_defaults() -> None:
    inputs = read_inputs({"INPUT_TOKEN": "nf_at_abc"})
    assert inputs.mode == "plan" and inputs.api_url == DEFAULT_API_URL and inputs.concurrency == 4
    assert inputs.fail_on_drift is True and inputs.publish is False and inputs.working_directory == "."


def test_argv_never_carries_tokens() -> None:
    env = runner_env(token="nf_at_secret123", mode="deploy", project="my-app", base_ref="abc123", publish="true",
                     force="true", concurrency="8", fail_on_drift="false", comment_on_pr="true")
    env["INPUT_API-URL"] = "http://127.0.0.1:1/management/v1"
    inputs = read_inputs(env)
    argv = to_argv(inputs, report_path="/tmp/r.json")
    assert argv == [
        "deploy", "--repo=.", "--format=github", "--project=my-app",
        "--api-url=http://127.0.0.1:1/management/v1", "--base=abc123", "--publish", "--force",
        "--concurrency=8", "--fail-on-drift=false", "--comment-on-pr", "--report-json=/tmp/r.json",
    ]
    assert not any("nf_at_secret123" in a or "ghs_" in a for a in argv)
    assert child_env(inputs) == {"NOTIFLOWS_TOKEN": "nf_at_secret123", "GITHUB_TOKEN": "ghs_runnertoken123"}
    assert "nf_at_secret123" not in repr(inputs)


def test_minimal_argv() -> None:
    argv = to_argv(read_inputs(runner_env(mode="validate")))
    assert argv == ["validate", "--repo=.", "--format=github", "--concurrency=4", "--fail-on-drift=true"]


def test_inputs_frozen() -> None:
    inputs = read_inputs(runner_env(mode="validate"))
    assert isinstance(inputs, ActionInputs)
    with pytest.raises(AttributeError):
        inputs.mode = "deploy"  # type: ignore[misc]


@pytest.mark.parametrize("value", ["٣", "+8", "1_0", "８", "0x8", "²"])
def test_concurrency_accepts_ascii_digits_only(value: str) -> None:
    with pytest.raises(InputError, match="Input `concurrency` must be a whole number"):
        read_inputs(runner_env(token="t" * 8, concurrency=value))


def test_concurrency_is_trimmed() -> None:
    assert read_inputs(runner_env(token="t" * 8, concurrency=" 8 ")).concurrency == 8


def test_values_starting_with_a_dash_stay_values() -> None:
    """`--opt=VALUE`: argparse would take `--repo -x` for two options and fail with a bare usage."""
    from notiflows_deploy.cli import build_parser

    env = runner_env(token="t" * 8, mode="plan", working_directory="-x", project="-p", base_ref="--all")
    args = build_parser().parse_args(to_argv(read_inputs(env), report_path="-r.json"))
    assert (str(args.repo), args.project, args.base, str(args.report_json)) == ("-x", "-p", "--all", "-r.json")
    assert args.all is False


# --- pull requests that never get secrets: plan without a token -> validate with a warning ----------


def _pr_env(tmp_path: Path, pull_request: dict[str, object], event_name: str = "pull_request",
            actor: str = "octocat", **with_: str) -> dict[str, str]:
    import json

    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": 3, "pull_request": pull_request}))
    env = runner_env(mode="plan", **with_)
    env.update(GITHUB_EVENT_NAME=event_name, GITHUB_EVENT_PATH=str(event), GITHUB_ACTOR=actor)
    return env


def _sides(head: object, base: str = "octo/app") -> dict[str, object]:
    return {"number": 3, "head": {"sha": "a" * 40, "repo": head},
            "base": {"sha": "b" * 40, "repo": {"full_name": base}}}


def test_fork_pull_request_without_token_validates_only(tmp_path: Path) -> None:
    inputs = read_inputs(_pr_env(tmp_path, _sides({"full_name": "mallory/app"})))
    assert inputs.mode == "validate"
    assert "fork (mallory/app)" in inputs.validate_only_reason
    assert "no secrets" in inputs.validate_only_reason and "pull_request_target" in inputs.validate_only_reason
    assert to_argv(inputs)[0] == "validate"


def test_deleted_fork_and_dependabot_validate_only(tmp_path: Path) -> None:
    assert read_inputs(_pr_env(tmp_path, _sides(None))).mode == "validate"  # head.repo is null
    bot = read_inputs(_pr_env(tmp_path, _sides({"full_name": "octo/app"}), actor="dependabot[bot]"))
    assert bot.mode == "validate" and "Dependabot secrets" in bot.validate_only_reason


@pytest.mark.parametrize("case", ["same-repo", "pull_request_target", "no-repo-info", "deploy", "with-token"])
def test_empty_token_stays_an_error_elsewhere(tmp_path: Path, case: str) -> None:
    pr = _sides({"full_name": "octo/app"}) if case == "same-repo" else _sides({"full_name": "mallory/app"})
    if case == "no-repo-info":
        pr = {"number": 3, "head": {"sha": "a" * 40}, "base": {"sha": "b" * 40}}
    env = _pr_env(tmp_path, pr, event_name="pull_request_target" if case == "pull_request_target" else "pull_request")
    if case == "deploy":
        env["INPUT_MODE"] = "deploy"
    if case == "with-token":
        env["INPUT_TOKEN"] = "nf_at_forksecret"
        inputs = read_inputs(env)
        assert inputs.mode == "plan" and inputs.validate_only_reason == ""
        return
    with pytest.raises(InputError, match="Input `token` is required"):
        read_inputs(env)
