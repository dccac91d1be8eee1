"""drift.classify with fakes (pure), and run_drift against a fake read-only client and fake trees."""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

import pytest

from notiflows_deploy.api.errors import ServerError
from notiflows_deploy.api.models import NotiflowSummary, RemoteNotiflow
from notiflows_deploy.drift import (
    HistoryLookup,
    classify,
    counts_by_class,
    publish_state,
    run_drift,
    sort_outcomes,
    unpublished,
)
from notiflows_deploy.files import WorkTree
from notiflows_deploy.loader import LoadedNotiflow
from notiflows_deploy.model import NotiflowOutcome, Problem, RunResult, Status

STEPS: list[dict[str, Any]] = [
    {"handle": "trigger", "type": "trigger", "position": 0},
    {"handle": "email_1", "type": "channel", "position": 1, "channel_type": "email",
     "channel_handle": "transactional-email",
     "template": {"channel_type": "email", "data": {"subject": "Hi", "content_type": "html", "body": "<p>v1</p>"}}},
    {"handle": "end", "type": "end", "position": 2},
]


def payload(body: str = "<p>v1</p>", name: str = "Welcome") -> dict[str, Any]:
    steps = copy.deepcopy(STEPS)
    steps[1]["template"]["data"]["body"] = body
    return {"name": name, "active": True, "steps": steps}


def head(handle: str, data: dict[str, Any] | None, problems: list[Problem] | None = None,
         secrets: frozenset[str] = frozenset()) -> LoadedNotiflow:
    path = f".notiflows/notiflows/{handle}"
    return LoadedNotiflow(handle=handle, path=path, file=path + "/notiflow.json", payload=data, document=data,
                          problems=problems or [], secret_values=secrets)


def version(content: dict[str, Any], number: int, status: str, author: str = "ci-deploy",
            kind: str = "account_token") -> dict[str, Any]:
    steps = copy.deepcopy(content["steps"])
    for step in steps:  # server bookkeeping must not count as a difference
        step["id"] = f"step-{number}-{step['handle']}"
        step["inserted_at"] = "2026-01-01T00:00:00Z"
    return {"sha": f"sha{number}", "status": status, "version_number": number, "valid": True, "steps": steps,
            "id": f"ver{number}", "created_by": {"type": kind, "id": "x", "name": author}}


def remote(handle: str, content: dict[str, Any], *, number: int = 3, published: int | None = None,
           published_content: dict[str, Any] | None = None, author: str = "ci-deploy",
           kind: str = "account_token") -> RemoteNotiflow:
    current_status = "published" if published == number else "draft"
    current = version(content, number, current_status, author, kind)
    pub = None
    if published is not None:
        pub = current if published == number else version(published_content or content, published, "published")
    return RemoteNotiflow.from_json({
        "handle": handle, "name": content.get("name"), "active": content.get("active", True),
        "include_in_preferences": content.get("include_in_preferences", True),
        "has_unpublished_changes": current_status == "draft",
        "current_version_id": current["id"], "published_version_id": pub["id"] if pub else None,
        "current_version": current, "published_version": pub,
    })


def summary_of(r: RemoteNotiflow) -> NotiflowSummary:
    raw = {k: v for k, v in r.raw.items() if k not in ("current_version", "published_version")}
    return NotiflowSummary.from_json(raw)


class Counting:
    """History that records how far it was read."""

    def __init__(self, revisions: list[tuple[str, dict[str, Any] | None]], bound: int = 50) -> None:
        self.listed = 0
        self.loaded: list[str] = []
        payloads = dict(revisions)

        def commits() -> list[str]:
            self.listed += 1
            return [c for c, _ in revisions]

        def load(commit: str) -> dict[str, Any] | None:
            self.loaded.append(commit)
            return payloads[commit]

        self.lookup = HistoryLookup(commits, load, bound=bound)


# ---- classify ------------------------------------------------------------------------------------


def test_in_sync_never_reads_history() -> None:
    hist = Counting([("c0", payload())])
    out = classify("welcome", head("welcome", payload()), remote("welcome", payload(), published=3), hist.lookup)
    assert out.status is Status.IN_SYNC
    assert hist.listed == 0 and hist.loaded == []
    assert out.diff == ""
    assert out.remote_sha_before == "sha3" and out.version == 3 and out.published is True
    assert "unpublished_changes" not in out.extra


def test_a_dashboard_deactivation_is_drift_even_where_the_repo_omits_active() -> None:
    mine = {k: v for k, v in payload().items() if k != "active"}  # active defaults to true
    out = classify("welcome", head("welcome", mine), remote("welcome", {**payload(), "active": False}),
                   Counting([]).lookup)
    assert out.status is Status.EDITED_REMOTELY  # deploy would call this a conflict, so drift must not say in-sync
    same = classify("welcome", head("welcome", mine), remote("welcome", payload()), Counting([]).lookup)
    assert same.status is Status.IN_SYNC


def test_undeployed_names_the_commit_and_distance() -> None:
    hist = Counting([("c0" * 20, payload("<p>v4</p>")), ("c1" * 20, payload("<p>v3</p>")),
                     ("c2" * 20, payload("<p>v2</p>")), ("c3" * 20, payload("<p>v1</p>")),
                     ("c4" * 20, payload("<p>v0</p>"))])
    out = classify("welcome", head("welcome", payload("<p>v4</p>")), remote("welcome", payload("<p>v1</p>")),
                   hist.lookup)
    assert out.status is Status.UNDEPLOYED
    assert out.extra["deployed_commit"] == "c3" * 20
    assert out.extra["commits_behind"] == 3
    assert "c3c3c3c" in out.detail and "3 commits" in out.detail
    # Lazy: stops at the match, never loads older revisions.
    assert hist.loaded == ["c0" * 20, "c1" * 20, "c2" * 20, "c3" * 20]
    # The diff goes server -> head.
    assert "v1" in out.diff and "v4" in out.diff
    assert out.diff.index("v1") < out.diff.index("v4")


def test_undeployed_one_commit_behind_singular() -> None:
    hist = HistoryLookup.of([("aaa", payload("<p>v2</p>")), ("bbb", payload("<p>v1</p>"))])
    out = classify("welcome", head("welcome", payload("<p>v2</p>")), remote("welcome", payload("<p>v1</p>")), hist)
    assert out.status is Status.UNDEPLOYED and out.extra["commits_behind"] == 1
    assert "1 commit touching" in out.detail


def test_edited_remotely_complete_history() -> None:
    edited = payload("<p>typo fixed in the dashboard</p>")
    hist = HistoryLookup.of([("aaa", payload("<p>v2</p>")), ("bbb", payload("<p>v1</p>"))])
    out = classify("welcome", head("welcome", payload("<p>v2</p>")),
                   remote("welcome", edited, author="Dashboard User", kind="member"), hist)
    assert out.status is Status.EDITED_REMOTELY
    assert "never had in any of the 2 commits" in out.detail
    assert "Dashboard User (member)" in out.detail
    assert out.extra["history_searched"] == 2 and out.extra["history_complete"] is True
    assert "typo fixed" in out.diff


def test_edited_remotely_says_the_bound_honestly() -> None:
    revisions: list[tuple[str, dict[str, Any] | None]] = [(f"c{i:02d}", payload(f"<p>r{i}</p>")) for i in range(6)]
    hist = Counting(revisions, bound=4)
    out = classify("welcome", head("welcome", payload("<p>r0</p>")), remote("welcome", payload("<p>r5</p>")),
                   hist.lookup)
    # r5 is 5 behind head, beyond a bound of 4 (head's revision and the 4 before it): edited-remotely,
    # and the detail says "within the last 5".
    assert out.status is Status.EDITED_REMOTELY
    assert "within the last 5 commits touching this notiflow" in out.detail
    assert out.extra["history_complete"] is False
    assert hist.loaded == ["c00", "c01", "c02", "c03", "c04"]


@pytest.mark.parametrize("behind", [1, 2, 3])
def test_a_bound_of_n_finds_a_revision_n_commits_behind_head(behind: int) -> None:
    """--history-depth N searches N commits behind head (the one at head plus N older ones)."""
    revisions: list[tuple[str, dict[str, Any] | None]] = [(f"c{i:02d}", payload(f"<p>r{i}</p>")) for i in range(6)]
    server = remote("welcome", payload(f"<p>r{behind}</p>"))
    found = classify("welcome", head("welcome", payload("<p>r0</p>")), server, Counting(revisions, bound=behind).lookup)
    assert found.status is Status.UNDEPLOYED and found.extra["commits_behind"] == behind
    short = classify("welcome", head("welcome", payload("<p>r0</p>")), server,
                     Counting(revisions, bound=behind - 1).lookup)
    assert short.status is Status.EDITED_REMOTELY


def test_edited_remotely_without_history() -> None:
    out = classify("welcome", head("welcome", payload("<p>v2</p>")), remote("welcome", payload("<p>x</p>")),
                   HistoryLookup.empty())
    assert out.status is Status.EDITED_REMOTELY
    assert "no git history was searched" in out.detail


def test_shallow_history_is_called_incomplete() -> None:
    hist = HistoryLookup(lambda: ["aaa"], lambda _c: payload("<p>v2</p>"), shallow=True)
    out = classify("welcome", head("welcome", payload("<p>v2</p>")), remote("welcome", payload("<p>x</p>")), hist)
    assert "shallow" in out.detail and out.extra["history_complete"] is False


def test_history_revisions_without_payload_are_skipped() -> None:
    hist = HistoryLookup.of([("aaa", None), ("bbb", payload("<p>v1</p>"))])
    out = classify("welcome", head("welcome", payload("<p>v2</p>")), remote("welcome", payload("<p>v1</p>")), hist)
    assert out.status is Status.UNDEPLOYED and out.extra["deployed_commit"] == "bbb"


def test_repo_only_and_remote_only() -> None:
    out = classify("new-one", head("new-one", payload()), None, HistoryLookup.empty())
    assert out.status is Status.REPO_ONLY and out.path == ".notiflows/notiflows/new-one"
    r = remote("dash", payload(), number=1, published=None)
    out = classify("dash", None, RemoteNotiflow.from_json(summary_of(r).raw), HistoryLookup.empty(),
                   path=".notiflows/notiflows/dash")
    assert out.status is Status.REMOTE_ONLY and out.path == ".notiflows/notiflows/dash"
    assert out.extra["unpublished_changes"] is True
    with pytest.raises(ValueError):
        classify("none", None, None, HistoryLookup.empty())


def test_invalid_head_keeps_its_problems_and_skips_comparison() -> None:
    problem = Problem(".notiflows/notiflows/bad/notiflow.json", 3, 5, "schema", "steps must be an array")
    hist = Counting([("aaa", payload())])
    out = classify("bad", head("bad", None, [problem]), remote("bad", payload()), hist.lookup)
    assert out.status is Status.INVALID and out.errors == [problem]
    assert hist.listed == 0


def test_unpublished_flag_is_a_flag_not_a_class() -> None:
    r = remote("welcome", payload("<p>v2</p>"), number=4, published=2, published_content=payload("<p>v1</p>"))
    out = classify("welcome", head("welcome", payload("<p>v2</p>")), r, HistoryLookup.empty())
    assert out.status is Status.IN_SYNC
    assert out.extra == {"unpublished_changes": True, "never_published": False, "published_version": 2,
                         "current_version": 4}
    assert "published version (v2) differs from the current draft (v4)" in out.detail
    never = classify("welcome", head("welcome", payload()), remote("welcome", payload(), number=1),
                     HistoryLookup.empty())
    assert never.extra["published_version"] is None and never.extra["never_published"] is True
    assert "Never published" in never.detail
    assert publish_state(remote("w", payload(), number=2, published=2)) == {}


def listing_item(**fields: Any) -> RemoteNotiflow:
    """What drift knows of a notiflow from the listing alone: metadata and version ids, no versions."""
    return RemoteNotiflow.from_json({"handle": "dash", "name": "Dash", "active": True, **fields})


@pytest.mark.parametrize(
    ("fields", "published", "flags", "sentence"),
    [
        # published and not edited since: live, nothing to flag
        ({"current_version_id": "v2", "published_version_id": "v2", "has_unpublished_changes": False},
         True, {}, ""),
        # a fresh draft made by the publish: an id of its own, and the server says nothing is unpublished
        ({"current_version_id": "v3", "published_version_id": "v2", "has_unpublished_changes": False},
         True, {}, ""),
        # published, then a newer draft: the listing has a published version, so never "never published"
        ({"current_version_id": "v3", "published_version_id": "v2", "has_unpublished_changes": True},
         False, {"unpublished_changes": True, "never_published": False, "published_version": None,
                 "current_version": None}, "The published version differs from the current draft."),
        ({"current_version_id": "v3", "published_version_id": "v2"},  # the ids alone say it
         False, {"unpublished_changes": True, "never_published": False, "published_version": None,
                 "current_version": None}, "The published version differs from the current draft."),
        # the listing shows no published version: that is the evidence for "never published"
        ({"current_version_id": "v1", "published_version_id": None, "has_unpublished_changes": True},
         False, {"unpublished_changes": True, "never_published": True, "published_version": None,
                 "current_version": None}, "Never published: the current draft is not live."),
        # a listing that does not say: only what it does say
        ({"has_unpublished_changes": True},
         False, {"unpublished_changes": True, "never_published": None, "published_version": None,
                 "current_version": None}, "The current draft has unpublished changes."),
    ],
)
def test_remote_only_publish_state_comes_from_the_listing(fields: dict[str, Any], published: bool,
                                                          flags: dict[str, Any], sentence: str) -> None:
    out = classify("dash", None, listing_item(**fields), HistoryLookup.empty(), path=".notiflows/notiflows/dash")
    assert out.status is Status.REMOTE_ONLY
    assert out.published is published
    assert out.extra == flags
    if sentence:
        assert out.detail.endswith(sentence)
    else:
        assert "publish" not in out.detail.lower()
    if not flags.get("never_published"):
        assert "Never published" not in out.detail


def test_fresh_draft_equal_to_the_published_version_is_live() -> None:
    data = payload()
    current = version(data, 2, "draft")
    published = {**version(data, 1, "published"), "sha": current["sha"]}
    r = RemoteNotiflow.from_json({"handle": "welcome", "name": "Welcome", "active": True,
                                  "has_unpublished_changes": False, "current_version": current,
                                  "published_version": published})
    out = classify("welcome", head("welcome", data), r, HistoryLookup.empty())
    assert out.status is Status.IN_SYNC and out.published is True
    assert "unpublished_changes" not in out.extra and "publish" not in out.detail.lower()


def test_invalid_head_takes_the_publish_state_from_the_listing(tmp_path: Path) -> None:
    write_notiflow(tmp_path, "broken", "<p>v1</p>")
    (tmp_path / ".notiflows/notiflows/broken/notiflow.json").write_text("{not json")
    published_then_edited = remote("broken", payload("<p>v2</p>"), number=3, published=2,
                                   published_content=payload())
    (out,) = run_drift(repo_tree=WorkTree(tmp_path), notiflows_root=".notiflows/notiflows", env={},
                       client=FakeClient({"broken": published_then_edited}), git_history_fn=None)
    assert out.status is Status.INVALID
    assert "Never published" not in out.detail
    assert "The published version differs from the current draft." in out.detail
    assert out.extra["never_published"] is False and out.published is False


def test_undeployed_says_how_many_commits_behind_in_all() -> None:
    revisions = [("aaa" * 13 + "a", payload("<p>v3</p>")), ("bbb" * 13 + "b", payload("<p>v2</p>")),
                 ("ccc" * 13 + "c", payload("<p>v1</p>"))]
    hist = HistoryLookup.of(revisions, totals={"ccc" * 13 + "c": 9})
    out = classify("welcome", head("welcome", payload("<p>v3</p>")), remote("welcome", payload("<p>v1</p>")), hist)
    assert out.extra["commits_behind"] == 2 and out.extra["commits_behind_total"] == 9
    assert "2 commits touching this notiflow behind head (9 commits behind head in all)" in out.detail
    unknown = classify("welcome", head("welcome", payload("<p>v3</p>")), remote("welcome", payload("<p>v1</p>")),
                       HistoryLookup.of(revisions))
    assert unknown.extra["commits_behind_total"] is None and "in all" not in unknown.detail
    assert unknown.to_dict()["commits_behind_total"] is None  # always in the report, null when unknown


def test_secrets_are_masked_in_the_diff() -> None:
    secret = "sk_live_very_secret"
    mine = payload(f"<p>{secret}</p>")
    out = classify("welcome", head("welcome", mine, secrets=frozenset({secret})),
                   remote("welcome", payload("<p>old</p>")), HistoryLookup.empty())
    assert secret not in out.diff and "***" in out.diff
    assert secret not in str(out.to_dict())


def test_sorting_and_counts() -> None:
    outs = [NotiflowOutcome("z", Status.IN_SYNC, "p"), NotiflowOutcome("b", Status.REMOTE_ONLY, "p"),
            NotiflowOutcome("a", Status.REMOTE_ONLY, "p"), NotiflowOutcome("c", Status.EDITED_REMOTELY, "p",
                                                                           detail="edited")]
    ordered = sort_outcomes(outs)
    assert [o.handle for o in ordered] == ["c", "a", "b", "z"]
    assert counts_by_class(ordered) == {"edited-remotely": 1, "remote-only": 2, "in-sync": 1}
    assert RunResult(mode="drift", notiflows=ordered).handles(Status.REMOTE_ONLY) == ["a", "b"]


# ---- run_drift with a fake client ----------------------------------------------------------------


class FakeClient:
    """Read-only fake: records calls; has no write methods at all."""

    def __init__(self, remotes: dict[str, RemoteNotiflow], failing: set[str] | None = None) -> None:
        self.remotes = remotes
        self.failing = failing or set()
        self.gets: list[str] = []
        self.lists = 0
        self.lock = threading.Lock()

    def list_notiflows(self, limit: int = 100) -> list[NotiflowSummary]:
        self.lists += 1
        return [summary_of(r) for _, r in sorted(self.remotes.items())]

    def get_notiflow(self, handle: str) -> RemoteNotiflow | None:
        with self.lock:
            self.gets.append(handle)
        if handle in self.failing:
            raise ServerError("boom", code="internal_error", status=500, method="GET", url=f"/x/{handle}")
        return self.remotes.get(handle)


def write_notiflow(root: Path, handle: str, body: str, name: str = "Welcome") -> None:
    d = root / ".notiflows" / "notiflows" / handle
    (d / "steps" / "email_1").mkdir(parents=True, exist_ok=True)
    doc = payload(name=name)
    doc["steps"][1]["template"]["data"].pop("body")
    doc["steps"][1]["template"]["data"]["body@"] = "steps/email_1/body.html"
    import json

    (d / "notiflow.json").write_text(json.dumps(doc))
    (d / "steps" / "email_1" / "body.html").write_text(body)


def test_run_drift_classifies_everything_and_only_reads(tmp_path: Path) -> None:
    write_notiflow(tmp_path, "same", "<p>v1</p>")
    write_notiflow(tmp_path, "behind", "<p>v3</p>")
    write_notiflow(tmp_path, "edited", "<p>v1</p>")
    write_notiflow(tmp_path, "fresh", "<p>v1</p>")
    write_notiflow(tmp_path, "broken", "<p>v1</p>")
    (tmp_path / ".notiflows/notiflows/broken/notiflow.json").write_text("{not json")
    write_notiflow(tmp_path, "flaky", "<p>v1</p>")
    client = FakeClient({
        "same": remote("same", payload()),
        "behind": remote("behind", payload("<p>v1</p>")),
        "edited": remote("edited", payload("<p>dashboard</p>")),
        "broken": remote("broken", payload()),
        "flaky": remote("flaky", payload()),
        "dash-only": remote("dash-only", payload(), number=1, published=1),
    }, failing={"flaky"})
    histories: dict[str, Counting] = {
        "behind": Counting([("h3", payload("<p>v3</p>")), ("h2", payload("<p>v2</p>")), ("h1", payload("<p>v1</p>"))]),
        "edited": Counting([("e1", payload("<p>v1</p>"))]),
    }
    asked: list[str] = []

    def history(handle: str) -> HistoryLookup:
        asked.append(handle)
        return histories[handle].lookup if handle in histories else Counting([]).lookup

    outs = run_drift(repo_tree=WorkTree(tmp_path), notiflows_root=".notiflows/notiflows", env={},
                     client=client, git_history_fn=history, concurrency=3)
    by = {o.handle: o for o in outs}
    assert {h: o.status for h, o in by.items()} == {
        "same": Status.IN_SYNC, "behind": Status.UNDEPLOYED, "edited": Status.EDITED_REMOTELY,
        "fresh": Status.REPO_ONLY, "broken": Status.INVALID, "flaky": Status.FAILED,
        "dash-only": Status.REMOTE_ONLY,
    }
    assert by["behind"].extra["commits_behind"] == 2 and by["behind"].extra["deployed_commit"] == "h1"
    assert by["dash-only"].path == ".notiflows/notiflows/dash-only"
    assert by["flaky"].errors and "boom" in by["flaky"].errors[0].message
    assert by["broken"].errors
    # One listing; GETs only for valid repo notiflows that are listed (no GET for repo-only, invalid,
    # or remote-only ones); history only for the ones that differ.
    assert client.lists == 1
    assert sorted(client.gets) == ["behind", "edited", "flaky", "same"]
    assert histories["behind"].listed == 1 and histories["edited"].listed == 1
    assert histories["behind"].loaded == ["h3", "h2", "h1"]
    assert [o.status for o in outs] == sorted((o.status for o in outs),
                                              key=lambda s: [Status.INVALID, Status.FAILED, Status.EDITED_REMOTELY,
                                                             Status.UNDEPLOYED, Status.REPO_ONLY, Status.REMOTE_ONLY,
                                                             Status.IN_SYNC].index(s))
    result = RunResult(mode="drift", notiflows=outs)
    assert result.result == "invalid"  # precedence of CONTRACT section 3: invalid beats failed and drift


def test_run_drift_exit_code_for_pure_drift(tmp_path: Path) -> None:
    write_notiflow(tmp_path, "same", "<p>v1</p>")
    client = FakeClient({"same": remote("same", payload()), "other": remote("other", payload())})
    outs = run_drift(repo_tree=WorkTree(tmp_path), notiflows_root=".notiflows/notiflows", env={},
                     client=client, git_history_fn=None)
    assert [o.status for o in outs] == [Status.REMOTE_ONLY, Status.IN_SYNC]
    assert RunResult(mode="drift", notiflows=outs).exit_code == 2
    assert RunResult(mode="drift", notiflows=outs, fail_on_drift=False).exit_code == 0
    client2 = FakeClient({"same": remote("same", payload())})
    outs2 = run_drift(repo_tree=WorkTree(tmp_path), notiflows_root=".notiflows/notiflows", env={},
                      client=client2, git_history_fn=None)
    assert RunResult(mode="drift", notiflows=outs2).result == "success"
    assert RunResult(mode="drift", notiflows=outs2).exit_code == 0


def test_run_drift_hands_substituted_secrets_to_the_caller(tmp_path: Path) -> None:
    secret = "sk_live_0123456789"
    write_notiflow(tmp_path, "keyed", "<p>key ${API_KEY}</p>")
    client = FakeClient({"keyed": remote("keyed", payload("<p>key old</p>"))})
    collected: set[str] = set()
    (out,) = run_drift(repo_tree=WorkTree(tmp_path), notiflows_root=".notiflows/notiflows", env={"API_KEY": secret},
                       client=client, git_history_fn=None, secrets=collected)
    assert out.status is Status.EDITED_REMOTELY
    assert secret not in out.diff and "***" in out.diff
    assert collected == {secret}
    assert secret not in str(out.to_dict())


def test_rotated_secret_on_the_server_is_masked_in_the_drift_diff() -> None:
    old, new = "<p>key sk_OLD_rotated_111</p>", "<p>key sk_NEW_current_222</p>"
    loaded = head("welcome", payload(new), secrets=frozenset({"sk_NEW_current_222"}))
    loaded.substituted_paths = frozenset({("steps", 1, "template", "data", "body")})
    out = classify("welcome", loaded, remote("welcome", payload(old)), HistoryLookup.empty())
    assert out.status is Status.EDITED_REMOTELY  # compared on the real values
    text = str(out.to_dict())
    assert "sk_OLD_rotated_111" not in text and "sk_NEW_current_222" not in text
    assert out.diff == ('~ step email_1 (channel/email)\n'
                        '    template.data.body: "***" -> "***" (changed; the value holds a secret)')
    same = classify("welcome", loaded, remote("welcome", payload(new)), HistoryLookup.empty())
    assert same.status is Status.IN_SYNC


def test_run_drift_masks_a_rotated_secret_from_an_extracted_file(tmp_path: Path) -> None:
    old_key, new_key = "sk_live_OLD_0001", "sk_live_NEW_0002"
    write_notiflow(tmp_path, "keyed", "<p>key ${API_KEY}</p>")
    client = FakeClient({"keyed": remote("keyed", payload(f"<p>key {old_key}</p>", name="Renamed"))})
    collected: set[str] = set()
    (out,) = run_drift(repo_tree=WorkTree(tmp_path), notiflows_root=".notiflows/notiflows", env={"API_KEY": new_key},
                       client=client, git_history_fn=None, secrets=collected)
    # the old value is read out of the server's text (it fits the repo's "<p>key ${API_KEY}</p>")
    assert collected == {new_key, old_key}
    text = str(out.to_dict())
    assert old_key not in text and new_key not in text
    # the text around the variable shows; the values (which differ) do not
    assert 'template.data.body: "<p>key ***</p>" -> "<p>key ***</p>" (changed; the value holds a secret)' in out.diff
    assert 'name: "Renamed" -> "Welcome"' in out.diff  # fields without a secret are shown as before


def test_run_drift_notes_count_unpublished_drafts(tmp_path: Path) -> None:
    write_notiflow(tmp_path, "live", "<p>v1</p>")
    write_notiflow(tmp_path, "drafty", "<p>v1</p>")
    client = FakeClient({
        "live": remote("live", payload(), published=3),
        "drafty": remote("drafty", payload(), number=4, published=2, published_content=payload("<p>old</p>")),
        "dash": remote("dash", payload(), number=1),  # remote-only, never published
    })
    notes: list[str] = []
    outs = run_drift(repo_tree=WorkTree(tmp_path), notiflows_root=".notiflows/notiflows", env={},
                     client=client, git_history_fn=None, notes=notes)
    assert unpublished(outs) == ["dash", "drafty"]
    assert notes == ["unpublished changes: the current draft is not the published version for 2 notiflows "
                     "(dash, drafty)"]
    quiet: list[str] = []
    run_drift(repo_tree=WorkTree(tmp_path), notiflows_root=".notiflows/notiflows", env={},
              client=FakeClient({"live": remote("live", payload(), published=3)}), git_history_fn=None, notes=quiet)
    assert quiet == []


class ListingDown(FakeClient):
    """The listing fails after retries; GETs of single notiflows still answer."""

    def list_notiflows(self, limit: int = 100) -> list[NotiflowSummary]:
        self.lists += 1
        raise ServerError("Service unavailable", code="unavailable", status=503, method="GET", url="/x/notiflows")


def test_a_failed_listing_still_classifies_every_repo_notiflow(tmp_path: Path) -> None:
    write_notiflow(tmp_path, "same", "<p>v1</p>")
    write_notiflow(tmp_path, "fresh", "<p>v1</p>")
    write_notiflow(tmp_path, "flaky", "<p>v1</p>")
    write_notiflow(tmp_path, "broken", "<p>v1</p>")
    (tmp_path / ".notiflows/notiflows/broken/notiflow.json").write_text("{not json")
    client = ListingDown({"same": remote("same", payload()), "flaky": remote("flaky", payload()),
                          "dash-only": remote("dash-only", payload())}, failing={"flaky"})
    notes: list[str] = []
    failures: list[str] = []
    outs = run_drift(repo_tree=WorkTree(tmp_path), notiflows_root=".notiflows/notiflows", env={},
                     client=client, notes=notes, failures=failures)
    # Each valid repo notiflow is compared with its own GET (a 404 is repo-only); remote-only
    # notiflows cannot be known without the listing, and a note says so.
    assert {o.handle: o.status for o in outs} == {
        "same": Status.IN_SYNC, "fresh": Status.REPO_ONLY, "flaky": Status.FAILED, "broken": Status.INVALID,
    }
    assert sorted(client.gets) == ["flaky", "fresh", "same"]
    assert failures == ["listing the server's notiflows failed: Service unavailable [503 unavailable] "
                        "GET /x/notiflows"]
    (note,) = [n for n in notes if "listing" in n]
    assert note.startswith(failures[0]) and "remote-only" in note and "could not be looked for" in note


def test_a_failed_listing_raises_for_a_caller_that_cannot_carry_it(tmp_path: Path) -> None:
    write_notiflow(tmp_path, "same", "<p>v1</p>")
    client = ListingDown({"same": remote("same", payload())})
    with pytest.raises(ServerError, match="Service unavailable"):
        run_drift(repo_tree=WorkTree(tmp_path), notiflows_root=".notiflows/notiflows", env={}, client=client)
