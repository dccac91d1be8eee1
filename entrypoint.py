#!/usr/bin/env python3
"""Docker action entrypoint: action inputs -> `notiflows_deploy.cli.main(argv)` -> exit code.

Order matters: secrets are masked before anything else prints; the workspace is marked as a safe
git directory for this process only (the checkout belongs to another uid than the container's
root); the report goes to the runner's temp space, never into the workspace; the step outputs are
written from the report after the run, with the report path as later steps see it.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from notiflows_deploy.github import masking
from notiflows_deploy.github.inputs import InputError, child_env, get_input, read_inputs, to_argv
from notiflows_deploy.report.annotations import TITLE, annotation, stop_commands
from notiflows_deploy.report.outputs import outputs_from_report, write_outputs

REPORT_DIR = "notiflows-deploy"
REPORT_NAME = "report.json"
CONTAINER_HOME = "/github/home"  # the runner mounts <RUNNER_TEMP>/_github_home here


def _writable_dir(path: str) -> bool:
    return bool(path) and os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def choose_report_path(env: MutableMapping[str, str]) -> tuple[str, str]:
    """(where to write the report, the path to publish as `report-path`).

    1. `$RUNNER_TEMP` when it exists and is writable here (runners that mount it).
    2. `$HOME` when it is the runner's `/github/home` mount; later steps on the host see it as
       `$RUNNER_TEMP/_github_home/...`.
    3. A fresh temporary directory (local runs).
    """
    runner_temp = env.get("RUNNER_TEMP", "")
    if _writable_dir(runner_temp):
        path = os.path.join(runner_temp, REPORT_DIR, REPORT_NAME)
        return path, path
    home = env.get("HOME", "")
    if home.rstrip("/") == CONTAINER_HOME and _writable_dir(home):
        path = os.path.join(home, REPORT_DIR, REPORT_NAME)
        shown = os.path.join(runner_temp, "_github_home", REPORT_DIR, REPORT_NAME) if runner_temp else path
        return path, shown
    path = os.path.join(tempfile.mkdtemp(prefix="notiflows-deploy-"), REPORT_NAME)
    return path, path


def _add_safe_directory_env(env: MutableMapping[str, str], path: str) -> None:
    """Process-scoped `safe.directory` (command scope, honoured by git >= 2.39); no global config."""
    count = int(env.get("GIT_CONFIG_COUNT", "0") or "0")
    env[f"GIT_CONFIG_KEY_{count}"] = "safe.directory"
    env[f"GIT_CONFIG_VALUE_{count}"] = path
    env["GIT_CONFIG_COUNT"] = str(count + 1)


def mark_safe(paths: list[str], env: MutableMapping[str, str]) -> None:
    """Trust `paths` for git run by this process only (never `git config --global`)."""
    marker: Callable[..., Any] | None
    try:
        marker = importlib.import_module("notiflows_deploy.gitrepo").mark_safe_directory
    except (ImportError, AttributeError):  # the git helper not available: same mechanism, inline
        marker = None
    for path in dict.fromkeys(p for p in paths if p):
        if marker is not None:
            marker(path, env)
        else:
            _add_safe_directory_env(env, os.path.realpath(path))


def git_toplevel(start: str) -> str | None:
    """The nearest directory at or above `start` holding `.git` (a checkout may use `path:`)."""
    current = os.path.realpath(start)
    while True:
        if os.path.exists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _say(kind: str, message: str) -> None:
    print(annotation(kind, message, title=TITLE), flush=True)


def _load_report(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main(env: MutableMapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    # 1. Mask first: nothing may print before the secrets are registered.
    masking.mask(get_input("token", env))
    masking.mask(get_input("github-token", env))
    try:
        inputs = read_inputs(env)
    except InputError as exc:
        _say("error", str(exc))
        return 1
    masking.mask(inputs.token)

    # 2. The checkout belongs to the host's runner user; we are root in the container.
    workspace = env.get("GITHUB_WORKSPACE") or os.getcwd()
    repo_dir = os.path.realpath(os.path.join(workspace, inputs.working_directory))
    mark_safe([p for p in (workspace, git_toplevel(repo_dir)) if p], env)
    # Read-only git: without this, `git status` refreshes .git/index and rewrites it as root.
    env.setdefault("GIT_OPTIONAL_LOCKS", "0")

    # 3. Report under the runner's temp space (never the workspace: files there would be root-owned).
    report_path, shown_path = choose_report_path(env)
    try:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _say("error", f"cannot create the report directory {Path(report_path).parent}: {exc.strerror}")
        return 1
    env.update(child_env(inputs))
    # The path later steps see (differs from `report_path` when HOME is the /github/home mount);
    # the CLI may show it in the summary.
    env["NOTIFLOWS_DEPLOY_REPORT_PATH_SHOWN"] = shown_path
    argv = to_argv(inputs, report_path=report_path)

    try:
        cli = importlib.import_module("notiflows_deploy.cli")
        code = int(cli.main(argv) if env is os.environ else cli.main(argv, dict(env)))
    except SystemExit as exc:  # argparse and friends
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:
        _say("error", f"unexpected error: {type(exc).__name__}: {exc}")
        print("\n".join(stop_commands(traceback.format_exc())), file=sys.stderr, flush=True)
        code = 1

    # 4. Outputs from the report as written; a run that stopped before it gets result=error.
    report = _load_report(report_path)
    try:
        skipped = write_outputs(outputs_from_report(report, shown_path if report else None))
    except OSError as exc:
        _say("warning", f"could not write the step outputs: {exc.strerror or exc}")
        skipped = []
    for name in skipped:
        _say("warning", f"output {name} was not set because it would contain a masked secret")
    return code


if __name__ == "__main__":
    sys.exit(main())
