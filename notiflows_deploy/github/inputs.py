"""Action inputs, read exactly as the runner passes them, and their mapping to the CLI.

The runner sets ``INPUT_<NAME>`` for every declared input, upper-cased with spaces turned into
``_`` and **hyphens kept** (``INPUT_API-URL``, ``INPUT_FAIL-ON-DRIFT``). Values are trimmed. An
empty value means "use the default", so ``api-url: ${{ vars.X }}`` with X unset still works.
Booleans accept only the toolkit's spellings ``true|True|TRUE|false|False|FALSE``.

The Notiflows token never goes into argv (process lists show argv): it travels as
``NOTIFLOWS_TOKEN``; the GitHub token as ``GITHUB_TOKEN`` for the PR comment code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from notiflows_deploy.errors import UsageError

DEFAULT_API_URL = "https://api.notiflows.com/management/v1"
MODES = ("validate", "plan", "deploy", "drift")
CONCURRENCY_RANGE = (1, 32)

# name -> default, as declared in action.yml (tests compare the two).
DEFAULTS: dict[str, str] = {
    "mode": "plan",
    "token": "",
    "project": "",
    "api-url": DEFAULT_API_URL,
    "working-directory": ".",
    "base-ref": "",
    "publish": "false",
    "force": "false",
    "concurrency": "4",
    "fail-on-drift": "true",
    "github-token": "",  # action.yml: ${{ github.token }}
    "comment-on-pr": "false",
}
INPUT_NAMES = tuple(DEFAULTS)

_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")


class InputError(UsageError):
    """An action input is missing or malformed; the message names the input."""


def env_name(name: str) -> str:
    return "INPUT_" + name.replace(" ", "_").upper()


def get_input(name: str, env: Mapping[str, str] | None = None) -> str:
    """The trimmed raw value, or the declared default when unset or empty."""
    source = os.environ if env is None else env
    value = source.get(env_name(name), "").strip()
    return value or DEFAULTS.get(name, "")


def get_bool(name: str, env: Mapping[str, str] | None = None) -> bool:
    value = get_input(name, env)
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InputError(
        f"Input `{name}` must be true or false (true|True|TRUE|false|False|FALSE), got {value!r}."
    )


def get_int(name: str, env: Mapping[str, str] | None = None, *, low: int, high: int) -> int:
    value = get_input(name, env)
    try:
        number = int(value, 10)
    except ValueError:
        raise InputError(f"Input `{name}` must be a whole number from {low} to {high}, got {value!r}.") from None
    if not low <= number <= high:
        raise InputError(f"Input `{name}` must be from {low} to {high}, got {number}.")
    return number


@dataclass(frozen=True)
class ActionInputs:
    mode: str
    token: str
    project: str
    api_url: str
    working_directory: str
    base_ref: str
    publish: bool
    force: bool
    concurrency: int
    fail_on_drift: bool
    github_token: str
    comment_on_pr: bool

    def __repr__(self) -> str:  # never show the tokens, even in a traceback
        return f"ActionInputs(mode={self.mode!r}, project={self.project!r}, api_url={self.api_url!r}, ...)"


def read_inputs(env: Mapping[str, str] | None = None) -> ActionInputs:
    """Read and check every input; raises InputError naming the first bad one."""
    source = os.environ if env is None else env
    mode = get_input("mode", source)
    if mode not in MODES:
        raise InputError(f"Input `mode` must be one of {', '.join(MODES)}, got {mode!r}.")
    token = get_input("token", source)
    if not token:
        # Also accept the variable itself (set with `env:`), the way the CLI reads it.
        token = source.get("NOTIFLOWS_TOKEN", "").strip()
    if not token and mode != "validate":
        raise InputError(
            f"Input `token` is required for mode `{mode}`: store your Notiflows account token (nf_at_…) "
            "as a repository secret, e.g. NOTIFLOWS_TOKEN, and pass `token: ${{ secrets.NOTIFLOWS_TOKEN }}`."
        )
    working_directory = get_input("working-directory", source)
    if "\0" in working_directory:
        raise InputError("Input `working-directory` contains a NUL character.")
    api_url = get_input("api-url", source)
    if not api_url.startswith(("https://", "http://")):
        raise InputError(f"Input `api-url` must be an http(s) URL, got {api_url!r}.")
    return ActionInputs(
        mode=mode,
        token=token,
        project=get_input("project", source),
        api_url=api_url,
        working_directory=working_directory,
        base_ref=get_input("base-ref", source),
        publish=get_bool("publish", source),
        force=get_bool("force", source),
        concurrency=get_int("concurrency", source, low=CONCURRENCY_RANGE[0], high=CONCURRENCY_RANGE[1]),
        fail_on_drift=get_bool("fail-on-drift", source),
        github_token=get_input("github-token", source),
        comment_on_pr=get_bool("comment-on-pr", source),
    )


def to_argv(inputs: ActionInputs, *, report_path: str | None = None, summary_path: str | None = None) -> list[str]:
    """The CLI argv for `notiflows_deploy.cli.main` (no token: that goes through the environment)."""
    argv = [inputs.mode, "--repo", inputs.working_directory, "--format", "github"]
    if inputs.project:
        argv += ["--project", inputs.project]
    # Only a non-default URL becomes a flag, so a job-level NOTIFLOWS_BASE_URL still applies.
    if inputs.api_url != DEFAULT_API_URL:
        argv += ["--api-url", inputs.api_url]
    if inputs.base_ref:
        argv += ["--base", inputs.base_ref]
    if inputs.publish:
        argv.append("--publish")
    if inputs.force:
        argv.append("--force")
    argv += ["--concurrency", str(inputs.concurrency)]
    argv += ["--fail-on-drift", "true" if inputs.fail_on_drift else "false"]
    if inputs.comment_on_pr:
        argv.append("--comment-on-pr")
    if report_path:
        argv += ["--report-json", report_path]
    if summary_path:
        argv += ["--summary", summary_path]
    return argv


def child_env(inputs: ActionInputs) -> dict[str, str]:
    """Variables the CLI reads: the tokens travel here, never in argv."""
    env: dict[str, str] = {}
    if inputs.token:
        env["NOTIFLOWS_TOKEN"] = inputs.token
    if inputs.github_token:
        env["GITHUB_TOKEN"] = inputs.github_token
    return env
