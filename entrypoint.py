#!/usr/bin/env python3
"""Docker action entrypoint: action inputs -> `notiflows_deploy.cli.main(argv)` -> exit code.

Order matters: secrets are masked before anything else prints; the workspace is marked as a safe
git directory for this process only (the checkout belongs to another uid than the container's
root); the report goes to the runner's temp space, never into the workspace, under a name of its
own for this step; the step outputs are written from this run's report after the run (or, when the
run stopped before writing one, as `result=error` with empty arrays), with the report path as later
steps see it; what git wrote under `.git` as root is given back to the checkout's owner, and the
report's directory to the owner of the runner's temp space.

Every workflow command goes to stdout: the runner parses stdout and stderr with one command parser,
so a command on stderr could land while a `::stop-commands::` fence on stdout is open and be lost.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import tempfile
import traceback
import uuid
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any

from notiflows_deploy.github import masking
from notiflows_deploy.github.inputs import (
    ActionInputs,
    InputError,
    child_env,
    get_input,
    read_inputs,
    to_argv,
    validate_only_message,
)
from notiflows_deploy.report.annotations import LEDGER, say_lines, stop_commands
from notiflows_deploy.report.outputs import outputs_from_report, write_outputs

REPORT_DIR = "notiflows-deploy"
# The runner's mounts in a Docker action's container (ContainerActionHandler.cs) and where each
# lives on the host, relative to the host's RUNNER_TEMP. Module constants so tests can move them.
CONTAINER_ROOT = "/github"
CONTAINER_HOME = "/github/home"  # <RUNNER_TEMP>/_github_home, mounted for every container step
CONTAINER_RUNNER_TEMP = "/github/runner_temp"  # <RUNNER_TEMP> itself, behind a flag (runner PR #4011)


def _writable_dir(path: str) -> bool:
    return bool(path) and os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def _under(path: str, root: str) -> bool:
    path, root = os.path.normpath(path), os.path.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def host_temp(env: MutableMapping[str, str]) -> str | None:
    """The runner's temp directory as host steps see it, when this environment tells.

    * `RUNNER_TEMP` is a host path (not under /github): the runner did not mount it (the default
      so far); the value is the host's own.
    * `RUNNER_TEMP` is /github/runner_temp (runner PR #4011 mounts it and rewrites the variable):
      the host path is gone from the environment, but the runner's layout puts it beside the
      pipeline directory, `RUNNER_WORKSPACE` (a host path it never rewrites): both are children of
      the runner's work directory (`_work/_temp` and `_work/<repo>`).
    """
    temp = env.get("RUNNER_TEMP", "")
    if os.path.isabs(temp) and not _under(temp, CONTAINER_ROOT):
        return os.path.normpath(temp)
    workspace = env.get("RUNNER_WORKSPACE", "")
    if os.path.isabs(workspace) and not _under(workspace, CONTAINER_ROOT):
        return os.path.join(os.path.dirname(os.path.normpath(workspace)), "_temp")
    return None


def host_path(path: str, env: MutableMapping[str, str]) -> str:
    """`path` as later steps see it. Only the runner's temp mounts are translated; a path outside
    them (a local run, a self-hosted runner without containers) is the same everywhere. When the
    host side cannot be told, the container path is returned (the caller warns)."""
    temp = host_temp(env)
    for mount, on_host in ((CONTAINER_HOME, "_github_home"), (CONTAINER_RUNNER_TEMP, "")):
        if _under(path, mount):
            if temp is None:
                return path
            rest = os.path.relpath(os.path.normpath(path), mount)
            return os.path.normpath(os.path.join(temp, on_host, rest))
    return path


def report_name(env: MutableMapping[str, str]) -> str:
    """A name no other step of the job uses: the step's id (GITHUB_ACTION) plus a random part, so
    two steps (or a step and its re-run) never share, overwrite or republish a report."""
    step = re.sub(r"[^A-Za-z0-9_.-]+", "-", env.get("GITHUB_ACTION", "")).strip("-.") or "step"
    return f"report-{step[:60]}-{uuid.uuid4().hex[:12]}.json"


def choose_report_path(env: MutableMapping[str, str]) -> tuple[str, str]:
    """(where to write the report, the path to publish as `report-path`), fresh for this step.

    Cases (the published path must work for later host steps such as upload-artifact; a later
    container step given it as an input gets it rewritten to its own mount by the runner):

    1. Container, `HOME` is the /github/home mount (every Docker action): write there; publish
       `<host RUNNER_TEMP>/_github_home/...` (see `host_temp` for both RUNNER_TEMP variants).
    2. Container with /github/runner_temp mounted but HOME elsewhere: write under it; publish
       `<host RUNNER_TEMP>/...`.
    3. Not in a container (local runs, tests): `RUNNER_TEMP` when writable, the same path for all.
    4. Nothing usable: a fresh temporary directory (local runs).
    """
    name = report_name(env)
    home = env.get("HOME", "")
    runner_temp = env.get("RUNNER_TEMP", "")
    for base in (home, runner_temp):
        mounted = _under(base, CONTAINER_HOME) or _under(base, CONTAINER_RUNNER_TEMP)
        if base and mounted and _writable_dir(base):
            path = os.path.join(base, REPORT_DIR, name)
            return path, host_path(path, env)
    if _writable_dir(runner_temp):
        path = os.path.join(runner_temp, REPORT_DIR, name)
        return path, path
    path = os.path.join(tempfile.mkdtemp(prefix="notiflows-deploy-"), name)
    return path, path


def mark_safe(paths: list[str], env: MutableMapping[str, str]) -> None:
    """Trust `paths` for git run by this process only (never `git config --global`)."""
    from notiflows_deploy.gitrepo import mark_safe_directory

    for path in dict.fromkeys(p for p in paths if p):
        mark_safe_directory(path, env)


def git_toplevel(start: str) -> str | None:
    """The nearest directory at or above `start` holding `.git` (a checkout may use `path:`)."""
    from notiflows_deploy.gitrepo import NotAGitRepository, find_toplevel

    try:
        return str(find_toplevel(Path(os.path.realpath(start))))
    except NotAGitRepository:
        return None


def git_dir(toplevel: str) -> str | None:
    """`<toplevel>/.git`, following a `gitdir:` file (worktrees, submodules)."""
    dot_git = os.path.join(toplevel, ".git")
    if os.path.isdir(dot_git):
        return dot_git
    try:
        first = Path(dot_git).read_text(encoding="utf-8").splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        return None
    if not first.startswith("gitdir:"):
        return None
    target = os.path.join(toplevel, first.partition(":")[2].strip())
    return target if os.path.isdir(target) else None


def _give_back(paths: Iterable[str], owner: os.stat_result) -> tuple[int, int]:
    """lchown each of `paths` that root owns to `owner`'s uid and gid: (changed, could not be)."""
    changed = failed = 0
    for path in paths:
        try:
            if os.lstat(path).st_uid != 0:
                continue
            os.lchown(path, owner.st_uid, owner.st_gid)
            changed += 1
        except OSError:
            failed += 1
    return changed, failed


def restore_git_ownership(toplevel: str | None) -> tuple[int, int]:
    """Give what root created under `.git` (e.g. FETCH_HEAD, objects of a shallow-clone deepen) to
    the owner of `.git`, so later host steps (uid 1001) can still write the repository.

    Only when running as root and `.git` belongs to another uid; only `.git` is walked (the run
    writes nothing else in the workspace). Returns (entries changed, entries that could not be).
    """
    if toplevel is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return 0, 0
    directory = git_dir(toplevel)
    if directory is None:
        return 0, 0
    owner = os.lstat(directory)
    if owner.st_uid == 0:
        return 0, 0
    walked = (os.path.join(base, name) for base, dirs, files in os.walk(directory) for name in (*dirs, *files))
    return _give_back(walked, owner)


def restore_report_ownership(report_path: str | None) -> tuple[int, int]:
    """Give the report's directory, and what root wrote in it, to the owner of the directory it is
    in (HOME=/github/home belongs to the runner user), so a self-hosted runner can clean its temp.

    Only when running as root and that owner is another uid; only the directory's own entries are
    touched (symlinks not followed). Returns (entries changed, entries that could not be).
    """
    if not report_path or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return 0, 0
    directory = os.path.dirname(report_path)
    try:
        owner = os.lstat(os.path.dirname(directory))
        names = os.listdir(directory)
    except OSError:
        return 0, 0
    if owner.st_uid == 0:
        return 0, 0
    return _give_back([directory, *(os.path.join(directory, name) for name in names)], owner)


def _say(kind: str, message: str) -> None:
    """One annotation of this step (counted with the CLI's: GitHub keeps 10 of each kind per step)."""
    print("\n".join(say_lines(kind, message, step=True)), flush=True)


def _load_report(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class StepReport:
    """This step's report: set once its path is chosen (and any file there removed).

    A plain class: tests load this file without registering it in sys.modules, which dataclasses need.
    """

    def __init__(self) -> None:
        self.path: str | None = None
        self.shown: str | None = None


def check_working_directory(inputs: ActionInputs, workspace: str) -> str:
    """The directory `working-directory` names, or an InputError naming the input."""
    repo_dir = os.path.realpath(os.path.join(workspace, inputs.working_directory))
    if not os.path.isdir(repo_dir):
        what = "is not a directory" if os.path.exists(repo_dir) else "does not exist"
        raise InputError(
            f"Input `working-directory` is {inputs.working_directory!r}, but {repo_dir} {what}. Set it to the "
            "directory holding notiflows.json (or one inside the repository), relative to the workspace "
            f"({workspace}), and check that actions/checkout ran before this step."
        )
    return repo_dir


def _prepare_report(env: MutableMapping[str, str], step: StepReport) -> tuple[str, str]:
    path, shown = choose_report_path(env)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).unlink(missing_ok=True)  # outputs come from this run's report or from none
    step.path, step.shown = path, shown
    if _under(shown, CONTAINER_ROOT):
        _say("warning", f"report-path {shown} is a path inside the action's container: neither RUNNER_TEMP nor "
                        "RUNNER_WORKSPACE says where the runner keeps it, so later steps may not find it.")
    return path, shown


def _run_cli(argv: list[str], env: MutableMapping[str, str]) -> int:
    try:
        cli = importlib.import_module("notiflows_deploy.cli")
        return int(cli.main(argv) if env is os.environ else cli.main(argv, dict(env)))
    except SystemExit as exc:  # argparse and friends (the CLI already said why)
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:
        _say("error", f"unexpected error: {type(exc).__name__}: {exc}")
        # On stdout after the error line, fenced: one pipe keeps the order, the fence keeps it inert.
        print("\n".join(stop_commands(traceback.format_exc())), flush=True)
        return 1


def run_step(env: MutableMapping[str, str], step: StepReport) -> int:
    """Inputs -> checks -> CLI; fills `step` once a report path exists. Returns the exit code."""
    try:
        inputs = read_inputs(env)
    except InputError as exc:
        _say("error", str(exc))
        return 1
    masking.mask(inputs.token)
    if inputs.validate_only_reason:
        # A notice: the step still does what it can, and the warnings stay for the notiflows' own.
        _say("notice", validate_only_message(inputs.validate_only_reason))

    # The checkout belongs to the host's runner user; we are root in the container.
    workspace = env.get("GITHUB_WORKSPACE") or os.getcwd()
    try:
        repo_dir = check_working_directory(inputs, workspace)
    except InputError as exc:
        _say("error", str(exc))
        return 1
    toplevels = [p for p in dict.fromkeys((git_toplevel(workspace), git_toplevel(repo_dir))) if p]
    mark_safe([workspace, *toplevels], env)
    # Read-only git: without this, `git status` refreshes .git/index and rewrites it as root.
    env.setdefault("GIT_OPTIONAL_LOCKS", "0")

    # Report under the runner's temp space (never the workspace: files there would be root-owned).
    try:
        report_path, shown_path = _prepare_report(env, step)
    except OSError as exc:
        _say("error", f"cannot prepare the report file: {exc.strerror or exc}")
        return 1
    env.update(child_env(inputs))
    # The path later steps see (differs from `report_path` inside the container); the summary shows it.
    env["NOTIFLOWS_DEPLOY_REPORT_PATH_SHOWN"] = shown_path
    try:
        return _run_cli(to_argv(inputs, report_path=report_path), env)
    finally:
        failed = sum(restore_git_ownership(top)[1] for top in toplevels)
        if failed:
            _say("warning", f"{failed} files that git created under .git could not be given back to the "
                            "checkout's owner; later steps may not be able to write them.")


def publish_outputs(step: StepReport) -> None:
    """Step outputs from this run's report; without one, result=error and empty arrays."""
    report = _load_report(step.path) if step.path else None
    try:
        skipped = write_outputs(outputs_from_report(report, step.shown if report else None))
    except OSError as exc:
        _say("warning", f"could not write the step outputs: {exc.strerror or exc}")
        return
    for name in skipped:
        _say("warning", f"output {name} was not set because it would contain a masked secret")


def main(env: MutableMapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    LEDGER.reset()  # a step of its own (also when tests call main several times in one process)
    # Mask first: nothing may print before the secrets are registered.
    masking.mask(get_input("token", env))
    masking.mask(get_input("github-token", env))
    step = StepReport()
    try:
        return run_step(env, step)
    finally:
        publish_outputs(step)
        if restore_report_ownership(step.path)[1]:
            _say("warning", f"the report directory {step.shown and os.path.dirname(step.shown)} could not be "
                            "given back to its owner; a self-hosted runner may not be able to clean it.")
        LEDGER.reset()


if __name__ == "__main__":
    sys.exit(main())
