"""Push and publish tell exactly what was written: real git repositories -> the real CLI -> the emulator.

A dashboard draft saved after the plan is never published by us; a create retried or raced by the
same content is no "overwrite"; a draft we wrote is in `deployed` even when publishing it failed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import PROJECT, Cli, current, flows, make_repo, set_body, successful_puts
from gitutil import TestRepo

from notiflows_deploy import deployer as deployer_module
from notiflows_deploy.api import client as client_module
from notiflows_deploy.api import transport as transport_module
from notiflows_deploy.api.errors import TransportError
from notiflows_deploy.emulator import Emulator
from notiflows_deploy.report.outputs import outputs_from_report


@pytest.fixture()
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(client_module.BACKOFF_BASE_ENV, "0")


def deployed(repo: TestRepo, cli: Cli) -> None:
    run = cli("deploy", repo.path, "--all")
    assert run.code == 0 and set(run.statuses.values()) <= {"created", "unchanged"}, run.report


def between_plan_and_deploy(monkeypatch: pytest.MonkeyPatch, action: Callable[[], object]) -> None:
    """Run `action` once the plan is built, right before the deploy starts (the runner imports `deploy`
    when it runs, so patching the module attribute reaches it)."""
    real = deployer_module.deploy

    def deploy(*args: Any, **kwargs: Any) -> Any:
        action()
        return real(*args, **kwargs)

    monkeypatch.setattr(deployer_module, "deploy", deploy)


def before_first(monkeypatch: pytest.MonkeyPatch, name: str, handle: str, action: Callable[[], object]) -> None:
    """Run `action` right before the first ManagementClient.`name` call for `handle`."""
    real = getattr(client_module.ManagementClient, name)
    pending = [action]

    def wrapper(self: Any, called: str, *args: Any, **kwargs: Any) -> Any:
        if called == handle and pending:
            pending.pop()()
        return real(self, called, *args, **kwargs)

    monkeypatch.setattr(client_module.ManagementClient, name, wrapper)


# ---- 2. publishing an unchanged notiflow re-reads it first -------------------------------------------


def test_publish_of_an_unchanged_draft_never_publishes_a_dashboard_draft_saved_after_the_plan(
    emu: Emulator, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", "a", "b")
    deployed(repo, cli)  # drafts, unpublished
    between_plan_and_deploy(monkeypatch, lambda: emu.dashboard_edit(PROJECT, "a", {"name": "WIP dashboard draft"}))
    run = cli("deploy", repo.path, "--all", "--publish")
    assert run.code == 3 and run.statuses == {"a": "conflict", "b": "published"}, run.report
    state = emu.state()
    assert flows(state)["a"]["published"] is None  # the dashboard's draft did not go live
    entry = run.by_handle["a"]
    assert "changed on the server after the plan read it" in entry["detail"] and "not published" in entry["detail"]
    assert entry["published"] is False
    assert entry["remote_sha_after"] == current(state, "a")["sha"]  # from the fresh read, not the plan
    assert entry["version"] == current(state, "a")["version_number"]
    assert "pushed" not in entry
    assert json.loads(outputs_from_report(run.report, None)["deployed"]) == ["b"]


# ---- 7. a create retried or raced by the same content is "created" -------------------------------------


def test_lost_201_retried_is_created_without_an_overwrite_warning(
    emu: Emulator, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_retries: None
) -> None:
    real = transport_module.Transport.send
    lose = ["a"]

    def send(self: Any, method: str, url: str, **kwargs: Any) -> Any:
        answer = real(self, method, url, **kwargs)
        if method == "PUT" and lose and url.endswith(f"/notiflows/{lose[0]}"):
            lose.pop()
            raise TransportError("connection reset (answer lost)", code="connection_error", method=method,
                                 url=kwargs.get("path", ""))
        return answer

    monkeypatch.setattr(transport_module.Transport, "send", send)
    repo = make_repo(tmp_path / "repo", "a", "b")
    run = cli("deploy", repo.path, "--all", "--concurrency", "1")
    assert run.code == 0 and run.statuses == {"a": "created", "b": "created"}, run.report
    assert successful_puts(emu.requests)["a"] == 2  # the lost 201, then a 200 for the same content
    entry = run.by_handle["a"]
    assert entry["warnings"] == [] and entry["version"] == 1 and entry["remote_sha_before"] is None
    assert "retried or concurrent push of the same content" in entry["detail"]
    assert "overwritten" not in entry["detail"]


def test_a_notiflow_someone_else_created_after_the_plan_is_still_a_warned_overwrite(
    emu: Emulator, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API has no "must not exist" precondition (an expected_sha on a create is a 409 whatever the
    sha), so an overwrite cannot be prevented; it is never silent."""
    repo = make_repo(tmp_path / "repo", "a")
    before_first(monkeypatch, "upsert_notiflow", "a",
                 lambda: emu.create_remote_only(PROJECT, "a", name="Made in the dashboard"))
    run = cli("deploy", repo.path, "--all")
    assert run.status("a") == "updated"
    entry = run.by_handle["a"]
    assert [w["code"] for w in entry["warnings"]] == ["created-over-existing"]
    assert "appeared on the server between the plan and the push and was overwritten" in entry["detail"]


# ---- 10. the report and the outputs say what was written ---------------------------------------------


def _no_template(repo: TestRepo, handle: str) -> None:
    """A channel step without a template: pushable as a draft, refused at publish."""
    path = repo.path / repo.nf_path(handle, "notiflow.json")
    data = json.loads(path.read_text())
    del data["steps"][1]["template"]
    path.write_text(json.dumps(data, indent=2))
    shutil.rmtree(repo.path / repo.nf_path(handle, "steps"))


def test_a_pushed_draft_refused_at_publish_is_in_deployed_and_a_rerun_says_nothing_was_pushed(
    emu: Emulator, cli: Cli, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", "a", "b")
    _no_template(repo, "a")
    repo.commit("a without template")
    run = cli("deploy", repo.path, "--all", "--publish")
    assert run.code == 5 and run.statuses == {"a": "failed", "b": "published"}, run.report
    entry = run.by_handle["a"]
    assert entry["pushed"] is True and entry["remote_sha_after"] == current(emu.state(), "a")["sha"]
    assert "The pushed draft (version 1" in entry["detail"]
    outputs = outputs_from_report(run.report, None)
    assert json.loads(outputs["deployed"]) == ["a", "b"]
    assert json.loads(outputs["changed"]) == ["a", "b"]
    again = cli("deploy", repo.path, "--all", "--publish")
    assert again.status("a") == "failed"
    detail = again.by_handle["a"]["detail"]
    assert "The pushed draft" not in detail and "Nothing was pushed" in detail
    assert "pushed" not in again.by_handle["a"]
    assert json.loads(outputs_from_report(again.report, None)["deployed"]) == []


def test_a_conflict_found_at_push_time_carries_the_server_version(
    emu: Emulator, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", "a", "b")
    deployed(repo, cli)
    set_body(repo, "a", "<p>a2</p>\n")
    set_body(repo, "b", "<p>b2</p>\n")
    repo.commit("edit both")
    emu.dashboard_edit(PROJECT, "b")  # found by the plan
    before_first(monkeypatch, "upsert_notiflow", "a", lambda: emu.dashboard_edit(PROJECT, "a"))  # by the push
    run = cli("deploy", repo.path)
    assert run.statuses == {"a": "conflict", "b": "conflict"}, run.report
    for handle in ("a", "b"):
        entry = run.by_handle[handle]
        assert entry["version"] == entry["version_before"] == current(emu.state(), handle)["version_number"] == 2
    assert "between the plan and the push (409 conflict)" in run.by_handle["a"]["detail"]
