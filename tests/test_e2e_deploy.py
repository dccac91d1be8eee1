"""End to end: real git repositories -> the real CLI (`cli.main(argv, env)`) -> the bundled emulator.

Each test reads the `--report-json` report and the emulator's own state and request log, so a
status is only believed when the server agrees with it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    PROJECT,
    TOKEN,
    Cli,
    api_requests,
    body_of,
    current,
    edit_notiflow,
    flows,
    make_repo,
    set_body,
    successful_puts,
)
from emulator_support import running_emulator
from gitutil import TestRepo

from notiflows_deploy.api import client as client_module
from notiflows_deploy.emulator import Emulator


@pytest.fixture()
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same number of attempts, tiny backoff: exhausting retries on 5xx takes milliseconds.

    Backoff ceilings 0.005 * 2**i s (at most 0.04 s); the client reads the variable when the runner
    builds it (`backoff_base=None`)."""
    monkeypatch.setenv(client_module.BACKOFF_BASE_ENV, "0.005")


def deployed(repo: TestRepo, cli: Cli, *handles: str) -> None:
    """Seed: the first commit deployed (every notiflow created)."""
    run = cli("deploy", repo.path, "--all")
    assert run.code == 0, run.report
    assert set(run.statuses.values()) <= {"created", "unchanged"}
    assert set(handles) <= set(run.statuses)


def writes(emu: Emulator, since: int) -> list[Mapping[str, Any]]:
    return [r for r in api_requests(emu.requests[since:]) if r["method"] != "GET"]


# ---- create / update / unchanged ---------------------------------------------------------------


def test_first_commit_creates_every_notiflow(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome", "digest")
    run = cli("deploy", repo.path)  # default range on a root commit: everything is new
    assert run.code == 0
    assert run.report["result"] == "success" and run.report["head"] == repo.sha()
    state = emu.state()
    for handle in ("welcome", "digest"):
        entry = run.by_handle[handle]
        assert entry["status"] == "created"
        assert entry["path"] == f".notiflows/notiflows/{handle}"
        assert entry["remote_sha_before"] is None
        assert entry["version"] == 1 and entry["published"] is False
        assert entry["remote_sha_after"] == current(state, handle)["sha"]
        assert body_of(state, handle) == "<p>hello</p>\n"  # the body@ file's text was pushed


def test_update_default_range_pushes_only_the_changed_notiflow(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome", "digest")
    deployed(repo, cli, "welcome", "digest")
    v1 = current(emu.state(), "welcome")["sha"]
    set_body(repo, "welcome", "<p>hello again</p>\n")
    repo.commit("reword")
    mark = len(emu.requests)

    run = cli("deploy", repo.path)  # HEAD~1..HEAD
    assert run.code == 0 and run.report["result"] == "success"
    assert run.statuses == {"welcome": "updated"}  # digest is not in the range at all
    entry = run.by_handle["welcome"]
    state = emu.state()
    assert entry["remote_sha_before"] == v1
    assert entry["remote_sha_after"] == current(state, "welcome")["sha"] != v1
    assert entry["version"] == 2 and entry["version_before"] == 1
    assert body_of(state, "welcome") == "<p>hello again</p>\n"
    assert successful_puts(emu.requests[mark:]) == {"welcome": 1}
    assert run.report["base"] == repo.sha("HEAD~1") and run.report["head"] == repo.sha()


def test_update_with_explicit_base_and_head(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome", "digest")
    deployed(repo, cli)
    base = repo.sha()
    set_body(repo, "digest", "<p>weekly</p>\n")
    mid = repo.commit("digest")
    set_body(repo, "welcome", "<p>later, not in the range</p>\n")
    repo.commit("welcome, after the range")  # HEAD is past --head: the range's files are read from git

    run = cli("deploy", repo.path, "--base", base, "--head", mid)
    assert run.code == 0
    assert run.statuses == {"digest": "updated"}
    assert run.report["base"] == base and run.report["head"] == mid
    state = emu.state()
    assert body_of(state, "digest") == "<p>weekly</p>\n"
    assert body_of(state, "welcome") == "<p>hello</p>\n"  # untouched: outside the range
    assert flows(state)["welcome"]["current"] == 1


def test_redeploy_is_unchanged_and_writes_nothing(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome", "digest")
    deployed(repo, cli)
    before = emu.state()["projects"]
    mark = len(emu.requests)
    run = cli("deploy", repo.path, "--all")
    assert run.code == 0 and run.report["result"] == "no-changes"
    assert run.statuses == {"welcome": "unchanged", "digest": "unchanged"}
    for handle, entry in run.by_handle.items():
        sha = before[PROJECT]["notiflows"][handle]["versions"][0]["sha"]
        assert entry["remote_sha_before"] == entry["remote_sha_after"] == sha and entry["version"] == 1
    assert writes(emu, mark) == []
    assert emu.state()["projects"] == before


# ---- conflicts ---------------------------------------------------------------------------------


def test_dashboard_edit_is_a_conflict_and_nothing_is_pushed(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome", "digest")
    deployed(repo, cli)
    emu.dashboard_edit(PROJECT, "welcome")
    set_body(repo, "welcome", "<p>repo edit</p>\n")
    repo.commit("edit welcome")
    before = emu.state()["projects"]
    mark = len(emu.requests)

    run = cli("deploy", repo.path)
    assert run.code == 3 and run.report["result"] == "conflict"
    entry = run.by_handle["welcome"]
    assert entry["status"] == "conflict"
    assert entry["remote_sha_before"] == before[PROJECT]["notiflows"]["welcome"]["versions"][-1]["sha"]
    assert entry["remote_sha_after"] is None
    assert "Dashboard User" in entry["detail"] and "--force" in entry["detail"]
    assert writes(emu, mark) == []
    assert emu.state()["projects"] == before


def test_conflict_does_not_hold_back_the_other_changed_notiflows(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome", "digest")
    deployed(repo, cli)
    emu.dashboard_edit(PROJECT, "welcome")
    set_body(repo, "welcome", "<p>repo edit</p>\n")
    set_body(repo, "digest", "<p>digest edit</p>\n")
    repo.commit("edit both")
    run = cli("deploy", repo.path)
    assert run.code == 3
    assert run.statuses == {"welcome": "conflict", "digest": "updated"}
    assert body_of(emu.state(), "digest") == "<p>digest edit</p>\n"


def test_force_pushes_over_the_conflict_and_says_so(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome")
    deployed(repo, cli)
    emu.dashboard_edit(PROJECT, "welcome")
    set_body(repo, "welcome", "<p>repo edit</p>\n")
    repo.commit("edit welcome")
    assert cli("deploy", repo.path).code == 3
    dashboard_sha = current(emu.state(), "welcome")["sha"]

    run = cli("deploy", repo.path, "--force")
    assert run.code == 0 and run.report["result"] == "success"
    entry = run.by_handle["welcome"]
    state = emu.state()
    assert entry["status"] == "forced"
    assert entry["remote_sha_before"] == dashboard_sha
    assert entry["remote_sha_after"] == current(state, "welcome")["sha"] != dashboard_sha
    assert entry["version"] == 3  # v1 deploy, v2 dashboard, v3 forced
    assert body_of(state, "welcome") == "<p>repo edit</p>\n"
    assert current(state, "welcome")["content"]["name"] == "welcome"  # the dashboard's rename is gone


def test_second_deploy_without_meta_sha_is_no_false_conflict(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome")
    deployed(repo, cli)
    for n in (2, 3):  # each deploy's server version differs from anything recorded in the repo
        set_body(repo, "welcome", f"<p>edit {n}</p>\n")
        repo.commit(f"edit {n}")
        run = cli("deploy", repo.path)
        assert run.code == 0, run.report
        assert run.status("welcome") == "updated" and run.by_handle["welcome"]["version"] == n


def test_second_deploy_with_stale_meta_sha_is_no_false_conflict(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome")
    deployed(repo, cli)
    v1 = current(emu.state(), "welcome")["sha"]
    edit_notiflow(repo, "welcome", __meta={"version": 1, "sha": v1, "status": "draft"})  # as pulled after v1
    repo.commit("record v1")
    assert cli("deploy", repo.path).status("welcome") == "unchanged"  # __meta is not content

    set_body(repo, "welcome", "<p>edit 2</p>\n")
    repo.commit("edit 2")
    run = cli("deploy", repo.path)  # __meta.sha == server: ours by sha
    assert run.code == 0 and run.status("welcome") == "updated"

    set_body(repo, "welcome", "<p>edit 3</p>\n")
    repo.commit("edit 3")
    run = cli("deploy", repo.path)  # __meta.sha is now stale (v1), the server holds v2 = the base content
    assert run.code == 0, run.report
    assert run.status("welcome") == "updated" and run.by_handle["welcome"]["version"] == 3
    assert body_of(emu.state(), "welcome") == "<p>edit 3</p>\n"


# ---- publish -----------------------------------------------------------------------------------


def test_publish_success(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome")
    run = cli("deploy", repo.path, "--publish")
    assert run.code == 0
    entry = run.by_handle["welcome"]
    assert entry["status"] == "published" and entry["published"] is True and entry["version"] == 1
    flow = flows(emu.state())["welcome"]
    assert flow["published"] == flow["current"] == 1
    assert entry["remote_sha_after"] == current(emu.state(), "welcome")["sha"]


def test_publish_refusal_keeps_the_draft_and_says_so(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome")
    repo.add_notiflow("nochannel")
    data = json.loads((repo.path / repo.nf_path("nochannel", "notiflow.json")).read_text())
    del data["steps"][1]["channel_handle"]  # fine for a draft; the emulator refuses to publish it
    edit_notiflow(repo, "nochannel", steps=data["steps"])
    repo.commit("add a notiflow without a channel")

    assert cli("validate", repo.path, "--all").code == 0  # the local checks accept it
    run = cli("deploy", repo.path, "--all", "--publish")
    assert run.code == 5 and run.report["result"] == "failed"
    entry = run.by_handle["nochannel"]
    assert entry["status"] == "failed" and entry["published"] is False
    assert entry["version"] == 1
    assert "stays on the server unpublished" in entry["detail"]
    assert any(e["code"] == "publish-rejected" and "channel_handle" in e["message"] for e in entry["errors"])
    flow = flows(emu.state())["nochannel"]
    assert flow["current"] == 1 and flow["published"] is None  # the draft is there, not live
    assert entry["remote_sha_after"] == current(emu.state(), "nochannel")["sha"]
    assert run.status("welcome") == "published"  # the other one is unaffected


# ---- removed, failures, invalid ----------------------------------------------------------------


def test_removed_directory_is_reported_and_never_deleted(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome", "digest")
    deployed(repo, cli)
    repo.remove(repo.nf_path("digest"))
    repo.commit("drop digest")
    before = emu.state()["projects"]
    mark = len(emu.requests)
    run = cli("deploy", repo.path)
    assert run.code == 0
    assert run.statuses == {"digest": "removed"}
    assert "never deletes" in run.by_handle["digest"]["detail"]
    assert writes(emu, mark) == []
    assert emu.state()["projects"] == before


def test_api_refusal_of_one_notiflow_fails_only_that_one(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "a-one", "b-two", "c-three")
    emu.fail_next("PUT", r"/notiflows/b-two$", 422)
    run = cli("deploy", repo.path)
    assert run.code == 5 and run.report["result"] == "failed"
    assert run.statuses == {"a-one": "created", "b-two": "failed", "c-three": "created"}
    assert "b-two" not in flows(emu.state())


def test_server_errors_past_the_retries_fail_only_that_one(
    emu: Emulator, cli: Cli, tmp_path: Path, fast_retries: None
) -> None:
    repo = make_repo(tmp_path / "repo", "a-one", "b-two", "c-three")
    attempts = inspect.signature(client_module.ManagementClient).parameters["max_attempts"].default
    emu.fail_next("PUT", r"/notiflows/b-two$", 500, count=attempts)
    mark = len(emu.requests)
    run = cli("deploy", repo.path)
    assert run.code == 5
    assert run.statuses == {"a-one": "created", "b-two": "failed", "c-three": "created"}
    assert "next run" in run.by_handle["b-two"]["detail"]
    puts = [r for r in emu.requests[mark:] if r["method"] == "PUT" and r["path"].endswith("/b-two")]
    assert [r["status"] for r in puts] == [500] * attempts
    assert cli("deploy", repo.path, "--all").statuses == {
        "a-one": "unchanged", "b-two": "created", "c-three": "unchanged"}  # and the re-run converges


def test_invalid_notiflow_is_not_pushed_and_the_valid_ones_are(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "good")
    repo.add_notiflow("bad")
    repo.write(repo.nf_path("bad", "notiflow.json"), '{"name": "bad", "steps": [\n')  # JSON syntax error
    repo.add_notiflow("schema-bad")
    edit_notiflow(repo, "schema-bad", active="yes")  # a schema error
    repo.commit("add three")
    run = cli("deploy", repo.path, "--all")
    assert run.code == 4 and run.report["result"] == "invalid"
    assert run.statuses == {"good": "created", "bad": "invalid", "schema-bad": "invalid"}
    bad = run.by_handle["bad"]["errors"]
    assert bad and bad[0]["file"] == ".notiflows/notiflows/bad/notiflow.json" and bad[0]["line"] >= 1
    assert run.by_handle["schema-bad"]["errors"]
    assert set(flows(emu.state())) == {"good"}
    assert all(not r["path"].endswith(("/bad", "/schema-bad")) for r in api_requests(emu.requests))


# ---- plan, layout, config ----------------------------------------------------------------------


def test_plan_never_writes(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome", "digest", "edited")
    deployed(repo, cli)
    emu.dashboard_edit(PROJECT, "edited")
    set_body(repo, "welcome", "<p>changed</p>\n")
    set_body(repo, "edited", "<p>changed</p>\n")
    repo.add_notiflow("brand-new")
    repo.remove(repo.nf_path("digest"))
    repo.commit("a bit of everything")
    before = emu.state()["projects"]
    mark = len(emu.requests)
    run = cli("plan", repo.path, "--publish", "--force")  # even with the flags that would write more
    assert run.code == 3
    assert run.statuses == {"welcome": "would-update", "edited": "conflict", "brand-new": "would-create",
                            "digest": "removed"}
    assert "<p>changed</p>" in run.by_handle["welcome"]["diff"]
    methods = {r["method"] for r in api_requests(emu.requests[mark:])}
    assert methods == {"GET"}
    assert emu.state()["projects"] == before


def test_project_in_a_subdirectory_of_the_git_repo(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "mono", "welcome", project_dir="services/notify")
    repo.write("services/api/main.py", "print('unrelated')\n")
    repo.commit("unrelated code")
    assert cli("deploy", repo.path / "services" / "notify").report["notiflows"] == []  # nothing in range

    run = cli("deploy", repo.project_path(), "--all")
    assert run.code == 0
    assert run.by_handle["welcome"]["path"] == "services/notify/.notiflows/notiflows/welcome"
    set_body(repo, "welcome", "<p>sub</p>\n")
    repo.commit("edit in the subdirectory")
    run = cli("deploy", repo.project_path(".notiflows"))  # --repo below the project walks up to it
    assert run.code == 0 and run.statuses == {"welcome": "updated"}
    assert body_of(emu.state(), "welcome") == "<p>sub</p>\n"


def test_notiflows_json_change_means_every_notiflow(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome", "digest", "alerts")
    deployed(repo, cli)
    emu.dashboard_edit(PROJECT, "alerts")
    repo.write("notiflows.json", json.dumps({"notiflowsDir": ".notiflows", "project": PROJECT}, indent=4) + "\n")
    repo.commit("reformat notiflows.json")
    run = cli("plan", repo.path)
    assert set(run.statuses) == {"welcome", "digest", "alerts"}
    assert run.statuses["welcome"] == run.statuses["digest"] == "unchanged"
    assert run.statuses["alerts"] == "conflict"  # in scope although its files did not change
    assert any("notiflows.json" in note for note in run.report["notes"])


def test_renamed_directory_is_a_removal_plus_a_creation(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "old-name")
    deployed(repo, cli)
    repo.git("mv", repo.nf_path("old-name"), repo.nf_path("new-name"))
    repo.commit("rename")
    run = cli("deploy", repo.path)
    assert run.code == 0
    assert run.statuses == {"old-name": "removed", "new-name": "created"}
    assert set(flows(emu.state())) == {"old-name", "new-name"}


def test_publish_an_unchanged_but_unpublished_notiflow(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "welcome")
    deployed(repo, cli)
    mark = len(emu.requests)
    run = cli("deploy", repo.path, "--all", "--publish")
    assert run.code == 0
    entry = run.by_handle["welcome"]
    assert entry["status"] == "published" and entry["published"] is True and entry["version"] == 1
    assert successful_puts(emu.requests[mark:]) == {}  # published as is, no new version
    assert flows(emu.state())["welcome"]["published"] == 1
    again = cli("deploy", repo.path, "--all", "--publish")
    assert again.code == 0 and again.status("welcome") == "unchanged" and again.by_handle["welcome"]["published"]


def test_environment_variables_come_from_the_env_given_to_main(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    repo.add_notiflow("welcome", body="<p>Welcome to ${APP_NAME}</p>\n")
    repo.commit("uses a variable")
    missing = cli("deploy", repo.path)
    assert missing.code == 4 and missing.status("welcome") == "invalid"
    assert any("APP_NAME" in e["message"] for e in missing.by_handle["welcome"]["errors"])
    assert flows(emu.state()) == {}

    run = cli("deploy", repo.path, env=cli.env(APP_NAME="Acme Shop"))
    assert run.code == 0 and run.status("welcome") == "created"
    assert body_of(emu.state(), "welcome") == "<p>Welcome to Acme Shop</p>\n"


def test_exit_code_precedence_invalid_then_conflict_then_failed(emu: Emulator, cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "conflicted", "failing", "fine")
    deployed(repo, cli)
    emu.dashboard_edit(PROJECT, "conflicted")
    for handle in ("conflicted", "failing", "fine"):
        set_body(repo, handle, "<p>v2</p>\n")
    repo.commit("edit three")
    emu.fail_next("PUT", r"/notiflows/failing$", 422)
    run = cli("deploy", repo.path)  # conflict + failed -> 3
    assert run.code == 3 and run.report["result"] == "conflict"
    assert run.statuses == {"conflicted": "conflict", "failing": "failed", "fine": "updated"}

    repo.write(repo.nf_path("fine", "notiflow.json"), "{ not json\n")
    repo.commit("break fine")
    emu.fail_next("PUT", r"/notiflows/failing$", 422)
    run = cli("deploy", repo.path, "--base", repo.sha("HEAD~2"))  # invalid + conflict + failed -> 4
    assert run.code == 4 and run.report["result"] == "invalid"
    assert run.statuses == {"conflicted": "conflict", "failing": "failed", "fine": "invalid"}


def test_after_a_failed_deploy_the_next_commit_catches_up_from_the_history(
    emu: Emulator, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The git history is the authority on what is ours: a server left at an older revision of the repo
    (commit 2 failed to deploy) is ours, so commit 3 is pushed over it with the server's sha, and the
    report names the revision the server held. Only content the repo never had is a conflict."""
    repo = make_repo(tmp_path / "repo", "welcome")
    deployed(repo, cli)
    set_body(repo, "welcome", "<p>2</p>\n")
    repo.commit("2")
    emu.fail_next("PUT", r"/notiflows/welcome$", 422)
    assert cli("deploy", repo.path).code == 5
    set_body(repo, "welcome", "<p>3</p>\n")
    repo.commit("3")
    held = current(emu.state(), "welcome")["sha"]
    stale = repo.sha("HEAD~2")[:12]
    plan = cli("plan", repo.path)
    assert plan.code == 0 and plan.status("welcome") == "would-update"
    detail = plan.by_handle["welcome"]["detail"]
    assert f"own revision from commit {stale} (2 commits touching this notiflow before head)" in detail
    assert "<p>hello</p>" in plan.by_handle["welcome"]["diff"] and "<p>3</p>" in plan.by_handle["welcome"]["diff"]
    sent: list[str | None] = []
    upsert = client_module.ManagementClient.upsert_notiflow

    def spy(self: client_module.ManagementClient, handle: str, payload: dict[str, Any], *,
            expected_sha: str | None) -> Any:
        sent.append(expected_sha)
        return upsert(self, handle, payload, expected_sha=expected_sha)

    monkeypatch.setattr(client_module.ManagementClient, "upsert_notiflow", spy)
    run = cli("deploy", repo.path)
    assert run.code == 0 and run.status("welcome") == "updated"
    assert f"revision from commit {stale}" in run.by_handle["welcome"]["detail"]
    assert sent == [held]  # compare-and-swap against what the server held
    assert body_of(emu.state(), "welcome") == "<p>3</p>\n"


def test_unreachable_server_is_an_error_without_traceback(
    cli: Cli, tmp_path: Path, fast_retries: None, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo", "welcome")
    with running_emulator(tokens=[TOKEN], projects=[PROJECT]) as gone:
        url = gone.base_url  # a port that was just free and is closed again
    run = cli("deploy", repo.path, env=cli.env(NOTIFLOWS_BASE_URL=url))
    assert run.code == 1 and run.report["result"] == "error"
    assert "could not connect" in run.report["fatal"]
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
