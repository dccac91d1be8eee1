from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_github import FakeGitHub, serve

from notiflows_deploy.github.comment import (
    MARKER,
    MAX_BODY_CHARS,
    fit_body,
    post_plan_comment,
    pull_request_number,
    upsert_comment,
)
from notiflows_deploy.model import NotiflowOutcome, RunResult, Status
from notiflows_deploy.report.summary import example_result

REPO = "octo/app"


def test_creates_one_comment_then_updates_it_in_place() -> None:
    with serve() as gh:
        first = upsert_comment(REPO, 7, "plan v1", token=gh.token, api_url=gh.url)
        assert first.action == "created"
        second = upsert_comment(REPO, 7, "plan v2", token=gh.token, api_url=gh.url)
        assert second.action == "updated"
        assert second.comment_id == first.comment_id
        assert len(gh.comments[7]) == 1
        assert gh.comments[7][0]["body"].startswith(MARKER)
        assert "plan v2" in gh.comments[7][0]["body"]
        methods = [m for m, _, _ in gh.requests]
        assert methods.count("POST") == 1 and methods.count("PATCH") == 1


def test_finds_marker_across_pages_and_ignores_other_authors() -> None:
    state = FakeGitHub(user_login="deploy-bot-user")
    for i in range(230):
        state.add_comment(3, f"chatter {i}", "someone")
    state.add_comment(3, f"{MARKER}\nquoted by a person", "someone")  # not ours: other author
    ours = state.add_comment(3, f"{MARKER}\nold plan", "deploy-bot-user")
    with serve(state) as gh:
        out = upsert_comment(REPO, 3, "new plan", token=gh.token, api_url=gh.url)
    assert out.action == "updated" and out.comment_id == ours["id"]
    assert "new plan" in ours["body"]
    assert gh.comments[3][-2]["body"].endswith("quoted by a person")
    pages = [p for m, p, _ in gh.requests if m == "GET" and "/comments" in p]
    assert len(pages) == 3  # 232 comments at 100 per page


def test_unknown_author_only_trusts_bot_comments() -> None:
    state = FakeGitHub()  # /user -> 403, as for the Actions token
    state.add_comment(5, f"{MARKER}\nhuman copy", "mallory", "User")
    with serve(state) as gh:
        out = upsert_comment(REPO, 5, "plan", token=gh.token, api_url=gh.url)
        assert out.action == "created"
        again = upsert_comment(REPO, 5, "plan 2", token=gh.token, api_url=gh.url)
    assert again.action == "updated" and again.comment_id == out.comment_id
    assert gh.comments[5][0]["body"].endswith("human copy")


@pytest.mark.parametrize("setting", ["forbid_writes", "not_found"])
def test_403_and_404_are_warnings(setting: str) -> None:
    state = FakeGitHub(**{setting: True})  # type: ignore[arg-type]
    with serve(state) as gh:
        out = upsert_comment(REPO, 9, "plan", token=gh.token, api_url=gh.url)
    assert out.action == "warning" and out.is_warning
    assert ("403" in out.message) or ("404" in out.message)
    assert "job summary" in out.message


def test_network_failure_is_a_warning() -> None:
    out = upsert_comment(REPO, 9, "plan", token="x" * 8, api_url="http://127.0.0.1:9")
    assert out.action == "warning"


def test_long_body_is_truncated_below_the_limit() -> None:
    body = "x" * 200_000
    with serve() as gh:
        out = upsert_comment(REPO, 11, body, token=gh.token, api_url=gh.url)
    assert out.action == "created"
    stored = gh.comments[11][0]["body"]
    assert len(stored) <= MAX_BODY_CHARS
    assert stored.startswith(MARKER) and "truncated" in stored
    assert fit_body("short") == "short"


def test_bearer_token_is_sent() -> None:
    with serve() as gh:
        out = upsert_comment(REPO, 1, "plan", token="wrong-token", api_url=gh.url)
    assert out.action == "warning" and "401" in out.message


def _event(tmp_path: Path, payload: dict[str, object]) -> str:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload))
    return str(path)


def test_pull_request_number_from_events(tmp_path: Path) -> None:
    pr = _event(tmp_path, {"number": 42, "pull_request": {"number": 42}})
    assert pull_request_number({"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": pr}) == 42
    assert pull_request_number({"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": pr}) is None
    sched = _event(tmp_path, {"schedule": "0 5 * * *"})
    assert pull_request_number({"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": sched}) is None


def test_post_plan_comment_end_to_end(tmp_path: Path) -> None:
    event = _event(tmp_path, {"number": 8, "pull_request": {"number": 8}})
    big = RunResult(
        mode="plan",
        head="a" * 40,
        notiflows=[
            NotiflowOutcome(f"flow-{i}", Status.WOULD_UPDATE, f"n/flow-{i}", diff="-a\n+b\n" * 50) for i in range(2000)
        ],
    )
    with serve() as gh:
        env = {
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": event,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_TOKEN": gh.token,
            "GITHUB_API_URL": gh.url,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "123",
        }
        out = post_plan_comment(big, env=env)
        assert out.action == "created"
        out2 = post_plan_comment(example_result(), env=env)
        assert out2.action == "updated"
    body = gh.comments[8][0]["body"]
    assert body.startswith(MARKER) and len(body) <= MAX_BODY_CHARS
    assert "order-shipped" in body and "actions/runs/123" in body
    skipped = post_plan_comment(example_result(), env={"GITHUB_EVENT_NAME": "push"})
    assert skipped.action == "skipped"
