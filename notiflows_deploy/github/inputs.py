"""Action inputs, read exactly as the runner passes them, and their mapping to the CLI.

The runner sets ``INPUT_<NAME>`` for every declared input, upper-cased with spaces turned into
``_`` and **hyphens kept** (``INPUT_API-URL``, ``INPUT_FAIL-ON-DRIFT``). Values are trimmed. An
empty value means "use the default", so ``api-url: ${{ vars.X }}`` with X unset still works.
Booleans accept only the toolkit's spellings ``true|True|TRUE|false|False|FALSE``.

The Notiflows token never goes into argv (process lists show argv): it travels as
``NOTIFLOWS_TOKEN``; the GitHub token as ``GITHUB_TOKEN`` for the PR comment code. Every valued
option is passed as ``--opt=VALUE``, so a value starting with ``-`` stays a value.

A plan on a pull request that can never see secrets (from a fork, or opened by Dependabot) with an
empty token is downgraded to `validate` with a notice instead of failing: see `no_secrets_reason`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    # ASCII digits only: int() also takes "+8", "1_0" and other scripts' digits ("٣").
    if not (value.isascii() and value.isdigit()):
        raise InputError(f"Input `{name}` must be a whole number from {low} to {high}, got {value!r}.")
    number = int(value, 10)
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
    # Why a plan was downgraded to validate (no secrets on this pull request); "" when it was not.
    validate_only_reason: str = ""

    def __repr__(self) -> str:  # never show the tokens, even in a traceback
        return f"ActionInputs(mode={self.mode!r}, project={self.project!r}, api_url={self.api_url!r}, ...)"


DEPENDABOT = "dependabot[bot]"


def _event(env: Mapping[str, str]) -> dict[str, Any]:
    path = env.get("GITHUB_EVENT_PATH", "")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _side_repo(pr: Mapping[str, Any], side: str) -> tuple[bool, str | None]:
    """(the payload names this side's repository, its full name); a deleted fork's `repo` is null."""
    part = pr.get(side)
    if not isinstance(part, dict) or "repo" not in part:
        return False, None
    repo = part["repo"]
    name = repo.get("full_name") if isinstance(repo, dict) else None
    return True, name if isinstance(name, str) and name else None


def _login(value: Any) -> str:
    login = value.get("login") if isinstance(value, dict) else None
    return login if isinstance(login, str) else ""


def no_secrets_reason(env: Mapping[str, str]) -> str:
    """Why this run cannot have received the Notiflows secret, or "" when it could have.

    GitHub passes no Actions secrets to `pull_request` runs from a fork, nor to those Dependabot
    opens (they get Dependabot secrets instead). `pull_request_target` does get secrets, so an
    empty token there stays a configuration error, as it does when the payload does not say.
    """
    if env.get("GITHUB_EVENT_NAME") != "pull_request":
        return ""
    pr = _event(env).get("pull_request")
    pr = pr if isinstance(pr, dict) else {}
    if DEPENDABOT in (env.get("GITHUB_ACTOR"), _login(pr.get("user"))):
        return (
            "this pull request was opened by Dependabot, and Dependabot runs get Dependabot secrets, not "
            "Actions secrets. To plan Dependabot pull requests too, add NOTIFLOWS_TOKEN under Settings → "
            "Secrets and variables → Dependabot"
        )
    head_known, head = _side_repo(pr, "head")
    _, base = _side_repo(pr, "base")
    if head_known and (head is None or (base is not None and head != base)):
        source = f" ({head})" if head else " (since deleted)"
        return (
            f"this pull request comes from a fork{source}, and GitHub passes no secrets to workflows run for "
            "forks. The full plan runs for pull requests from branches of this repository; do not switch to "
            "`pull_request_target` to get the secret, as that would run the fork's files with it"
        )
    return ""


def validate_only_message(reason: str) -> str:
    return (
        f"No Notiflows token: {reason}. Validating the notiflows locally only (JSON, schema, format rules); "
        "nothing was read from the server, so there is no plan."
    )


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
    downgrade = no_secrets_reason(source) if not token and mode == "plan" else ""
    if downgrade:
        mode = "validate"
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
        validate_only_reason=downgrade,
    )


def to_argv(inputs: ActionInputs, *, report_path: str | None = None, summary_path: str | None = None) -> list[str]:
    """The CLI argv for `notiflows_deploy.cli.main` (no token: that goes through the environment).

    `--opt=VALUE` throughout: with `--opt VALUE`, argparse takes a value such as `-x` for an option.
    """
    argv = [inputs.mode, f"--repo={inputs.working_directory}", "--format=github"]
    if inputs.project:
        argv.append(f"--project={inputs.project}")
    # Only a non-default URL becomes a flag, so a job-level NOTIFLOWS_BASE_URL still applies.
    if inputs.api_url != DEFAULT_API_URL:
        argv.append(f"--api-url={inputs.api_url}")
    if inputs.base_ref:
        argv.append(f"--base={inputs.base_ref}")
    if inputs.publish:
        argv.append("--publish")
    if inputs.force:
        argv.append("--force")
    argv.append(f"--concurrency={inputs.concurrency}")
    argv.append(f"--fail-on-drift={'true' if inputs.fail_on_drift else 'false'}")
    if inputs.comment_on_pr:
        argv.append("--comment-on-pr")
    if report_path:
        argv.append(f"--report-json={report_path}")
    if summary_path:
        argv.append(f"--summary={summary_path}")
    return argv


def child_env(inputs: ActionInputs) -> dict[str, str]:
    """Variables the CLI reads: the tokens travel here, never in argv."""
    env: dict[str, str] = {}
    if inputs.token:
        env["NOTIFLOWS_TOKEN"] = inputs.token
    if inputs.github_token:
        env["GITHUB_TOKEN"] = inputs.github_token
    return env
