"""GitRepo on real repositories built with the git CLI (see tests/gitutil.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitutil import TestRepo, clone, run_git

from notiflows_deploy.changes import PathChange, map_changes
from notiflows_deploy.errors import GitError
from notiflows_deploy.files import EntryKind
from notiflows_deploy.github.event import ZERO_SHA, RangeRequest, range_request
from notiflows_deploy.gitrepo import GitRepo, ResolvedRange


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    # The code under test runs git with os.environ: keep the user's config out of it.
    for key in list(os.environ):
        if key.startswith("GIT_") and key != "GIT_PYTHON_REFRESH":
            monkeypatch.delenv(key)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def repo(tmp_path: Path) -> TestRepo:
    return TestRepo(tmp_path / "repo")


@pytest.fixture
def opened(repo: TestRepo) -> Iterator[GitRepo]:
    repo.init_project("welcome", "order-shipped")
    with GitRepo(repo.path) as g:
        yield g


def handles(g: GitRepo, rng: ResolvedRange, t: TestRepo) -> tuple[set[str], set[str], bool]:
    """The notiflows the range changes, the way the CLI will compute them."""
    tree = g.tree_at(rng.head, t.prefix)
    root = f"{t.notiflows_dir}/notiflows"
    cs = map_changes(
        g.changed_paths(rng.base, rng.head), project_prefix=t.prefix, notiflows_dir=t.notiflows_dir,
        exists_at_head=lambda h: tree.kind(f"{root}/{h}/notiflow.json") is EntryKind.FILE,
    )
    return cs.changed, cs.removed, cs.everything or rng.everything


DEFAULT = range_request(None, None)


def push(before: str, after: str, **extra: object) -> RangeRequest:
    return range_request("push", {"ref": "refs/heads/main", "before": before, "after": after, **extra})


# -- opening, basic facts -----------------------------------------------------------------------


def test_open_from_subdirectory_and_prefix(repo: TestRepo) -> None:
    repo.project = "apps/web"
    repo.init_project("a")
    with GitRepo(repo.path / "apps" / "web" / ".notiflows") as g:
        assert g.toplevel == repo.path.resolve()
        assert g.prefix(repo.path / "apps" / "web") == "apps/web/"
        assert g.prefix(repo.path) == ""
        with pytest.raises(GitError):
            g.prefix(repo.path.parent)


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not inside a git work tree"):
        GitRepo(tmp_path)


def test_resolve_and_facts(opened: GitRepo, repo: TestRepo) -> None:
    head = repo.sha()
    assert opened.head_sha() == head
    assert opened.resolve("main") == head
    assert opened.resolve("nope") is None
    assert opened.resolve("--all") is None
    assert opened.resolve("f" * 40) is None
    assert opened.first_parent(head) is None
    assert not opened.is_shallow()
    repo.write("x.txt", "1")
    second = repo.commit()
    assert opened.first_parent(second) == head
    assert opened.is_ancestor(head, second) and not opened.is_ancestor(second, head)
    assert opened.merge_base(head, second) == head


def test_git_errors_are_mapped(opened: GitRepo) -> None:
    with pytest.raises(GitError) as info:
        opened.changed_paths("f" * 40, "HEAD")
    assert "git" in str(info.value) and "Traceback" not in str(info.value)


def test_missing_git_binary(repo: TestRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.init_project("a")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(GitError, match="git executable was not found"):
        GitRepo(repo.path)


# -- changed paths and mapping ------------------------------------------------------------------


def test_changed_paths_statuses_and_rename(repo: TestRepo, opened: GitRepo) -> None:
    base = repo.sha()
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "<p>changed</p>\n")
    repo.git("mv", repo.nf_path("order-shipped"), repo.nf_path("order-sent"))
    repo.add_notiflow("brand-new")
    head = repo.commit()
    changes = opened.changed_paths(base, head)
    by_path = {c.path: c for c in changes}
    assert by_path[repo.nf_path("welcome", "steps/email_1/body.html")].status == "M"
    renamed = by_path[repo.nf_path("order-sent", "notiflow.json")]
    assert renamed.status == "R" and renamed.old_path == repo.nf_path("order-shipped", "notiflow.json")
    assert by_path[repo.nf_path("brand-new", "notiflow.json")].status == "A"
    rng = ResolvedRange(base, head, False)
    assert handles(opened, rng, repo) == ({"welcome", "order-sent", "brand-new"}, {"order-shipped"}, False)


def test_deleted_directory_and_config_change(repo: TestRepo, opened: GitRepo) -> None:
    base = repo.sha()
    repo.remove(repo.nf_path("order-shipped"))
    head = repo.commit()
    assert handles(opened, ResolvedRange(base, head, False), repo) == (set(), {"order-shipped"}, False)
    repo.config({"notiflowsDir": ".notiflows", "project": "other"})
    head2 = repo.commit()
    assert handles(opened, ResolvedRange(head, head2, False), repo)[2] is True


def test_deleting_notiflow_json_only_leaves_a_removal(repo: TestRepo, opened: GitRepo) -> None:
    base = repo.sha()
    repo.remove(repo.nf_path("welcome", "notiflow.json"))
    head = repo.commit()
    assert handles(opened, ResolvedRange(base, head, False), repo) == (set(), {"welcome"}, False)


def test_changed_paths_limited_to_project(repo: TestRepo) -> None:
    repo.project = "apps/web"
    base = repo.init_project("a")
    repo.write("elsewhere/file.txt", "x")
    repo.write(repo.nf_path("a", "steps/email_1/body.html"), "new")
    head = repo.commit()
    with GitRepo(repo.path) as g:
        body = "apps/web/.notiflows/notiflows/a/steps/email_1/body.html"
        assert [c.path for c in g.changed_paths(base, head)] == [body, "elsewhere/file.txt"]
        assert [c.path for c in g.changed_paths(base, head, paths=["apps/web/"])] == [body]
        assert handles(g, ResolvedRange(base, head, False), repo) == ({"a"}, set(), False)


def test_odd_file_names(repo: TestRepo, opened: GitRepo) -> None:
    base = repo.sha()
    weird = repo.nf_path("welcome", "steps/email 1/bödy\t\"q\".html")
    repo.write(weird, "x")
    head = repo.commit()
    assert opened.changed_paths(base, head) == [PathChange("A", weird)]


# -- trees at a commit --------------------------------------------------------------------------


def test_tree_at(repo: TestRepo) -> None:
    repo.project = "proj"
    repo.init_project("welcome")
    repo.symlink(repo.nf_path("welcome", "steps/link.html"), "email_1/body.html")
    repo.symlink(repo.nf_path("welcome", "escape.html"), "../../../../../etc/passwd")
    first = repo.commit("links")
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "<p>v2</p>\n")
    repo.commit("v2")
    with GitRepo(repo.path) as g:
        tree = g.tree_at(first, g.prefix(repo.project_path()))
        nf = ".notiflows/notiflows/welcome"
        assert tree.description == f"commit {first[:7]}"
        assert tree.kind("") is EntryKind.DIR and tree.kind(".") is EntryKind.DIR
        assert tree.kind("notiflows.json") is EntryKind.FILE
        assert tree.kind(f"{nf}/steps") is EntryKind.DIR
        assert tree.kind(f"{nf}/steps/link.html") is EntryKind.SYMLINK
        assert tree.kind(f"{nf}/missing") is EntryKind.MISSING
        assert tree.kind(f"{nf}/notiflow.json/x") is EntryKind.MISSING
        assert tree.kind("../../outside") is EntryKind.MISSING
        assert tree.read_bytes(f"{nf}/steps/email_1/body.html") == b"<p>hello</p>\n"  # the old content
        assert tree.readlink(f"{nf}/steps/link.html") == "email_1/body.html"
        assert tree.read_bytes(f"{nf}/steps/link.html") == b"<p>hello</p>\n"
        assert tree.listdir(nf) == ["escape.html", "notiflow.json", "steps"]
        assert tree.listdir(f"{nf}/notiflow.json") == [] and tree.listdir("nope") == []
        assert tree.listdir("") == [".notiflows", "notiflows.json"]
        with pytest.raises(FileNotFoundError):
            tree.read_bytes(f"{nf}/nope")
        with pytest.raises(IsADirectoryError):
            tree.read_bytes(nf)
        with pytest.raises(OSError):
            tree.readlink(f"{nf}/notiflow.json")
        with pytest.raises(FileNotFoundError):
            tree.read_bytes(f"{nf}/escape.html")
        # sizes come from the object header (files.SizedTree), symlinks followed like read_bytes
        assert tree.size(f"{nf}/steps/email_1/body.html") == len(b"<p>hello</p>\n")
        assert tree.size(f"{nf}/steps/link.html") == len(b"<p>hello</p>\n")
        with pytest.raises(IsADirectoryError):
            tree.size(nf)
        with pytest.raises(FileNotFoundError):
            tree.size(f"{nf}/escape.html")


def test_an_oversized_blob_is_refused_before_it_is_read(repo: TestRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    from notiflows_deploy.gitrepo import GitTree
    from notiflows_deploy.loader import load_notiflow

    repo.init_project("welcome")
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "x" * 5000)
    head = repo.commit("big body")
    read: list[str] = []
    real = GitTree.read_bytes
    monkeypatch.setattr(GitTree, "read_bytes", lambda self, path: read.append(path) or real(self, path))
    with GitRepo(repo.path) as g:
        loaded = load_notiflow(g.tree_at(head, ""), notiflows_root=".notiflows/notiflows", handle="welcome",
                               env={}, max_bytes=4000)
    assert [p.code for p in loaded.problems] == ["pointer-too-large"]
    assert not any(p.endswith("body.html") for p in read)


def test_log_paths(repo: TestRepo, opened: GitRepo) -> None:
    first = repo.sha()
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "2")
    second = repo.commit()
    repo.write("other.txt", "x")
    repo.commit()
    repo.write(repo.nf_path("welcome", "notiflow.json"), "{}")
    fourth = repo.commit()
    assert opened.log_paths(repo.nf_path("welcome"), "HEAD", 10) == [fourth, second, first]
    assert opened.log_paths(repo.nf_path("welcome"), second, 10) == [second, first]
    assert opened.log_paths(repo.nf_path("welcome"), "HEAD", 2) == [fourth, second]
    assert opened.log_paths(repo.nf_path("nobody"), "HEAD", 10) == []


# -- resolve_range: ordinary and hard cases -----------------------------------------------------


def test_default_range_is_head_parent(repo: TestRepo, opened: GitRepo) -> None:
    first = repo.sha()
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "2")
    second = repo.commit()
    rng = opened.resolve_range(DEFAULT)
    assert (rng.base, rng.head, rng.everything) == (first, second, False)
    assert handles(opened, rng, repo) == ({"welcome"}, set(), False)


def test_first_commit_everything_added(repo: TestRepo, opened: GitRepo) -> None:
    rng = opened.resolve_range(DEFAULT)
    assert rng.base is None and not rng.everything and rng.head == repo.sha()
    assert any("first commit" in n for n in rng.notes)
    # notiflows.json is new too, so every notiflow counts anyway
    assert handles(opened, rng, repo) == ({"welcome", "order-shipped"}, set(), True)
    assert all(c.status == "A" for c in opened.changed_paths(None, rng.head))


def test_detached_head(repo: TestRepo, opened: GitRepo) -> None:
    first = repo.sha()
    repo.write(repo.nf_path("welcome", "notiflow.json"), "{}")
    second = repo.commit()
    repo.write("x", "x")
    repo.commit()
    repo.git("checkout", "-q", "--detach", second)
    rng = opened.resolve_range(DEFAULT)
    assert (rng.base, rng.head) == (first, second)
    assert handles(opened, rng, repo)[0] == {"welcome"}


def test_push_range_with_merge_commit(repo: TestRepo, opened: GitRepo) -> None:
    before = repo.sha()
    repo.git("checkout", "-q", "-b", "feature")
    repo.write(repo.nf_path("order-shipped", "steps/email_1/body.html"), "feature")
    repo.commit("feature work")
    repo.git("checkout", "-q", "main")
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "main work")
    repo.commit("main work")
    repo.git("merge", "-q", "--no-ff", "feature", "-m", "merge feature")
    after = repo.sha()
    rng = opened.resolve_range(push(before, after))
    assert (rng.base, rng.head) == (before, after)
    # before..after covers both sides of the merge
    assert handles(opened, rng, repo)[0] == {"welcome", "order-shipped"}


def test_pull_request_diffs_from_merge_base(repo: TestRepo, opened: GitRepo) -> None:
    fork = repo.sha()
    repo.git("checkout", "-q", "-b", "feature")
    repo.write(repo.nf_path("order-shipped", "steps/email_1/body.html"), "pr change")
    pr_head = repo.commit("pr")
    repo.git("checkout", "-q", "main")
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "main moved on")
    base_tip = repo.commit("main moved")
    req = range_request("pull_request", {"pull_request": {"base": {"sha": base_tip}, "head": {"sha": pr_head}}},
                        github_sha="d" * 40)
    rng = opened.resolve_range(req)
    assert (rng.base, rng.head) == (fork, pr_head)
    assert any("merge base" in n for n in rng.notes) and any("dddddddddddd" in n for n in rng.notes)
    # the PR's own change only; main's later change is not part of it
    assert handles(opened, rng, repo)[0] == {"order-shipped"}


def test_new_branch_uses_merge_base_with_default_branch(repo: TestRepo, opened: GitRepo) -> None:
    repo.write("x", "1")
    fork = repo.commit()
    repo.git("checkout", "-q", "-b", "feature")
    repo.add_notiflow("feat-one")
    repo.commit("one")
    repo.write(repo.nf_path("welcome", "notiflow.json"), "{}")
    head = repo.commit("two")
    req = range_request("push", {"ref": "refs/heads/feature", "before": ZERO_SHA, "after": head, "created": True})
    rng = opened.resolve_range(req)
    assert (rng.base, rng.head) == (fork, head)
    assert any("default branch main" in n for n in rng.notes)
    assert handles(opened, rng, repo)[0] == {"feat-one", "welcome"}


def test_new_branch_with_payload_default_branch(repo: TestRepo, opened: GitRepo) -> None:
    fork = repo.sha()
    repo.git("branch", "-m", "main", "trunk")
    repo.git("checkout", "-q", "-b", "feature")
    repo.add_notiflow("feat-one")
    head = repo.commit()
    req = range_request("push", {"ref": "refs/heads/feature", "before": ZERO_SHA, "after": head,
                                 "repository": {"default_branch": "trunk"}})
    rng = opened.resolve_range(req)
    assert rng.base == fork and any("trunk" in n for n in rng.notes)


def test_new_branch_without_default_branch_uses_first_parent(repo: TestRepo, opened: GitRepo) -> None:
    repo.git("branch", "-m", "main", "feature")
    repo.write("x", "1")
    middle = repo.commit()
    repo.add_notiflow("feat-one")
    head = repo.commit()
    req = range_request("push", {"ref": "refs/heads/feature", "before": ZERO_SHA, "after": head})
    rng = opened.resolve_range(req)
    # Nothing to compare with: every notiflow counts, the first parent only decides "ours".
    assert rng.base == middle and rng.everything
    assert any("no default branch" in n and "first parent" in n for n in rng.notes)


def test_first_push_of_default_branch_is_not_compared_with_itself(repo: TestRepo, opened: GitRepo) -> None:
    # A new repository with several commits, main pushed for the first time: all of it is new,
    # not only the last commit (which touches one notiflow).
    repo.add_notiflow("added-later")
    repo.commit("second")
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "third")
    head = repo.commit("third")
    req = range_request("push", {"ref": "refs/heads/main", "before": ZERO_SHA, "after": head, "created": True,
                                 "repository": {"default_branch": "main"}})
    rng = opened.resolve_range(req)
    assert rng.base is None and rng.everything and rng.head == head
    assert any("first push of the default branch main" in n for n in rng.notes)
    assert not any("no default branch" in n for n in rng.notes)


def test_new_branch_at_default_tip_changes_nothing(repo: TestRepo, opened: GitRepo) -> None:
    head = repo.sha()
    repo.git("branch", "feature")
    req = range_request("push", {"ref": "refs/heads/feature", "before": ZERO_SHA, "after": head})
    rng = opened.resolve_range(req)
    assert rng.base == head and handles(opened, rng, repo) == (set(), set(), False)


def test_only_the_test_merge_commit_adds_its_first_parent_as_ours(repo: TestRepo, opened: GitRepo) -> None:
    """GITHUB_SHA names a merge on main that is not the pull request's test merge commit (its second
    parent is not the head): its first parent is an older main, never "ours"."""
    fork = repo.sha()
    repo.git("checkout", "-q", "-b", "feature")
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "pr")
    pr_head = repo.commit("pr")
    repo.git("checkout", "-q", "main")
    repo.write(repo.nf_path("order-shipped", "steps/email_1/body.html"), "m1")
    m1 = repo.commit("m1")
    repo.git("checkout", "-q", "-b", "side", fork)
    repo.write(repo.nf_path("order-shipped", "steps/email_1/body.html"), "side")
    repo.commit("side")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-X", "theirs", "-m", "merge side", "side")
    m2 = repo.sha()
    payload = {"pull_request": {"base": {"sha": m2}, "head": {"sha": pr_head}}}
    rng = opened.resolve_range(range_request("pull_request", payload, github_sha=m2))
    assert [sha for sha, _ in rng.also_ours] == [m2]  # base.sha only, not m1
    assert m1 not in " ".join(rng.notes)
    repo.git("checkout", "-q", "--detach", m2)
    repo.git("merge", "-q", "--no-ff", "-m", "test merge", pr_head)  # refs/pull/N/merge: parents m2, head
    merge = repo.sha()
    rng = opened.resolve_range(range_request("pull_request", payload, github_sha=merge))
    assert [sha for sha, _ in rng.also_ours] == [m2]  # its first parent is base.sha itself


def test_origin_head_naming_the_pushed_branch_is_no_new_branch_base(repo: TestRepo, tmp_path: Path) -> None:
    repo.init_project("welcome")
    head = repo.sha()
    checkout = clone(repo.path, tmp_path / "c")
    with GitRepo(checkout.path) as g:
        assert g.symbolic_target("refs/remotes/origin/HEAD") == "refs/remotes/origin/main"
        rng = g.resolve_range(range_request("push", {"ref": "refs/heads/main", "before": ZERO_SHA, "after": head,
                                                     "created": True}))
    assert rng.base is None and rng.everything and rng.head == head


def test_renamed_from_finds_a_moved_file(repo: TestRepo, opened: GitRepo) -> None:
    base = repo.sha()
    (repo.path / "apps").mkdir()
    repo.git("mv", "notiflows.json", "apps/notiflows.json")
    head = repo.commit("move")
    assert opened.renamed_from(base, head, "apps/notiflows.json") == "notiflows.json"
    assert opened.renamed_from(base, head, "other.json") is None


def test_force_push_diffs_before_and_after_directly(repo: TestRepo, opened: GitRepo) -> None:
    fork = repo.sha()
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "old attempt")
    old_tip = repo.commit("old")
    repo.git("reset", "-q", "--hard", fork)
    repo.write(repo.nf_path("order-shipped", "steps/email_1/body.html"), "rewritten")
    new_tip = repo.commit("new")
    rng = opened.resolve_range(push(old_tip, new_tip, forced=True))
    # The server holds old_tip's content: welcome must go back too, not only the new commit's change.
    assert (rng.base, rng.head, rng.everything) == (old_tip, new_tip, False)
    assert any("not an ancestor" in n and "directly" in n for n in rng.notes)
    assert handles(opened, rng, repo)[0] == {"welcome", "order-shipped"}


def test_force_push_that_only_reverts_commits(repo: TestRepo, opened: GitRepo) -> None:
    """`git reset --hard HEAD~2 && git push --force`: the new tip is an ancestor of `before`."""
    keep = repo.sha()
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "dropped 1")
    repo.commit("dropped 1")
    repo.add_notiflow("dropped-new")
    dropped = repo.commit("dropped 2")
    repo.git("reset", "-q", "--hard", keep)
    rng = opened.resolve_range(push(dropped, keep, forced=True))
    assert (rng.base, rng.head) == (dropped, keep)
    assert handles(opened, rng, repo) == ({"welcome"}, {"dropped-new"}, False)


def test_force_push_before_absent_uses_first_parent(repo: TestRepo, opened: GitRepo) -> None:
    repo.write("x", "1")
    parent = repo.commit()
    repo.write(repo.nf_path("welcome", "notiflow.json"), "{}")
    head = repo.commit()
    rng = opened.resolve_range(push("e" * 40, head, forced=True))
    assert rng.base == parent
    assert any("not in the repository" in n and "first parent" in n and "not seen" in n for n in rng.notes)


def test_deleted_branch_changes_nothing(opened: GitRepo, repo: TestRepo) -> None:
    req = range_request("push", {"ref": "refs/heads/x", "before": repo.sha(), "after": ZERO_SHA, "deleted": True})
    rng = opened.resolve_range(req)
    assert rng.base == rng.head == repo.sha() and not rng.everything


def test_schedule_and_all_flag_mean_everything(opened: GitRepo, repo: TestRepo) -> None:
    rng = opened.resolve_range(range_request("schedule", {}, github_sha=repo.sha()))
    assert rng.everything and rng.base is None and rng.head == repo.sha()  # a root commit: no base
    rng = opened.resolve_range(DEFAULT, all_flag=True)
    assert rng.everything and any("--all" in n for n in rng.notes)


def test_everything_keeps_a_base_for_the_conflict_rule(opened: GitRepo, repo: TestRepo) -> None:
    first = repo.sha()
    repo.write("x", "1")
    second = repo.commit()
    repo.write("y", "1")
    third = repo.commit()
    for name in ("schedule", "workflow_dispatch"):
        rng = opened.resolve_range(range_request(name, {}, github_sha=third))
        assert (rng.base, rng.head, rng.everything) == (second, third, True)
        assert rng.notes == [f"{name} event: every notiflow counts; the first parent {second[:12]} is the base "
                             "for the conflict rule"]
    rng = opened.resolve_range(DEFAULT, all_flag=True)
    assert (rng.base, rng.everything) == (second, True)
    assert rng.notes == [f"--all: every notiflow counts; {second[:12]} stays the base for the conflict rule"]
    rng = opened.resolve_range(push(first, third), all_flag=True)
    assert (rng.base, rng.everything) == (first, True)
    rng = opened.resolve_range(DEFAULT, all_flag=True, base_ref_override="no-such-ref")  # --all never fails on it
    assert (rng.base, rng.everything) == (None, True) and "no-such-ref" in rng.notes[-1]


def test_drift_resolves_only_the_head(opened: GitRepo, repo: TestRepo) -> None:
    repo.write("x", "1")
    head = repo.commit()
    rng = opened.resolve_head(DEFAULT)
    assert (rng.base, rng.head, rng.everything, rng.notes) == (None, head, True, [])
    assert opened.resolve_head(push("e" * 40, head)).notes == []


def test_overrides_beat_the_event(repo: TestRepo, opened: GitRepo) -> None:
    first = repo.sha()
    repo.write("a", "1")
    second = repo.commit()
    repo.write("b", "1")
    third = repo.commit()
    req = push(second, third)
    rng = opened.resolve_range(req, base_ref_override=first, head_ref_override="HEAD~1")
    assert (rng.base, rng.head) == (first, second)
    rng = opened.resolve_range(range_request("schedule", {}), base_ref_override="main~2")
    assert (rng.base, rng.head, rng.everything) == (first, third, False)
    with pytest.raises(GitError, match="--base / input base-ref 'no-such-ref' is not a commit"):
        opened.resolve_range(req, base_ref_override="no-such-ref")
    with pytest.raises(GitError, match="--head 'no-such-ref' is not a commit"):
        opened.resolve_range(req, head_ref_override="no-such-ref")
    # The event's reason describes a range that was not used.
    rng = opened.resolve_range(DEFAULT, base_ref_override=first, head_ref_override=third)
    assert not any("no GitHub event" in n or "HEAD~1..HEAD" in n for n in rng.notes)


def test_rollback_range_diffs_the_two_trees(repo: TestRepo, opened: GitRepo) -> None:
    """`plan --base HEAD --head HEAD~1`: the server holds HEAD, deploying HEAD~1 rolls back."""
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "newer")
    repo.commit("newer")
    rng = opened.resolve_range(DEFAULT, base_ref_override="HEAD", head_ref_override="HEAD~1")
    assert (rng.base, rng.head) == (repo.sha(), repo.sha("HEAD~1"))
    assert any("not an ancestor" in n and "rollback" in n for n in rng.notes)
    assert handles(opened, rng, repo)[0] == {"welcome"}


def test_unrelated_override_compares_trees_but_pull_request_needs_history(repo: TestRepo, opened: GitRepo) -> None:
    main = repo.sha()
    repo.git("checkout", "-q", "--orphan", "other")
    repo.git("rm", "-r", "-q", "-f", ".")
    repo.write(repo.nf_path("welcome", "notiflow.json"), "{}")
    other = repo.commit("orphan")
    rng = opened.resolve_range(DEFAULT, base_ref_override="main", head_ref_override=other)
    assert (rng.base, rng.head) == (main, other)
    assert handles(opened, rng, repo) == ({"welcome"}, {"order-shipped"}, True)  # notiflows.json gone too
    pr = range_request("pull_request", {"pull_request": {"base": {"sha": main}, "head": {"sha": other}}})
    with pytest.raises(GitError, match="share no history"):
        opened.resolve_range(pr)


def test_base_branch_only_on_origin(repo: TestRepo, tmp_path: Path) -> None:
    """actions/checkout creates no local branch: `--base main` means origin/main then."""
    repo.init_project("welcome", "order-shipped")
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "on main")
    main = repo.commit("main")
    repo.git("checkout", "-q", "-b", "feature")
    repo.write(repo.nf_path("order-shipped", "steps/email_1/body.html"), "feature")
    feature = repo.commit("feature")
    down = clone(repo.path, tmp_path / "down", "--branch", "feature")
    down.git("branch", "-D", "main", check=False)
    with GitRepo(down.path) as g:
        assert g.resolve("main") is None
        rng = g.resolve_range(DEFAULT, base_ref_override="main")
        assert (rng.base, rng.head) == (main, feature)
        assert any("origin/main" in n and "no local main" in n for n in rng.notes)
        with pytest.raises(GitError, match="--base / input base-ref 'nope' is not a commit in this repository"):
            g.resolve_range(DEFAULT, base_ref_override="nope")


def test_base_branch_fetched_into_a_shallow_pull_request_checkout(repo: TestRepo, tmp_path: Path) -> None:
    repo.init_project("welcome", "order-shipped")
    shas = _history(repo, 3)
    repo.git("checkout", "-q", "-b", "feature")
    repo.add_notiflow("from-pr")
    head = repo.commit("pr")
    down = clone(repo.path, tmp_path / "down", "--depth", "1", "--branch", "feature", "--single-branch")
    with GitRepo(down.path, deepen_start=2) as g:
        assert g.resolve("origin/main") is None
        rng = g.resolve_range(DEFAULT, base_ref_override="main")
        assert (rng.base, rng.head) == (shas[-1], head)
        assert handles(g, rng, down)[0] == {"from-pr"}


# -- shallow clones -----------------------------------------------------------------------------


def _history(repo: TestRepo, n: int) -> list[str]:
    shas = []
    for i in range(n):
        repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), f"v{i}")
        if i == n - 1:
            repo.write(repo.nf_path("order-shipped", "steps/email_1/body.html"), "last")
        shas.append(repo.commit(f"c{i}"))
    return shas


def test_shallow_clone_deepens_from_origin(repo: TestRepo, tmp_path: Path) -> None:
    repo.init_project("welcome", "order-shipped")
    shas = _history(repo, 40)
    down = clone(repo.path, tmp_path / "down", "--depth", "1")
    with GitRepo(down.path, deepen_start=4) as g:
        assert g.is_shallow()
        assert g.resolve(shas[10]) is None
        rng = g.resolve_range(push(shas[10], shas[-1]))
        assert (rng.base, rng.head) == (shas[10], shas[-1])
        assert any("fetched push `before`" in n for n in rng.notes)
        assert handles(g, rng, down) == ({"welcome", "order-shipped"}, set(), False)


def test_shallow_force_push_fetches_a_non_ancestor_before(repo: TestRepo, tmp_path: Path) -> None:
    repo.init_project("welcome", "order-shipped")
    fork = _history(repo, 3)[-1]
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "dropped")
    dropped = repo.commit("dropped")
    repo.git("tag", "keep-dropped")  # still fetchable from origin, as GitHub keeps it for a while
    repo.git("reset", "-q", "--hard", fork)
    repo.write(repo.nf_path("order-shipped", "steps/email_1/body.html"), "new")
    new_tip = repo.commit("new")
    down = clone(repo.path, tmp_path / "down", "--depth", "1", "--no-tags")
    with GitRepo(down.path) as g:
        assert g.resolve(dropped) is None
        rng = g.resolve_range(push(dropped, new_tip, forced=True))
        assert (rng.base, rng.head) == (dropped, new_tip)
        assert handles(g, rng, down)[0] == {"welcome", "order-shipped"}


def test_shallow_clone_default_range_fetches_parent(repo: TestRepo, tmp_path: Path) -> None:
    repo.init_project("welcome", "order-shipped")
    shas = _history(repo, 3)
    down = clone(repo.path, tmp_path / "down", "--depth", "1")
    with GitRepo(down.path, deepen_start=1) as g:
        assert g.first_parent(shas[-1]) is None and g.parents(shas[-1]) == [shas[-2]]
        rng = g.resolve_range(DEFAULT)
        assert (rng.base, rng.head) == (shas[-2], shas[-1])
        assert handles(g, rng, down)[0] == {"welcome", "order-shipped"}


def test_shallow_clone_without_origin_says_fetch_depth(repo: TestRepo, tmp_path: Path) -> None:
    repo.init_project("welcome")
    shas = _history(repo, 5)
    down = clone(repo.path, tmp_path / "down", "--depth", "1")
    down.git("remote", "remove", "origin")
    with GitRepo(down.path) as g, pytest.raises(GitError) as info:
        g.resolve_range(push(shas[0], shas[-1]))
    assert "fetch-depth: 0" in str(info.value) and "shallow" in str(info.value)
    with GitRepo(down.path) as g:
        # no parent reachable: the default range cannot be computed, so every notiflow counts
        rng = g.resolve_range(DEFAULT)
        assert rng.everything and any("shallow" in n for n in rng.notes)


def test_shallow_force_push_with_unfetchable_before(repo: TestRepo, tmp_path: Path) -> None:
    repo.init_project("welcome", "order-shipped")
    shas = _history(repo, 4)
    down = clone(repo.path, tmp_path / "down", "--depth", "1")
    with GitRepo(down.path, deepen_start=2, deepen_attempts=2) as g:
        rng = g.resolve_range(push("e" * 40, shas[-1], forced=True))
        assert rng.base == shas[-2]
        assert any("force-pushed away" in n and "not seen" in n for n in rng.notes)


def test_shallow_pull_request_merge_checkout(repo: TestRepo, tmp_path: Path) -> None:
    """actions/checkout of refs/pull/N/merge with fetch-depth 1: only the merge commit is present."""
    repo.init_project("welcome", "order-shipped")
    _history(repo, 6)
    fork = repo.sha()
    repo.git("checkout", "-q", "-b", "feature")
    repo.add_notiflow("from-pr")
    pr_head = repo.commit("pr")
    repo.git("checkout", "-q", "main")
    base_tip = _history(repo, 5)[-1]
    repo.git("merge", "-q", "--no-ff", "feature", "-m", "test merge")
    merge = repo.sha()
    repo.git("update-ref", "refs/pull/1/merge", merge)
    repo.git("reset", "-q", "--hard", base_tip)

    down = TestRepo(tmp_path / "down")
    down.git("remote", "add", "origin", f"file://{repo.path}")
    down.git("fetch", "-q", "--no-tags", "--depth=1", "origin", "+refs/pull/1/merge:refs/remotes/pull/1/merge")
    down.git("checkout", "-q", "--detach", "refs/remotes/pull/1/merge")
    req = range_request("pull_request", {"pull_request": {"base": {"sha": base_tip}, "head": {"sha": pr_head}}},
                        github_sha=merge)
    with GitRepo(down.path, deepen_start=2) as g:
        assert g.resolve(pr_head) is None
        rng = g.resolve_range(req)
        assert (rng.base, rng.head) == (fork, pr_head)
        assert handles(g, rng, down) == ({"from-pr"}, set(), False)


# -- dubious ownership --------------------------------------------------------------------------


needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")


def _chown_tree(path: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), uid, uid)
    os.lchown(path, uid, uid)


@needs_root
def test_dubious_ownership_handled_without_global_config(repo: TestRepo, tmp_path: Path) -> None:
    base = repo.init_project("welcome")
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "v2")
    head = repo.commit()
    _chown_tree(repo.path, 12345)
    plain = run_git(repo.path, "status", check=False)
    assert plain.returncode != 0 and "dubious ownership" in plain.stderr
    home = tmp_path / "home"
    home.mkdir()
    with GitRepo(repo.path / ".notiflows") as g:
        assert g.head_sha() == head
        rng = g.resolve_range(DEFAULT)
        assert rng.base == base
        assert handles(g, rng, repo) == ({"welcome"}, set(), False)
        assert g.tree_at(base).read_bytes(".notiflows/notiflows/welcome/steps/email_1/body.html") == b"<p>hello</p>\n"
    # still refused outside GitRepo: nothing was trusted globally
    assert run_git(repo.path, "status", check=False).returncode != 0
    assert "GIT_CONFIG_COUNT" not in os.environ


@needs_root
def test_mark_safe_directory_for_child_processes(repo: TestRepo) -> None:
    import subprocess

    from notiflows_deploy.gitrepo import mark_safe_directory

    repo.init_project("welcome")
    _chown_tree(repo.path, 12345)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_CONFIG_")}
    env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="core.abbrev", GIT_CONFIG_VALUE_0="9")
    assert subprocess.run(["git", "status"], cwd=repo.path, env=env, capture_output=True).returncode != 0
    mark_safe_directory(repo.path, env)
    mark_safe_directory(repo.path, env)  # idempotent
    assert env["GIT_CONFIG_COUNT"] == "2" and env["GIT_CONFIG_KEY_0"] == "core.abbrev"
    out = subprocess.run(["git", "log", "-1", "--format=%h"], cwd=repo.path, env=env, capture_output=True, text=True)
    assert out.returncode == 0 and len(out.stdout.strip()) == 9  # the earlier entry still applies


def test_shallow_new_branch_fetches_default_branch(repo: TestRepo, tmp_path: Path) -> None:
    repo.init_project("welcome", "order-shipped")
    _history(repo, 5)
    fork = repo.sha()
    repo.git("checkout", "-q", "-b", "feature")
    repo.add_notiflow("feat-one")
    repo.commit()
    repo.write(repo.nf_path("welcome", "notiflow.json"), "{}")
    head = repo.commit()
    repo.git("checkout", "-q", "main")
    _history(repo, 3)  # main moves on
    down = clone(repo.path, tmp_path / "down", "--depth", "1", "--branch", "feature")
    req = range_request("push", {"ref": "refs/heads/feature", "before": ZERO_SHA, "after": head,
                                 "repository": {"default_branch": "main"}})
    with GitRepo(down.path, deepen_start=2) as g:
        assert g.resolve("origin/main") is None
        rng = g.resolve_range(req)
        assert (rng.base, rng.head) == (fork, head)
        assert any("default branch origin/main" in n for n in rng.notes)
        assert handles(g, rng, down)[0] == {"feat-one", "welcome"}


def test_pull_request_head_unavailable_uses_merge_commit(repo: TestRepo, tmp_path: Path) -> None:
    repo.init_project("welcome", "order-shipped")
    base_tip = _history(repo, 3)[-1]
    repo.git("checkout", "-q", "-b", "feature", "HEAD~1")
    repo.add_notiflow("from-pr")
    repo.commit()
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "feature", "-m", "test merge")
    merge = repo.sha()
    down = clone(repo.path, tmp_path / "down", "--depth", "1")
    gone = "e" * 40  # e.g. a fork's head that cannot be fetched
    req = range_request("pull_request", {"pull_request": {"base": {"sha": base_tip}, "head": {"sha": gone}}},
                        github_sha=merge)
    with GitRepo(down.path, deepen_start=1, deepen_attempts=2) as g:
        rng = g.resolve_range(req)
        assert (rng.base, rng.head) == (base_tip, merge)
        assert any("merge commit" in n and "first parent" in n for n in rng.notes)
        assert handles(g, rng, down)[0] == {"from-pr"}
    down.git("remote", "remove", "origin")
    with GitRepo(down.path) as g, pytest.raises(GitError):
        g.resolve_range(range_request("pull_request", {"pull_request": {"base": {"sha": base_tip},
                                                                        "head": {"sha": gone}}}))


def test_git_imported_lazily_and_missing_binary_is_our_error(repo: TestRepo) -> None:
    import subprocess
    import sys

    repo.init_project("a")
    code = (
        "import sys\n"
        "import notiflows_deploy.gitrepo as m\n"
        "assert 'git' not in sys.modules, 'git imported at module import'\n"
        "from notiflows_deploy.errors import GitError\n"
        "try:\n"
        f"    m.GitRepo({str(repo.path)!r})\n"
        "except GitError as e:\n"
        "    print('GitError:', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GIT_PYTHON_REFRESH"}
    env["PATH"] = "/nonexistent"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "GitError: the git executable was not found" in out.stdout


def test_open_and_not_a_repository_type(repo: TestRepo, tmp_path: Path) -> None:
    from notiflows_deploy.gitrepo import NotAGitRepository

    repo.init_project("a")
    with GitRepo.open(repo.path) as g:
        assert g.prefix_of(repo.path) == ""
    outside = tmp_path / "plain"
    outside.mkdir()
    with pytest.raises(NotAGitRepository):
        GitRepo.open(outside)


def test_worktree_matches(repo: TestRepo, opened: GitRepo) -> None:
    head = repo.sha()
    assert opened.worktree_matches(head)
    repo.write("other/untracked.txt", "x")
    assert not opened.worktree_matches(head)
    assert opened.worktree_matches(head, ".notiflows/")  # only the project's files count
    repo.write(".gitignore", "other/\n")
    repo.commit()
    assert not opened.worktree_matches(head)  # HEAD moved
    head = repo.sha()
    assert opened.worktree_matches(head)  # ignored files do not count
    repo.write(repo.nf_path("welcome", "notiflow.json"), "{}")
    assert not opened.worktree_matches(head) and not opened.worktree_matches(head, ".notiflows")
