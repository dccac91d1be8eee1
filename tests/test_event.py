from __future__ import annotations

from typing import Any

import pytest

from notiflows_deploy.github.event import (
    KIND_DEFAULT,
    KIND_DELETED,
    KIND_EVERYTHING,
    KIND_MERGE_GROUP,
    KIND_NEW_BRANCH,
    KIND_PULL_REQUEST,
    KIND_PUSH,
    ZERO_SHA,
    parse_event_payload,
    range_request,
    range_request_from_env,
)

A = "a" * 40
B = "b" * 40
M = "c" * 40


def test_pull_request_uses_base_and_head_and_notes_merge_commit() -> None:
    payload = {"number": 7, "pull_request": {"number": 7, "base": {"sha": A, "ref": "main"}, "head": {"sha": B}},
               "repository": {"default_branch": "main"}}
    req = range_request("pull_request", payload, github_sha=M)
    assert (req.base, req.head, req.everything, req.kind) == (A, B, False, KIND_PULL_REQUEST)
    assert req.merge_commit == M
    assert req.default_branch == "main"
    assert "#7" in req.reason


def test_pull_request_target_same_as_pull_request() -> None:
    payload = {"pull_request": {"base": {"sha": A}, "head": {"sha": B}}}
    req = range_request("pull_request_target", payload, github_sha=M)
    assert (req.base, req.head, req.kind) == (A, B, KIND_PULL_REQUEST)


@pytest.mark.parametrize("payload", [{}, {"pull_request": None}, {"pull_request": {"base": "x"}},
                                     {"pull_request": {"base": {"sha": 5}, "head": {"sha": B}}}])
def test_pull_request_missing_shas_falls_back(payload: dict[str, Any]) -> None:
    req = range_request("pull_request", payload, github_sha=M)
    assert req.kind == KIND_DEFAULT and req.base is None and req.head == M


def test_push_before_after() -> None:
    req = range_request("push", {"ref": "refs/heads/main", "before": A, "after": B, "forced": False}, github_sha=B)
    assert (req.base, req.head, req.kind, req.forced, req.ref) == (A, B, KIND_PUSH, False, "refs/heads/main")


def test_push_forced_flag() -> None:
    req = range_request("push", {"before": A, "after": B, "forced": True})
    assert req.forced and req.kind == KIND_PUSH and "forced" in req.reason


def test_push_new_branch_zero_before() -> None:
    req = range_request("push", {"ref": "refs/heads/feature", "before": ZERO_SHA, "after": B, "created": True,
                                 "repository": {"default_branch": "trunk"}})
    assert (req.base, req.head, req.kind) == (None, B, KIND_NEW_BRANCH)
    assert req.default_branch == "trunk" and req.ref == "refs/heads/feature"


def test_push_deleted_branch() -> None:
    req = range_request("push", {"ref": "refs/heads/x", "before": A, "after": ZERO_SHA, "deleted": True})
    assert req.kind == KIND_DELETED and req.base is None and req.head is None and not req.everything


def test_push_after_missing_uses_github_sha() -> None:
    req = range_request("push", {"before": A}, github_sha=M)
    assert (req.base, req.head) == (A, M)


def test_push_without_before_is_default() -> None:
    req = range_request("push", {"after": B})
    assert req.kind == KIND_DEFAULT and req.base is None and req.head == B


def test_merge_group() -> None:
    req = range_request("merge_group", {"merge_group": {"base_sha": A, "head_sha": B}})
    assert (req.base, req.head, req.kind) == (A, B, KIND_MERGE_GROUP)
    assert range_request("merge_group", {}, github_sha=M).kind == KIND_DEFAULT


@pytest.mark.parametrize("name", ["schedule", "workflow_dispatch"])
def test_everything_events(name: str) -> None:
    req = range_request(name, {"schedule": "0 * * * *"}, github_sha=M)
    assert req.everything and req.kind == KIND_EVERYTHING and req.head == M and req.base is None


@pytest.mark.parametrize("name", ["", None, "release", "workflow_run"])
def test_unknown_event_is_head_parent(name: str | None) -> None:
    req = range_request(name, {"anything": 1})
    assert req.kind == KIND_DEFAULT and req.base is None and req.head is None and not req.everything


@pytest.mark.parametrize("payload", [None, [], "text", {"pull_request": []}, {"repository": "x"}])
def test_garbage_payloads_never_crash(payload: Any) -> None:
    for name in ["push", "pull_request", "merge_group", "schedule", "x"]:
        range_request(name, payload)


@pytest.mark.parametrize("text,expected", [(None, {}), ("", {}), ("[1]", {}), ("{bad", {}), (b'{"a": 1}', {"a": 1}),
                                           (b"\xff\xfe", {})])
def test_parse_event_payload(text: str | bytes | None, expected: dict[str, Any]) -> None:
    assert parse_event_payload(text) == expected


def test_from_env() -> None:
    env = {"GITHUB_EVENT_NAME": "push", "GITHUB_SHA": B}
    req = range_request_from_env(env, f'{{"before": "{A}", "after": "{B}"}}')
    assert (req.base, req.head, req.kind) == (A, B, KIND_PUSH)


def test_from_env_reads_event_path(tmp_path: Any) -> None:
    path = tmp_path / "event.json"
    path.write_text(f'{{"before": "{A}", "after": "{B}"}}')
    env = {"GITHUB_EVENT_NAME": "push", "GITHUB_SHA": B, "GITHUB_EVENT_PATH": str(path)}
    assert range_request_from_env(env).base == A
    env["GITHUB_EVENT_PATH"] = str(tmp_path / "missing.json")
    assert range_request_from_env(env).kind == KIND_DEFAULT
    assert range_request_from_env({}).kind == KIND_DEFAULT


# -- a broken event file is named in the fallback note ---------------------------------------------


def test_missing_event_file_says_so(tmp_path: Any) -> None:
    env = {"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(tmp_path / "gone.json")}
    req = range_request_from_env(env)
    assert req.kind == KIND_DEFAULT
    assert req.reason == f"push event: the event file {tmp_path / 'gone.json'} (GITHUB_EVENT_PATH) does not exist; " \
                         "using HEAD~1..HEAD"
    assert "without `before`" not in req.reason


@pytest.mark.parametrize("text,expected", [
    ("{bad", "is not JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
    ("", "is empty"),
    ("[1, 2]", "holds a JSON list, not an object"),
    ('{"after": "' + B + '"}', "the payload has no `before`"),
    ('{"before": 5}', "`before` in the payload is not a commit sha (5)"),
])
def test_malformed_event_file_says_what_is_wrong(tmp_path: Any, text: str, expected: str) -> None:
    path = tmp_path / "event.json"
    path.write_text(text)
    req = range_request_from_env({"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(path)})
    assert req.kind == KIND_DEFAULT and req.base is None
    assert expected in req.reason and req.reason.endswith("; using HEAD~1..HEAD")


def test_event_path_not_set_and_pull_request_without_shas(tmp_path: Any) -> None:
    req = range_request_from_env({"GITHUB_EVENT_NAME": "pull_request", "GITHUB_SHA": M})
    assert req.kind == KIND_DEFAULT and req.head == M
    assert req.reason == "pull_request event: GITHUB_EVENT_PATH is not set; using HEAD~1..HEAD"
    path = tmp_path / "event.json"
    path.write_text('{"pull_request": {"base": {"sha": "' + A + '"}}}')
    env = {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(path)}
    assert "the payload has no `pull_request.head.sha`" in range_request_from_env(env).reason


def test_read_event_file_never_raises(tmp_path: Any) -> None:
    from notiflows_deploy.github.event import read_event_file

    assert read_event_file({"GITHUB_EVENT_PATH": str(tmp_path)}).problem is not None  # a directory
    good = tmp_path / "e.json"
    good.write_text('{"a": 1}')
    assert read_event_file({"GITHUB_EVENT_PATH": str(good)}) == read_event_file({"GITHUB_EVENT_PATH": str(good)})
    assert read_event_file({"GITHUB_EVENT_PATH": str(good)}).payload == {"a": 1}
    assert read_event_file({"GITHUB_EVENT_PATH": str(good)}).problem is None
