"""The change range deploys what changed, no less: real git repositories -> the real CLI -> the emulator.

A misnamed notiflow.json is invalid (not a quiet removal), a first push without
`repository.default_branch` deploys everything, and pull_request_target (no merge commit) does not
take an older base branch commit for "ours".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from e2e_support import PROJECT, Cli, body_of, make_repo, set_body
from gitutil import TestRepo, clone

from notiflows_deploy.emulator import Emulator
from notiflows_deploy.github.event import range_request

ZERO = "0" * 40


def event_env(cli: Cli, tmp_path: Path, name: str, payload: dict[str, Any], sha: str) -> dict[str, str]:
    path = tmp_path / f"event-{name}-{sha[:7]}.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    return cli.env(GITHUB_EVENT_NAME=name, GITHUB_EVENT_PATH=str(path), GITHUB_SHA=sha)


def deployed(repo: TestRepo, cli: Cli) -> None:
    run = cli("deploy", repo.path, "--all")
    assert run.code == 0 and set(run.statuses.values()) <= {"created", "unchanged"}, run.report


# ---- 5. notiflow.json gone but the directory still there: invalid, not removed ----------------------


def test_misnamed_notiflow_json_is_invalid_not_removed(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "a", "b", "c")
    deployed(repo, cli)
    repo.git("mv", repo.nf_path("a"), repo.nf_path("a2"))
    repo.remove(repo.nf_path("b"))
    repo.git("mv", repo.nf_path("c", "notiflow.json"), repo.nf_path("c", "notiflows.json"))
    repo.commit("rename a, delete b, misname c's notiflow.json")
    for mode in ("validate", "plan", "deploy"):
        run = cli(mode, repo.path)
        assert run.code == 4, (mode, run.report)
        assert run.status("c") == "invalid" and run.status("b") == "removed" and run.status("a") == "removed"
        assert run.by_handle["c"]["errors"], run.by_handle["c"]


def test_deleted_notiflow_json_with_the_rest_kept_is_invalid(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    """Only the deletion is in the diff (body.html is unchanged): the directory at head decides."""
    repo = make_repo(tmp_path / "repo", "a")
    deployed(repo, cli)
    repo.remove(repo.nf_path("a", "notiflow.json"))
    repo.commit("delete only notiflow.json")
    run = cli("plan", repo.path)
    assert run.code == 4 and run.statuses == {"a": "invalid"}, run.report


# ---- 8. a first push of the default branch without repository.default_branch -------------------------


def test_first_push_without_default_branch_in_the_payload_deploys_everything(
    emu: Emulator, cli: Cli, tmp_path: Path
) -> None:
    upstream = make_repo(tmp_path / "up", "a", "b")
    head = upstream.sha()
    payload = {"ref": "refs/heads/main", "before": ZERO, "after": head, "created": True}  # no "repository"
    for name, extra in (("full", ()), ("shallow", ("--depth", "1"))):
        checkout = clone(upstream.path, tmp_path / name, *extra)  # origin/HEAD -> origin/main, the pushed branch
        run = cli("deploy", checkout.path, env=event_env(cli, tmp_path, "push", payload, head))
        assert run.code == 0, run.report
        assert set(run.statuses.values()) <= {"created", "unchanged"} and set(run.statuses) == {"a", "b"}
        assert not any("using the merge base" in n for n in run.report["notes"])
    assert body_of(emu.state(), "a") == "<p>hello</p>\n"


def test_new_branch_at_the_default_tip_still_changes_nothing(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "up", "a")
    head = upstream.sha()
    upstream.git("branch", "feature")
    checkout = clone(upstream.path, tmp_path / "c")
    checkout.git("checkout", "-q", "feature")
    payload = {"ref": "refs/heads/feature", "before": ZERO, "after": head, "created": True}
    run = cli("plan", checkout.path, env=event_env(cli, tmp_path, "push", payload, head))
    assert run.code == 0 and run.report["notiflows"] == [], run.report


# ---- 6. pull_request_target has no merge commit ---------------------------------------------------------


def test_only_pull_request_hands_over_a_merge_commit() -> None:
    payload = {"pull_request": {"number": 1, "base": {"sha": "b" * 40}, "head": {"sha": "c" * 40}}}
    assert range_request("pull_request", payload, github_sha="d" * 40).merge_commit == "d" * 40
    assert range_request("pull_request_target", payload, github_sha="d" * 40).merge_commit is None


def test_pull_request_target_does_not_take_an_older_main_for_ours(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    """GITHUB_SHA is the base branch tip m2, itself a merge: its first parent m1 is an older main, and the
    server holding m1's content (a dashboard rollback) is no content of the base branch tip."""
    repo = make_repo(tmp_path / "repo", "a", "b")
    m0 = repo.sha()
    deployed(repo, cli)
    repo.git("checkout", "-q", "-b", "pr")
    set_body(repo, "a", "<p>pr change</p>\n")
    p1 = repo.commit("pr a")
    repo.git("checkout", "-q", "main")
    set_body(repo, "a", "<p>X1</p>\n")
    m1 = repo.commit("m1")
    repo.git("checkout", "-q", "-b", "q", m0)
    set_body(repo, "a", "<p>X2</p>\n")
    repo.commit("q")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-X", "theirs", "-m", "merge q", "q")
    m2 = repo.sha()
    assert cli("deploy", repo.path, "--base", m1).status("a") == "updated"  # the server holds m2's X2
    emu.dashboard_edit(PROJECT, "a", {"template_updates": {"email_1": {"body": "<p>X1</p>\n"}}})  # rolled back
    payload = {"number": 5, "pull_request": {"number": 5, "base": {"sha": m2, "ref": "main"},
                                             "head": {"sha": p1, "ref": "pr"}}}
    run = cli("plan", repo.path, env=event_env(cli, tmp_path, "pull_request_target", payload, m2))
    assert run.code == 3 and run.status("a") == "conflict", run.report
    assert "first parent of the merge commit" not in json.dumps(run.report)
    assert "nor the base branch tip" in run.by_handle["a"]["detail"]
