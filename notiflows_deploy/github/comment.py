"""The sticky plan comment on a pull request, through the GitHub REST (Issues comments) API.

One comment per pull request, found by `MARKER` (and by author when the token can tell us who it
is), updated in place: ``GET /repos/{repo}/issues/{n}/comments`` (all pages), then ``PATCH
/repos/{repo}/issues/comments/{id}`` or ``POST /repos/{repo}/issues/{n}/comments``.

Commenting never fails the run. A 403 (a fork's read-only token: "Resource not accessible by
integration", or missing ``pull-requests: write``) or a 404 is reported as a warning; so is any
other HTTP or network failure. The body is kept under GitHub's 65,536-character limit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from notiflows_deploy.model import RunResult
from notiflows_deploy.report.summary import COMMENT_MARKER, render_comment

MARKER = COMMENT_MARKER
MAX_BODY_CHARS = 65_536
DEFAULT_API_URL = "https://api.github.com"
PER_PAGE = 100
MAX_PAGES = 100
TIMEOUT = (5.0, 20.0)  # connect, read (seconds)
_TRUNCATED = "\n\n_(comment truncated: GitHub allows 65,536 characters; see the job summary)_\n"


@dataclass(frozen=True)
class CommentOutcome:
    action: str  # "created", "updated", "skipped" or "warning"
    message: str = ""
    comment_id: int | None = None
    url: str | None = None

    @property
    def is_warning(self) -> bool:
        return self.action == "warning"


class _HttpFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def fit_body(body: str, limit: int = MAX_BODY_CHARS) -> str:
    if len(body) <= limit:
        return body
    return body[: limit - len(_TRUNCATED)] + _TRUNCATED


def _error_message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    return str(data.get("message", ""))[:200] if isinstance(data, dict) else ""


class GitHubComments:
    def __init__(self, api_url: str, token: str, *, timeout: tuple[float, float] = TIMEOUT) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "notiflows-deploy",
            }
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, self.api_url + path, timeout=self.timeout, **kwargs)
        if response.status_code >= 400:
            raise _HttpFailure(response.status_code, _error_message(response))
        return response.json() if response.content else None

    def viewer_login(self) -> str | None:
        """The token's user, when it has one (an Actions installation token gets 403 here)."""
        try:
            data = self._call("GET", "/user")
        except (_HttpFailure, requests.RequestException, ValueError):
            return None
        login = data.get("login") if isinstance(data, dict) else None
        return login if isinstance(login, str) else None

    def list_comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            items = self._call(
                "GET", f"/repos/{repo}/issues/{number}/comments", params={"per_page": PER_PAGE, "page": page}
            )
            if not isinstance(items, list):
                break
            found.extend(i for i in items if isinstance(i, dict))
            if len(items) < PER_PAGE:
                break
        return found

    def create(self, repo: str, number: int, body: str) -> dict[str, Any]:
        data = self._call("POST", f"/repos/{repo}/issues/{number}/comments", json={"body": body})
        return data if isinstance(data, dict) else {}

    def update(self, repo: str, comment_id: int, body: str) -> dict[str, Any]:
        data = self._call("PATCH", f"/repos/{repo}/issues/comments/{comment_id}", json={"body": body})
        return data if isinstance(data, dict) else {}


def _is_ours(comment: Mapping[str, Any], author: str | None) -> bool:
    if MARKER not in str(comment.get("body") or ""):
        return False
    user = comment.get("user") or {}
    if author:
        return bool(user.get("login") == author)
    # Unknown token owner (the Actions token cannot ask): only trust bot-authored markers, so a
    # person quoting the marker cannot make us overwrite their comment.
    return bool(user.get("type") == "Bot")


def upsert_comment(
    repo: str,
    number: int,
    body: str,
    *,
    token: str,
    api_url: str = DEFAULT_API_URL,
    author: str | None = None,
) -> CommentOutcome:
    """Create or update the one marked comment on pull request `number` of `repo` ("owner/name")."""
    if MARKER not in body:
        body = MARKER + "\n" + body
    body = fit_body(body)
    client = GitHubComments(api_url, token)
    try:
        author = author or client.viewer_login()
        existing = [c for c in client.list_comments(repo, number) if _is_ours(c, author)]
        if existing:
            target = existing[-1]
            data = client.update(repo, int(target["id"]), body)
            return CommentOutcome("updated", comment_id=int(target["id"]), url=data.get("html_url"))
        data = client.create(repo, number, body)
        return CommentOutcome("created", comment_id=data.get("id"), url=data.get("html_url"))
    except _HttpFailure as failure:
        if failure.status in (403, 404):
            why = (
                "the token may not write to this pull request (a fork's read-only token, or a workflow "
                "without `permissions: pull-requests: write`)"
            )
        else:
            why = "GitHub refused the request"
        detail = f": {failure}" if str(failure) else ""
        return CommentOutcome(
            "warning", f"Could not post the plan comment (HTTP {failure.status}{detail}); {why}. "
            "The plan is in the job summary."
        )
    except requests.RequestException as exc:
        why = type(exc).__name__
        return CommentOutcome("warning", f"Could not post the plan comment ({why}); see the job summary.")


def pull_request_number(env: Mapping[str, str]) -> int | None:
    """The PR number from the event payload, or None when this is not a pull_request event."""
    if env.get("GITHUB_EVENT_NAME") not in ("pull_request", "pull_request_target"):
        return None
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            event = json.load(handle)
    except (OSError, ValueError):
        return None
    pr = event.get("pull_request") if isinstance(event, dict) else None
    number = pr.get("number") if isinstance(pr, dict) else None
    if number is None and isinstance(event, dict):
        number = event.get("number")
    return number if isinstance(number, int) and number > 0 else None


def post_plan_comment(
    result: RunResult, *, env: Mapping[str, str] | None = None, report_path: str | None = None
) -> CommentOutcome:
    """Keep the plan comment on the current pull request up to date (from the Actions environment)."""
    source = os.environ if env is None else env
    number = pull_request_number(source)
    if number is None:
        return CommentOutcome("skipped", "not a pull_request event; no comment posted")
    repo = source.get("GITHUB_REPOSITORY", "")
    token = source.get("GITHUB_TOKEN", "")
    if not repo or not token:
        return CommentOutcome("warning", "comment-on-pr is set but GITHUB_REPOSITORY or the github-token is missing")
    run_url = None
    server, run_id = source.get("GITHUB_SERVER_URL"), source.get("GITHUB_RUN_ID")
    if server and run_id:
        run_url = f"{server.rstrip('/')}/{repo}/actions/runs/{run_id}"
    body = render_comment(result, report_path=None, run_url=run_url)
    return upsert_comment(
        repo, number, body, token=token, api_url=source.get("GITHUB_API_URL") or DEFAULT_API_URL
    )
