"""Change ranges end to end: real git repositories -> the real CLI -> the bundled emulator.

Each test is one way the range used to pick the wrong notiflows or the wrong base (force pushes,
rollbacks, first pushes, --all and scheduled runs, pull requests behind their base branch, moved
notiflowsDir, stray directories) and checks the server's own state, not only the report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from e2e_support import PROJECT, Cli, body_of, edit_notiflow, make_repo, set_body
from gitutil import TestRepo

from notiflows_deploy.emulator import Emulator
from notiflows_deploy.github.event import ZERO_SHA


def event_env(cli: Cli, tmp_path: Path, name: str, payload: Mapping[str, Any], sha: str) -> dict[str, str]:
    path = tmp_path / f"event-{name}-{sha[:7]}.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    return cli.env(GITHUB_EVENT_NAME=name, GITHUB_EVENT_PATH=str(path), GITHUB_SHA=sha)


def push_env(cli: Cli, tmp_path: Path, before: str, after: str, **extra: Any) -> dict[str, str]:
    payload = {"ref": "refs/heads/main", "before": before, "after": after, "repository": {"default_branch": "main"},
               **extra}
    return event_env(cli, tmp_path, "push", payload, after)


def seeded(tmp_path: Path, cli: Cli, *handles: str) -> TestRepo:
    repo = make_repo(tmp_path / "repo", *handles)
    run = cli("deploy", repo.path, "--all")
    assert run.code == 0 and set(run.statuses.values()) == {"created"}, run.report
    return repo


# ---- 1. force pushes and rollbacks: the two trees are compared directly -------------------------


def test_force_push_that_reverts_commits_brings_the_server_back(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = seeded(tmp_path, cli, "welcome", "digest")
    kept = repo.sha()
    set_body(repo, "welcome", "<p>a mistake</p>\n")
    mistake = repo.commit("mistake")
    assert cli("deploy", repo.path, env=push_env(cli, tmp_path, kept, mistake)).status("welcome") == "updated"
    assert body_of(emu.state(), "welcome") == "<p>a mistake</p>\n"

    repo.git("reset", "-q", "--hard", kept)  # git push --force of the older commit
    run = cli("deploy", repo.path, env=push_env(cli, tmp_path, mistake, kept, forced=True))
    assert run.code == 0, run.report
    assert run.statuses == {"welcome": "updated"}
    assert body_of(emu.state(), "welcome") == "<p>hello</p>\n"  # the dropped content is gone from the server
    assert (run.report["base"], run.report["head"]) == (mistake, kept)
    assert any("not an ancestor" in n and "directly" in n for n in run.report["notes"])


def test_rollback_plan_with_base_head_and_head_parent(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = seeded(tmp_path, cli, "welcome", "digest")
    set_body(repo, "welcome", "<p>v2</p>\n")
    repo.commit("v2")
    assert cli("deploy", repo.path).status("welcome") == "updated"
    run = cli("plan", repo.path, "--base", "HEAD", "--head", "HEAD~1")
    assert run.code == 0 and run.report["result"] == "success"
    assert run.statuses == {"welcome": "would-update"}
    assert "<p>v2</p>" in run.by_handle["welcome"]["diff"]
    assert not any("no GitHub event" in n or "HEAD~1..HEAD" in n for n in run.report["notes"])


# ---- 2. the first push of the default branch deploys everything -----------------------------------


def test_first_push_of_a_repository_with_several_commits(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "first")
    repo.add_notiflow("second")
    repo.commit("second")
    repo.add_notiflow("third")
    head = repo.commit("third")
    run = cli("deploy", repo.path, env=push_env(cli, tmp_path, ZERO_SHA, head, created=True))
    assert run.code == 0, run.report
    assert run.statuses == {"first": "created", "second": "created", "third": "created"}
    assert run.report["base"] is None
    assert not any("no default branch" in n for n in run.report["notes"])


# ---- 3. --all, schedule and workflow_dispatch keep a base for the conflict rule ----------------------


def _server_one_commit_behind(tmp_path: Path, cli: Cli) -> TestRepo:
    """welcome deployed at HEAD~1, edited again at HEAD; digest deployed at HEAD."""
    repo = seeded(tmp_path, cli, "welcome", "digest")
    set_body(repo, "welcome", "<p>2</p>\n")
    repo.commit("2")
    assert cli("deploy", repo.path).status("welcome") == "updated"
    set_body(repo, "welcome", "<p>3</p>\n")
    repo.commit("3")
    return repo


def test_all_flag_is_no_false_conflict(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = _server_one_commit_behind(tmp_path, cli)
    run = cli("deploy", repo.path, "--all")
    assert run.code == 0, run.report
    assert run.statuses == {"welcome": "updated", "digest": "unchanged"}
    assert body_of(emu.state(), "welcome") == "<p>3</p>\n"
    assert run.report["base"] == repo.sha("HEAD~1")
    notes = run.report["notes"]
    assert any(n.startswith("--all: every notiflow counts") for n in notes)
    assert not any("no GitHub event" in n for n in notes)


@pytest.mark.parametrize("event", ["schedule", "workflow_dispatch"])
def test_scheduled_and_dispatched_runs_are_no_false_conflict(
    emu: Emulator, cli: Cli, tmp_path: Path, event: str
) -> None:
    repo = _server_one_commit_behind(tmp_path, cli)
    run = cli("deploy", repo.path, env=event_env(cli, tmp_path, event, {}, repo.sha()))
    assert run.code == 0, run.report
    assert run.statuses == {"welcome": "updated", "digest": "unchanged"}
    assert run.report["base"] == repo.sha("HEAD~1")
    assert any(n.startswith(f"{event} event: every notiflow counts") for n in run.report["notes"])


def test_all_flag_with_base_keeps_that_base(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = _server_one_commit_behind(tmp_path, cli)
    base = repo.sha("HEAD~2")  # the server holds HEAD~1, not this base: the git history says it is ours
    run = cli("plan", repo.path, "--all", "--base", base)
    assert run.report["base"] == base
    assert run.statuses == {"welcome": "would-update", "digest": "unchanged"}
    assert f"own revision from commit {repo.sha('HEAD~1')[:12]}" in run.by_handle["welcome"]["detail"]


# ---- 4. a pull request behind its base branch ---------------------------------------------------


def test_pull_request_plan_after_main_moved_and_was_deployed(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = seeded(tmp_path, cli, "welcome", "digest")
    repo.git("checkout", "-q", "-b", "feature")
    set_body(repo, "welcome", "<p>from the pull request</p>\n")
    pr_head = repo.commit("pr")
    repo.git("checkout", "-q", "main")
    edit_notiflow(repo, "welcome", name="Welcome, renamed on main")
    main_tip = repo.commit("main moves on")
    assert cli("deploy", repo.path).status("welcome") == "updated"  # the server holds main's tip
    repo.git("checkout", "-q", "--detach", main_tip)
    repo.git("merge", "-q", "--no-ff", "feature", "-m", "test merge")  # refs/pull/N/merge, checked out
    merge = repo.sha()

    def plan(base_sha: str) -> Any:
        payload = {"number": 4, "pull_request": {"number": 4, "base": {"sha": base_sha, "ref": "main"},
                                                 "head": {"sha": pr_head, "ref": "feature"}}}
        return cli("plan", repo.path, env=event_env(cli, tmp_path, "pull_request", payload, merge))

    run = plan(main_tip)
    assert run.code == 0, run.report
    assert run.statuses == {"welcome": "would-update"}
    assert "base branch tip" in run.by_handle["welcome"]["detail"]
    assert run.report["base"] == repo.sha("main~1")  # the diff still starts at the merge base
    # pull_request.base.sha may lag behind; the merge commit's first parent is the fresher tip
    stale = plan(repo.sha("main~1"))
    assert stale.statuses == {"welcome": "would-update"}, stale.report
    assert "first parent of the merge commit" in stale.by_handle["welcome"]["detail"]
    # a dashboard edit is still a conflict
    emu.dashboard_edit(PROJECT, "welcome")
    edited = plan(main_tip)
    assert edited.code == 3 and edited.status("welcome") == "conflict"
    assert "nor the base branch tip" in edited.by_handle["welcome"]["detail"]


# ---- 5. notiflows.json changes: removals kept, the base read at its own notiflowsDir ------------------


def test_removal_in_the_same_range_as_a_config_change(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = seeded(tmp_path, cli, "welcome", "digest")
    repo.write("notiflows.json", json.dumps({"notiflowsDir": ".notiflows", "project": PROJECT}, indent=4) + "\n")
    repo.remove(repo.nf_path("digest"))
    edit_notiflow(repo, "welcome", name="a notiflow.json edit")
    repo.commit("config, removal and an edit")
    run = cli("deploy", repo.path)
    assert run.code == 0, run.report
    assert run.statuses == {"welcome": "updated", "digest": "removed"}
    notes = run.report["notes"]
    assert "notiflows.json changed (M): every notiflow counts" in notes
    assert not any("notiflow.json changed" in n or "body.html" in n for n in notes)  # no per-handle reasons


def test_moved_notiflows_dir_reads_the_base_at_the_old_path(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = seeded(tmp_path, cli, "welcome", "digest", "gone")
    repo.git("mv", ".notiflows", "config")
    repo.write("notiflows.json", json.dumps({"notiflowsDir": "config", "project": PROJECT}) + "\n")
    repo.git("rm", "-r", "-q", "-f", "--", "config/notiflows/gone")
    repo.notiflows_dir = "config"
    set_body(repo, "welcome", "<p>edited while moving</p>\n")
    repo.commit("move notiflowsDir, edit welcome, drop gone")
    run = cli("deploy", repo.path)
    assert run.code == 0, run.report  # welcome's base content is found at .notiflows/: ours, no conflict
    assert run.statuses == {"welcome": "updated", "digest": "unchanged", "gone": "removed"}
    assert body_of(emu.state(), "welcome") == "<p>edited while moving</p>\n"
    assert any("notiflowsDir moved" in n and ".notiflows/notiflows/" in n for n in run.report["notes"])


# ---- 6. a directory without notiflow.json is invalid, not a green run --------------------------------


def test_directory_with_a_misnamed_notiflow_json_is_invalid(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = seeded(tmp_path, cli, "welcome")
    repo.write(repo.nf_path("typo", "notiflows.json"), json.dumps({"name": "typo", "steps": []}) + "\n")
    repo.write(repo.nf_path("typo", "steps/email_1/body.html"), "<p>x</p>\n")
    repo.commit("misnamed")
    run = cli("deploy", repo.path)
    assert run.code == 4 and run.report["result"] == "invalid"
    assert run.statuses == {"typo": "invalid"}
    (error,) = run.by_handle["typo"]["errors"]
    assert error["code"] == "notiflow-json-missing" and error["file"].startswith(".notiflows/notiflows/typo")
    # a stray directory deleted again in the range is nothing to report
    repo.remove(repo.nf_path("typo"))
    repo.commit("drop it")
    assert cli("deploy", repo.path).report["notiflows"] == []


# ---- 7/8. notes say what really happened --------------------------------------------------------------


def test_missing_event_file_is_named_in_the_notes(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = seeded(tmp_path, cli, "welcome")
    set_body(repo, "welcome", "<p>2</p>\n")
    repo.commit("2")
    env = cli.env(GITHUB_EVENT_NAME="push", GITHUB_EVENT_PATH=str(tmp_path / "nope.json"), GITHUB_SHA=repo.sha())
    run = cli("deploy", repo.path, env=env)
    assert run.code == 0 and run.statuses == {"welcome": "updated"}
    assert any("nope.json (GITHUB_EVENT_PATH) does not exist" in n for n in run.report["notes"])
    assert not any("without `before`" in n for n in run.report["notes"])


def test_drift_notes_have_no_range(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = seeded(tmp_path, cli, "welcome")
    run = cli("drift", repo.path)
    assert run.code == 0, run.report
    notes = run.report["notes"]
    assert not any("GitHub event" in n or "HEAD~1" in n or "--all" in n or "first commit" in n for n in notes)
    assert run.report["base"] is None and run.report["head"] == repo.sha()


def test_unknown_base_ref_names_flag_and_input(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = seeded(tmp_path, cli, "welcome")
    run = cli("plan", repo.path, "--base", "no-such-branch")
    assert run.code == 1
    assert "--base / input base-ref 'no-such-branch' is not a commit in this repository" in run.report["fatal"]


# ---- 10. git is asked only about the paths in scope -----------------------------------------------------


def test_git_status_and_diff_are_limited_to_the_notiflows(
    emu: Emulator, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from notiflows_deploy import gitrepo

    repo = make_repo(tmp_path / "repo", "welcome", "digest")
    repo.write("src/app.py", "print(1)\n")
    set_body(repo, "welcome", "<p>2</p>\n")
    repo.commit("2")
    calls: list[tuple[str, ...]] = []
    real = gitrepo.GitRepo._git

    def spy(self: gitrepo.GitRepo, *args: str, check: bool = True) -> tuple[int, bytes, str]:
        calls.append(args)
        return real(self, *args, check=check)

    monkeypatch.setattr(gitrepo.GitRepo, "_git", spy)
    assert cli("validate", repo.path).statuses == {"welcome": "valid"}
    (diff,) = [c for c in calls if "diff" in c]
    assert diff[diff.index("--") + 1:] == (".notiflows/notiflows", "notiflows.json")
    (status,) = [c for c in calls if c[0] == "status"]
    assert status[status.index("--") + 1:] == (".notiflows/notiflows/welcome", "notiflows.json")
    calls.clear()
    repo.write("src/app.py", "print(2)\n")
    repo.commit("code only")
    assert cli("validate", repo.path).report["notiflows"] == []
    assert not [c for c in calls if c[0] == "status"]  # nothing is read from disk: no status at all
