"""What counts as "ours": real git repositories -> the real CLI -> the bundled emulator.

Nothing the dashboard did may be overwritten silently (a key the repo omits, a value filled from the
environment), and nothing the repo itself had may block a deploy for ever (the git history is the
authority, a moved project directory keeps its base).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from e2e_support import PROJECT, Cli, body_of, current, edit_notiflow, flows, make_repo, set_body
from gitutil import TestRepo

from notiflows_deploy.emulator import Emulator
from notiflows_deploy.normalize import equal_content, variables_only_difference, with_defaults


def deployed(repo: TestRepo, cli: Cli) -> None:
    run = cli("deploy", repo.path, "--all")
    assert run.code == 0 and set(run.statuses.values()) <= {"created", "unchanged"}, run.report


def push_env(cli: Cli, tmp_path: Path, before: str, after: str, **extra: str) -> dict[str, str]:
    path = tmp_path / f"push-{after[:7]}.json"
    path.write_text(json.dumps({"ref": "refs/heads/main", "before": before, "after": after,
                                "repository": {"default_branch": "main"}}), encoding="utf-8")
    return cli.env(GITHUB_EVENT_NAME="push", GITHUB_EVENT_PATH=str(path), GITHUB_SHA=after, **extra)


def dispatch_env(cli: Cli, tmp_path: Path, sha: str) -> dict[str, str]:
    path = tmp_path / "dispatch.json"
    path.write_text("{}", encoding="utf-8")
    return cli.env(GITHUB_EVENT_NAME="workflow_dispatch", GITHUB_EVENT_PATH=str(path), GITHUB_SHA=sha)


# ---- 1. a top-level key the repo omits means its documented default ---------------------------------


def test_equal_content_compares_every_top_level_key_with_defaults() -> None:
    steps = [{"handle": "trigger", "type": "trigger", "position": 0}]
    omitted = {"name": "A", "steps": steps}
    assert equal_content(omitted, {"name": "A", "active": True, "include_in_preferences": True, "steps": steps})
    assert not equal_content(omitted, {"name": "A", "active": False, "steps": steps})
    assert not equal_content({"name": "A", "active": False, "steps": steps}, omitted)  # symmetric
    assert not equal_content(omitted, {"name": "A", "include_in_preferences": False, "steps": steps})
    assert not equal_content({"steps": steps}, {"name": "A", "steps": steps})  # a name only one side has
    assert with_defaults(omitted) == {**omitted, "active": True, "include_in_preferences": True}
    assert with_defaults({"active": False, "include_in_preferences": None})["include_in_preferences"] is True


def test_dashboard_edit_of_a_key_the_base_omitted_is_a_conflict(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "a")
    edit_notiflow(repo, "a", active=None)
    repo.commit("omit active")
    deployed(repo, cli)
    emu.dashboard_edit(PROJECT, "a", {"active": False})  # someone switched it off in the dashboard
    edit_notiflow(repo, "a", active=True)
    repo.commit("say active explicitly")
    before = emu.state()["projects"]
    run = cli("deploy", repo.path)
    assert run.code == 3 and run.status("a") == "conflict", run.report
    assert emu.state()["projects"] == before  # nothing pushed: the dashboard's `active: false` stays
    assert "active" in run.by_handle["a"]["diff"]  # the three-way view shows what the server changed
    forced = cli("deploy", repo.path, "--force")
    assert forced.status("a") == "forced"
    assert current(emu.state(), "a")["content"]["active"] is True


def test_a_repo_omitting_active_pushes_the_default_so_it_converges(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    """Omitted means true: a forced push sends it, so the next run finds the server equal (no loop)."""
    repo = make_repo(tmp_path / "repo", "a")
    edit_notiflow(repo, "a", active=None)
    repo.commit("omit active")
    deployed(repo, cli)
    emu.dashboard_edit(PROJECT, "a", {"active": False})
    plan = cli("plan", repo.path, "--all")
    assert plan.status("a") == "conflict"
    assert cli("deploy", repo.path, "--all", "--force").status("a") == "forced"
    assert current(emu.state(), "a")["content"]["active"] is True
    assert cli("deploy", repo.path, "--all").status("a") == "unchanged"


# ---- 3. the git history is the authority on what is ours ---------------------------------------------


def _dropped_run(tmp_path: Path, cli: Cli) -> tuple[TestRepo, list[str]]:
    """x, y, z deployed at c1; c2 (x), c3 (y), c4 (z) pushed; the run for c2..c3 was dropped by the
    concurrency group (a newer run queued), so y stayed at c1 on the server."""
    repo = make_repo(tmp_path / "repo", "x", "y", "z")
    c1 = repo.sha()
    deployed(repo, cli)
    shas = [c1]
    for handle in ("x", "y", "z"):
        set_body(repo, handle, f"<p>{handle}2</p>\n")
        shas.append(repo.commit(f"{handle}2"))
    c1, c2, c3, c4 = shas
    repo.git("checkout", "-q", c2)
    assert cli("deploy", repo.path, env=push_env(cli, tmp_path, c1, c2)).statuses == {"x": "updated"}
    repo.git("checkout", "-q", "main")
    assert cli("deploy", repo.path, env=push_env(cli, tmp_path, c3, c4)).statuses == {"z": "updated"}
    return repo, shas


def test_a_notiflow_skipped_by_a_dropped_run_is_deployed_on_its_next_change(
    emu: Emulator, cli: Cli, tmp_path: Path
) -> None:
    repo, (c1, _c2, _c3, c4) = _dropped_run(tmp_path, cli)
    assert body_of(emu.state(), "y") == "<p>hello</p>\n"  # still c1's content
    set_body(repo, "y", "<p>y3</p>\n")
    c5 = repo.commit("y3")
    held = current(emu.state(), "y")
    run = cli("deploy", repo.path, env=push_env(cli, tmp_path, c4, c5))
    assert run.code == 0 and run.statuses == {"y": "updated"}, run.report
    entry = run.by_handle["y"]
    assert f"own revision from commit {c1[:12]} (2 commits touching this notiflow before head)" in entry["detail"]
    assert entry["remote_sha_before"] == held["sha"] and entry["version_before"] == held["version_number"]
    assert body_of(emu.state(), "y") == "<p>y3</p>\n"


def test_deploy_all_is_the_catch_up_for_a_dropped_run(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo, _ = _dropped_run(tmp_path, cli)
    run = cli("deploy", repo.path, env=dispatch_env(cli, tmp_path, repo.sha()))  # workflow_dispatch
    assert run.code == 0, run.report
    assert run.statuses == {"x": "unchanged", "y": "updated", "z": "unchanged"}
    assert body_of(emu.state(), "y") == "<p>y2</p>\n"


def test_content_the_repo_never_had_stays_a_conflict(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo, _ = _dropped_run(tmp_path, cli)
    emu.dashboard_edit(PROJECT, "y", {"template_updates": {"email_1": {"body": "<p>dashboard</p>\n"}}})
    run = cli("deploy", repo.path, "--all")
    assert run.code == 3 and run.status("y") == "conflict"
    assert "changed outside git" in run.by_handle["y"]["detail"]
    assert body_of(emu.state(), "y") == "<p>dashboard</p>\n"


# ---- 4. a rotated secret or a renamed variable is said as such, never overwritten ---------------------


def test_variables_only_difference() -> None:
    raw = {"name": "A", "steps": [{"handle": "s", "type": "channel", "template": {"data": {"body": "k=${KEY}"}}}]}
    server = {"name": "A", "steps": [{"handle": "s", "type": "channel", "template": {"data": {"body": "k=old"}}}]}
    assert variables_only_difference(raw, server, {"KEY": "new"}) == frozenset({"KEY"})
    assert variables_only_difference(raw, server, {}) == frozenset({"KEY"})  # unset today
    assert variables_only_difference(raw, server, {"KEY": "old"}) is None  # no difference at all
    assert variables_only_difference({**raw, "name": "B"}, server, {"KEY": "new"}) is None  # a real edit too
    other = {"name": "A", "steps": [{"handle": "s", "type": "channel", "template": {"data": {"body": "x"}}}]}
    assert variables_only_difference(raw, other, {"KEY": "new"}) is None  # does not fit "k=${KEY}"


def _all_text(run: Any, capsys: pytest.CaptureFixture[str]) -> str:
    out = capsys.readouterr()
    return json.dumps(run.report) + out.out + out.err


def test_rotated_secret_is_explained_not_called_a_dashboard_edit(
    emu: Emulator, cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo", "a", "b")
    set_body(repo, "a", "<p>key=${API_KEY}</p>\n")
    repo.commit("use a secret")
    assert cli("deploy", repo.path, "--all", env=cli.env(API_KEY="oldsecretvalue1")).code == 0
    edit_notiflow(repo, "a", name="a renamed")
    repo.commit("rename a")
    before = emu.state()["projects"]
    run = cli("deploy", repo.path, env=cli.env(API_KEY="newsecretvalue2"))
    assert run.code == 3 and run.status("a") == "conflict"
    detail = run.by_handle["a"]["detail"]
    assert ("The server differs from the base commit only in fields filled from environment variables (API_KEY):"
            " if a value changed since the last deploy (a rotated secret), this is no dashboard edit: deploy with"
            " --force to push the new value.") in detail
    assert "changed outside git" not in detail
    assert emu.state()["projects"] == before
    text = _all_text(run, capsys)
    assert "oldsecretvalue1" not in text and "newsecretvalue2" not in text
    forced = cli("deploy", repo.path, "--force", env=cli.env(API_KEY="newsecretvalue2"))
    assert forced.status("a") == "forced"
    assert body_of(emu.state(), "a") == "<p>key=newsecretvalue2</p>\n"


def test_renamed_variable_is_explained_and_names_the_unset_one(
    emu: Emulator, cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo", "a")
    set_body(repo, "a", "<p>url=${APP_URL}</p>\n")
    repo.commit("use a variable")
    assert cli("deploy", repo.path, "--all", env=cli.env(APP_URL="https://x.example/a")).code == 0
    edit_notiflow(repo, "a", name="renamed")
    set_body(repo, "a", "<p>url=${NEW_URL}</p>\n")
    repo.commit("rename the variable and the notiflow")
    run = cli("deploy", repo.path, env=cli.env(NEW_URL="https://x.example/a"))
    assert run.code == 3 and run.status("a") == "conflict"
    detail = run.by_handle["a"]["detail"]
    assert "only in fields filled from environment variables (APP_URL)" in detail
    assert "Not set in this run's environment: APP_URL" in detail
    assert "changed outside git" not in detail and "no base revision" not in detail
    assert "x.example" not in _all_text(run, capsys)


# ---- 9. a project directory moved in the range keeps its base ----------------------------------------


def test_moved_project_directory_reads_the_base_where_it_was(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "a", "b")
    deployed(repo, cli)
    (repo.path / "apps/notif").mkdir(parents=True)
    repo.git("mv", ".notiflows", "apps/notif/.notiflows")
    repo.git("mv", "notiflows.json", "apps/notif/notiflows.json")
    repo.project = "apps/notif"
    set_body(repo, "a", "<p>a2</p>\n")
    repo.commit("move the project into apps/notif, edit a")
    run = cli("deploy", repo.project_path())
    assert run.code == 0 and run.statuses == {"a": "updated", "b": "unchanged"}, run.report
    assert any("the project moved in this range: notiflows.json at the base commit" in n
               for n in run.report["notes"])
    assert body_of(emu.state(), "a") == "<p>a2</p>\n"


def test_project_missing_at_the_base_says_why_and_how_to_fix(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    """No rename git can see (the old notiflows.json rewritten): a note names the cause and --base."""
    repo = make_repo(tmp_path / "repo", "a")
    deployed(repo, cli)
    (repo.path / "apps/notif").mkdir(parents=True)
    repo.git("mv", ".notiflows", "apps/notif/.notiflows")
    repo.remove("notiflows.json")
    repo.project = "apps/notif"
    repo.config({"project": PROJECT, "notiflowsDir": ".notiflows", "x-comment": "a rewrite git sees as new " * 4})
    set_body(repo, "a", "<p>a2</p>\n")
    repo.commit("move and rewrite")
    run = cli("plan", repo.project_path())
    assert run.code == 3 and run.status("a") == "conflict"
    (note,) = [n for n in run.report["notes"] if "does not exist at the base commit" in n]
    assert "apps/notif/notiflows.json" in note and "--base" in note
    assert flows(emu.state())["a"]["current"] == 1
