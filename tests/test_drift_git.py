"""Drift on real git repositories against the bundled emulator (loopback HTTP), every class produced
the way it happens in life: deploys at older commits, a dashboard edit, a dashboard-only notiflow."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from emulator_support import PROJECT, TOKEN, running_emulator
from gitutil import TestRepo, clone

from notiflows_deploy.api.client import ManagementClient
from notiflows_deploy.drift import GitHistory, run_drift
from notiflows_deploy.emulator import Emulator
from notiflows_deploy.gitrepo import GitRepo
from notiflows_deploy.loader import load_notiflow
from notiflows_deploy.model import NotiflowOutcome, RunResult, Status

ROOT = ".notiflows/notiflows"


@dataclass
class World:
    repo: TestRepo
    emulator: Emulator
    client: ManagementClient
    git: GitRepo

    @property
    def prefix(self) -> str:
        return self.repo.prefix

    def deploy(self, commit: str, *handles: str, publish: bool = False) -> None:
        """What a deploy at `commit` would have pushed (straight PUTs, no conflict logic)."""
        tree = self.git.tree_at(commit, self.prefix)
        for handle in handles:
            loaded = load_notiflow(tree, notiflows_root=ROOT, handle=handle, env={}, display_prefix=self.prefix)
            assert loaded.ok and loaded.payload is not None, loaded.problems
            self.client.upsert_notiflow(handle, loaded.payload, expected_sha=None)
            if publish:
                self.client.publish_notiflow(handle)

    def drift(self, *, bound: int = 50, concurrency: int = 4) -> tuple[list[NotiflowOutcome], GitHistory]:
        head = self.git.head_sha()
        history = GitHistory(self.git, head=head, project_prefix=self.prefix, notiflows_root=ROOT, env={},
                             display_prefix=self.prefix, bound=bound)
        outcomes = run_drift(repo_tree=self.git.tree_at(head, self.prefix), notiflows_root=ROOT,
                             display_prefix=self.prefix, env={}, client=self.client, git_history_fn=history,
                             concurrency=concurrency)
        return outcomes, history


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    repo = TestRepo(tmp_path / "repo", project="apps/notify")  # a project below the top level
    with running_emulator() as emulator, ManagementClient(emulator.base_url, TOKEN, PROJECT) as client:
        git = GitRepo(repo.path)
        try:
            yield World(repo, emulator, client, git)
        finally:
            git.close()


def edit_body(repo: TestRepo, handle: str, text: str) -> None:
    repo.write(repo.nf_path(handle, "steps/email_1/body.html"), text)


def test_every_class_from_real_history(world: World) -> None:
    repo, emu = world.repo, world.emulator
    first = repo.init_project("welcome", "behind", "edited", "drafty", "broken")
    world.deploy(first, "welcome", "behind", "edited", "broken", publish=True)
    world.deploy(first, "drafty", publish=True)

    # "behind" changes in three commits and is never deployed again; unrelated commits in between
    # (touching other notiflows only) do not count as commits behind for it.
    for n in (1, 2, 3):
        edit_body(repo, "behind", f"<p>behind v{n}</p>\n")
        repo.commit(f"behind v{n}")
        edit_body(repo, "welcome", f"<p>welcome v{n}</p>\n")
        repo.commit(f"welcome v{n}")
    # "drafty": a later revision deployed but not published.
    edit_body(repo, "drafty", "<p>drafty v2</p>\n")
    repo.add_notiflow("fresh")  # never deployed
    repo.write(repo.nf_path("broken", "notiflow.json"), "{ not json\n")
    head = repo.commit("drafty v2, fresh, broken")
    world.deploy(head, "welcome", publish=True)
    world.deploy(head, "drafty")

    # The dashboard: an edit of a repo-managed notiflow, and a notiflow the repo never had.
    emu.dashboard_edit(PROJECT, "edited", {"template_updates": {"email_1": {"subject": "Edited in the dashboard"}}})
    emu.create_remote_only(PROJECT, "dash-only", publish=True)

    before_state = emu.store.snapshot()
    before_count = emu.request_count
    outcomes, history = world.drift()
    by = {o.handle: o for o in outcomes}

    assert {h: o.status for h, o in by.items()} == {
        "welcome": Status.IN_SYNC,
        "drafty": Status.IN_SYNC,
        "behind": Status.UNDEPLOYED,
        "edited": Status.EDITED_REMOTELY,
        "fresh": Status.REPO_ONLY,
        "dash-only": Status.REMOTE_ONLY,
        "broken": Status.INVALID,
    }
    # Deployed three commits ago (of those touching it) and never since.
    behind = by["behind"]
    assert behind.extra["deployed_commit"] == first
    assert behind.extra["commits_behind"] == 3
    assert first[:7] in behind.detail and "3 commits touching this notiflow behind head" in behind.detail
    # ... and 7 commits behind in all: git rev-list --count first..head (the welcome commits count here)
    assert behind.extra["commits_behind_total"] == 7 and "(7 commits behind head in all)" in behind.detail
    assert "behind v3" in behind.diff and "hello" in behind.diff
    # The dashboard edit: content the repo never had, shown as a diff server -> head.
    edited = by["edited"]
    assert "Edited in the dashboard" in edited.diff
    assert "never had in any of the 1 commit touching this notiflow" in edited.detail
    assert "Dashboard User (member)" in edited.detail
    # Unpublished changes: a flag on an in-sync notiflow, not a class.
    assert by["drafty"].extra["unpublished_changes"] is True
    assert by["drafty"].extra["published_version"] == 1 and by["drafty"].extra["current_version"] == 2
    assert "unpublished_changes" not in by["welcome"].extra
    assert by["welcome"].published is True
    # The edit in the dashboard is an unpublished draft too.
    assert by["edited"].extra["unpublished_changes"] is True
    # Published state of notiflows known only from the listing (remote-only, invalid at head): the
    # listing's version ids say they are live; nothing claims "never published".
    assert by["dash-only"].published is True and by["broken"].published is True
    assert "unpublished_changes" not in by["dash-only"].extra
    assert "Never published" not in by["dash-only"].detail + by["broken"].detail
    # Paths are relative to the repository root, for remote-only as well.
    assert by["dash-only"].path == "apps/notify/.notiflows/notiflows/dash-only"
    assert by["behind"].path == "apps/notify/.notiflows/notiflows/behind"
    assert by["broken"].errors and by["broken"].errors[0].file.startswith("apps/notify/")

    # Never writes: state untouched, only GETs (1 listing page + one GET per valid listed repo notiflow).
    assert emu.store.snapshot() == before_state
    requests_made = emu.requests[-(emu.request_count - before_count):]
    assert {r["method"] for r in requests_made} == {"GET"}
    assert emu.request_count - before_count == 1 + 4  # welcome, drafty, behind, edited
    # History only for the two notiflows that differ, in one git log for both.
    assert history.log_calls == 1
    assert history.loads <= 4 + 1  # behind: 3 newer revisions + the match; edited: its single commit

    result = RunResult(mode="drift", notiflows=outcomes)
    assert result.result == "invalid"  # the broken notiflow wins over drift (CONTRACT section 3)
    report = [o.to_dict() for o in outcomes]
    assert any(r["status"] == "undeployed" and r["commits_behind"] == 3 for r in report)


def test_in_sync_project_exits_zero_and_drift_exits_two(world: World) -> None:
    repo = world.repo
    head = repo.init_project("one", "two")
    world.deploy(head, "one", "two", publish=True)
    outcomes, history = world.drift()
    assert [o.status for o in outcomes] == [Status.IN_SYNC, Status.IN_SYNC]
    assert RunResult(mode="drift", notiflows=outcomes).exit_code == 0
    assert history.log_calls == 0  # nothing differs: git history is never read

    world.emulator.create_remote_only(PROJECT, "three")
    outcomes, _ = world.drift()
    result = RunResult(mode="drift", notiflows=outcomes)
    assert result.result == "drift" and result.exit_code == 2
    assert RunResult(mode="drift", notiflows=outcomes, fail_on_drift=False).exit_code == 0


def test_history_search_is_bounded_and_says_so(world: World) -> None:
    repo = world.repo
    first = repo.init_project("long")
    world.deploy(first, "long")
    for n in range(5):
        edit_body(repo, "long", f"<p>long v{n}</p>\n")
        repo.commit(f"long v{n}")
    outcomes, history = world.drift(bound=3)
    (long,) = outcomes
    # The server's revision is 5 commits back, beyond the bound of 3 (head's revision and the 3
    # before it): reported honestly.
    assert long.status is Status.EDITED_REMOTELY
    assert "within the last 4 commits touching this notiflow" in long.detail
    assert long.extra["history_complete"] is False
    assert history.loads == 4
    outcomes, _ = world.drift(bound=10)
    assert outcomes[0].status is Status.UNDEPLOYED and outcomes[0].extra["commits_behind"] == 5
    # A bound of N reaches exactly N commits behind head.
    outcomes, _ = world.drift(bound=5)
    assert outcomes[0].status is Status.UNDEPLOYED and outcomes[0].extra["commits_behind"] == 5
    outcomes, _ = world.drift(bound=4)
    assert outcomes[0].status is Status.EDITED_REMOTELY


def test_runner_style_call_builds_its_own_history(world: World) -> None:
    # runner.run_drift passes repo/head/history_depth instead of a history function.
    repo = world.repo
    first = repo.init_project("one")
    world.deploy(first, "one")
    edit_body(repo, "one", "<p>one v2</p>\n")
    head = repo.commit("one v2")
    kwargs = dict(repo_tree=world.git.tree_at(head, world.prefix), notiflows_root=ROOT, display_prefix=world.prefix,
                  env={}, client=world.client, repo=world.git, head=head, concurrency=2)
    (out,) = run_drift(**kwargs)  # type: ignore[arg-type]
    assert out.status is Status.UNDEPLOYED and out.extra["deployed_commit"] == first
    (out,) = run_drift(**kwargs, history_depth=0)  # type: ignore[arg-type]
    assert out.status is Status.EDITED_REMOTELY and "no git history was searched" in out.detail


def test_many_notiflows_under_a_rate_limit_without_failures(world: World) -> None:
    repo = world.repo
    handles = [f"flow-{i:02d}" for i in range(40)]
    head = repo.init_project(*handles)
    world.deploy(head, *handles)
    # 20 requests per second, 8 workers: 429s are certain; every one must be absorbed by back-off.
    world.emulator.set_faults(rate_limit="20/1", latency_ms=5)
    client = ManagementClient(world.emulator.base_url, TOKEN, PROJECT, concurrency=8)
    world.client = client
    before = len(world.emulator.requests)
    outcomes, _ = world.drift(concurrency=8)
    client.close()
    statuses = [r["status"] for r in world.emulator.requests[before:]]
    assert [o.status for o in outcomes] == [Status.IN_SYNC] * len(handles)
    assert statuses.count(429) > 0, "the test must really hit the rate limit"
    assert set(statuses) == {200, 429}


def shallow_drift(world: World, tmp_path: Path, *, origin: bool) -> tuple[NotiflowOutcome, list[str], str]:
    """"one" deployed at the first commit, changed since; drift in a --depth 1 clone of it."""
    repo = world.repo
    first = repo.init_project("one")
    world.deploy(first, "one")
    edit_body(repo, "one", "<p>one v2</p>\n")
    repo.commit("one v2")
    shallow = clone(repo.path, tmp_path / "shallow", "--depth", "1")
    if not origin:
        shallow.git("remote", "remove", "origin")
    git = GitRepo(shallow.path)
    notes: list[str] = []
    try:
        head = git.head_sha()
        (out,) = run_drift(repo_tree=git.tree_at(head, world.prefix), notiflows_root=ROOT,
                           display_prefix=world.prefix, env={}, client=world.client, repo=git, head=head,
                           notes=notes)
        still_shallow = git.is_shallow()
    finally:
        git.close()
    return out, [n for n in notes if n.startswith("shallow clone")], "shallow" if still_shallow else "deep"


def test_shallow_clone_without_origin_says_the_search_was_cut_short(world: World, tmp_path: Path) -> None:
    out, notes, depth = shallow_drift(world, tmp_path, origin=False)
    # The deployed revision is not in the clone: edited-remotely, and the detail says why it may be wrong.
    assert depth == "shallow"
    assert out.status is Status.EDITED_REMOTELY
    assert "this clone is shallow" in out.detail and out.extra["history_complete"] is False
    # ... and the run says it once, with the fix.
    (note,) = notes
    assert "1 notiflow (one)" in note and "no `origin` remote" in note and "fetch-depth: 0" in note


def test_shallow_clone_with_origin_is_deepened_when_the_history_is_needed(world: World, tmp_path: Path) -> None:
    out, notes, depth = shallow_drift(world, tmp_path, origin=True)
    assert out.status is Status.UNDEPLOYED and out.extra["commits_behind"] == 1
    assert depth == "deep"  # the whole (two-commit) history was fetched
    (note,) = notes
    assert note.startswith("shallow clone: fetched") and "from origin" in note


def test_in_sync_shallow_clone_fetches_nothing(world: World, tmp_path: Path) -> None:
    repo = world.repo
    repo.init_project("one")
    edit_body(repo, "one", "<p>one v2</p>\n")
    head = repo.commit("one v2")
    world.deploy(head, "one")
    shallow = clone(repo.path, tmp_path / "shallow", "--depth", "1")
    git = GitRepo(shallow.path)
    notes: list[str] = []
    try:
        (out,) = run_drift(repo_tree=git.tree_at(head, world.prefix), notiflows_root=ROOT,
                           display_prefix=world.prefix, env={}, client=world.client, repo=git, head=head,
                           notes=notes)
        assert git.is_shallow()  # no history needed: nothing fetched
    finally:
        git.close()
    assert out.status is Status.IN_SYNC and not [n for n in notes if n.startswith("shallow clone")]


def test_one_history_pass_lists_what_a_path_limited_log_lists(world: World) -> None:
    """Branches, a merge that changes a notiflow against both parents, a rename, unrelated commits:
    the single pass gives every handle the commits `git log -- <its directory>` gives it."""
    repo = world.repo
    repo.init_project("alpha", "beta", "gamma")
    for n in range(3):
        repo.write("README.md", f"unrelated {n}\n")
        repo.commit(f"unrelated {n}")
    repo.git("checkout", "-q", "-b", "side")
    edit_body(repo, "alpha", "<p>alpha side</p>\n")
    repo.commit("alpha on side")
    edit_body(repo, "beta", "<p>beta side</p>\n")
    repo.commit("beta on side")
    repo.git("checkout", "-q", "main")
    repo.write(repo.nf_path("alpha", "notiflow.json"), repo.path.joinpath(repo.nf_path("alpha", "notiflow.json"))
               .read_text().replace('"Hi"', '"Hello"'))
    repo.commit("alpha subject on main")
    repo.git("merge", "-q", "--no-edit", "--no-ff", "side")
    edit_body(repo, "alpha", "<p>alpha merged</p>\n")  # the merge result differs from both sides
    repo.git("add", "-A")
    repo.git("commit", "-q", "--amend", "--no-edit")
    repo.git("mv", repo.nf_path("gamma"), repo.nf_path("delta"))
    repo.commit("rename gamma to delta")
    head = world.git.head_sha()
    for bound in (1, 2, 50):
        history = GitHistory(world.git, head=head, project_prefix=world.prefix, notiflows_root=ROOT, env={},
                             display_prefix=world.prefix, bound=bound)
        handles = ["alpha", "beta", "gamma", "delta", "nobody"]
        history.want(handles)
        for handle in handles:
            expected = world.git.log_paths(f"{world.prefix}{ROOT}/{handle}", head, bound + 2)
            assert history.commits(handle) == expected, (bound, handle)
        assert history.log_calls == 1, bound


def test_history_pass_is_capped_and_says_so(world: World) -> None:
    repo = world.repo
    first = repo.init_project("rare", "busy")
    world.deploy(first, "rare")
    edit_body(repo, "rare", "<p>rare v2</p>\n")
    repo.commit("rare v2")
    for n in range(6):  # commits touching the notiflows directory, but not "rare"
        edit_body(repo, "busy", f"<p>busy v{n}</p>\n")
        repo.commit(f"busy v{n}")
    head = world.git.head_sha()
    history = GitHistory(world.git, head=head, project_prefix=world.prefix, notiflows_root=ROOT, env={},
                         display_prefix=world.prefix, max_walk=4)
    (out,) = [o for o in run_drift(repo_tree=world.git.tree_at(head, world.prefix), notiflows_root=ROOT,
                                   display_prefix=world.prefix, env={}, client=world.client,
                                   git_history_fn=history) if o.handle == "rare"]
    # Its revisions lie beyond the 4 commits read: edited-remotely, and honest about it.
    assert out.status is Status.EDITED_REMOTELY
    assert "no commit touching it was found" in out.detail and out.extra["history_complete"] is False
    uncapped = GitHistory(world.git, head=head, project_prefix=world.prefix, notiflows_root=ROOT, env={},
                          display_prefix=world.prefix)
    (out,) = [o for o in run_drift(repo_tree=world.git.tree_at(head, world.prefix), notiflows_root=ROOT,
                                   display_prefix=world.prefix, env={}, client=world.client,
                                   git_history_fn=uncapped) if o.handle == "rare"]
    assert out.status is Status.UNDEPLOYED and out.extra["commits_behind"] == 1
    assert out.extra["commits_behind_total"] == 7
