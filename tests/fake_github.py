"""A local fake of the GitHub REST endpoints the PR comment code uses (127.0.0.1 only).

GET /user, GET/POST /repos/{o}/{r}/issues/{n}/comments (paginated by per_page/page, with a Link
header), PATCH /repos/{o}/{r}/issues/comments/{id}. Like GitHub it rejects bodies over 65,536
characters with 422, and can be told to answer 403 "Resource not accessible by integration"
(a fork's read-only token) or 404.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 65_536


@dataclass
class FakeGitHub:
    token: str = "ghs_faketoken1234"
    user_login: str | None = None  # None: /user answers 403 like an Actions installation token
    bot_login: str = "github-actions[bot]"
    forbid_writes: bool = False
    not_found: bool = False
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    next_id: int = 1000
    url: str = ""

    def add_comment(self, number: int, body: str, login: str, type: str = "User") -> dict[str, Any]:
        self.next_id += 1
        comment = {
            "id": self.next_id,
            "body": body,
            "user": {"login": login, "type": type},
            "html_url": f"https://github.invalid/c/{self.next_id}",
        }
        self.comments.setdefault(number, []).append(comment)
        return comment

    def author(self) -> dict[str, str]:
        if self.user_login:
            return {"login": self.user_login, "type": "User"}
        return {"login": self.bot_login, "type": "Bot"}


def _handler(state: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any] | None:
            length = int(self.headers.get("Content-Length") or 0)
            if not length:
                return None
            parsed = json.loads(self.rfile.read(length))
            return parsed if isinstance(parsed, dict) else None

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            body = self._body()
            state.requests.append((method, self.path, body))
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                self._send(401, {"message": "Bad credentials"})
                return
            if state.not_found:
                self._send(404, {"message": "Not Found"})
                return
            if parts.path == "/user" and method == "GET":
                if state.user_login:
                    self._send(200, {"login": state.user_login})
                else:
                    self._send(403, {"message": "Resource not accessible by integration"})
                return
            m = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)/comments", parts.path)
            if m and method == "GET":
                query = parse_qs(parts.query)
                per_page = int(query.get("per_page", ["30"])[0])
                page = int(query.get("page", ["1"])[0])
                items = state.comments.get(int(m.group(1)), [])
                chunk = items[(page - 1) * per_page : page * per_page]
                headers = {}
                if page * per_page < len(items):
                    headers["Link"] = f'<{state.url}{parts.path}?per_page={per_page}&page={page + 1}>; rel="next"'
                self._send(200, chunk, headers)
                return
            if (m and method == "POST") or (method == "PATCH" and "/issues/comments/" in parts.path):
                if state.forbid_writes:
                    self._send(403, {"message": "Resource not accessible by integration"})
                    return
                text = (body or {}).get("body", "")
                if not isinstance(text, str) or len(text) > MAX_BODY:
                    self._send(422, {"message": "Validation Failed",
                                     "errors": [{"message": "Body is too long (maximum is 65536 characters)"}]})
                    return
                if m:
                    created = state.add_comment(int(m.group(1)), text, **state.author())
                    self._send(201, created)
                    return
                cid = int(parts.path.rsplit("/", 1)[1])
                for items in state.comments.values():
                    for comment in items:
                        if comment["id"] == cid:
                            comment["body"] = text
                            self._send(200, comment)
                            return
                self._send(404, {"message": "Not Found"})
                return
            self._send(404, {"message": "Not Found"})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

    return Handler


@contextmanager
def serve(state: FakeGitHub | None = None) -> Iterator[FakeGitHub]:
    state = state or FakeGitHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
