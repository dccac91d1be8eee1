"""ManagementClient against a tiny scripted HTTP server on 127.0.0.1 (real loopback HTTP).

Each test queues the exact answers the server gives (HTML 502, empty 200, 429 with Retry-After in
each form, dropped connections, answers slower than the read timeout) and checks what the client
makes of them: typed errors, retries, waits, request headers.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from notiflows_deploy import __version__
from notiflows_deploy.api.client import ManagementClient, payload_matches_remote, sanitize_excerpt
from notiflows_deploy.api.errors import (
    ApiError,
    ApiTimeoutError,
    AuthError,
    BadResponseError,
    ConflictError,
    ForbiddenError,
    HttpStatusError,
    NotFoundError,
    ServerError,
    TransportError,
    ValidationFailedError,
)
from notiflows_deploy.api.models import RemoteNotiflow
from notiflows_deploy.api.transport import Timeouts

TOKEN = "nf_at_s3cret_fake_token_0123456789"


# -- the scripted server -----------------------------------------------------------------------


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes/str as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/json"
    delay: float = 0.0  # before the status line
    body_delay: float = 0.0  # after the headers, before the body
    drop: bool = False  # close the connection without answering


def envelope(status: int, code: str, message: str = "nope", details: dict[str, Any] | None = None) -> Answer:
    return Answer(status, {"error": {"type": f"https://notiflows.com/docs/api/errors#{code}-{status}",
                                     "code": code, "message": message, "status": status,
                                     "request_id": "req_srv_1", "details": details or {}}})


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float


class ScriptedServer:
    def __init__(self) -> None:
        self.queue: list[Answer] = []
        self.routes: dict[tuple[str, str], Callable[[Seen], Answer]] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Seen(self.command, parts.path, parse_qs(parts.query),
                            {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                with outer.lock:
                    outer.seen.append(seen)
                    route = outer.routes.get((self.command, parts.path))
                    answer = outer.queue.pop(0) if outer.queue else None
                if answer is None:
                    answer = route(seen) if route else Answer(200, {"ok": True})
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                payload = answer.body
                if isinstance(payload, dict | list):
                    data = json.dumps(payload).encode()
                elif isinstance(payload, str):
                    data = payload.encode()
                else:
                    data = payload or b""
                self.send_response(answer.status)
                if answer.content_type:
                    self.send_header("Content-Type", answer.content_type)
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.flush()
                if answer.body_delay:
                    time.sleep(answer.body_delay)
                with suppress(OSError):
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/management/v1"

    def script(self, *answers: Answer) -> None:
        with self.lock:
            self.queue.extend(answers)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    try:
        yield srv
    finally:
        srv.close()


class FakeTime:
    """Injected sleep + clock: waits are recorded, not spent."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self.lock = threading.Lock()

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(seconds)
            self.now += seconds


@contextmanager
def client_for(server: ScriptedServer, **kwargs: Any) -> Iterator[tuple[ManagementClient, FakeTime]]:
    ft = FakeTime()
    options: dict[str, Any] = dict(timeouts=Timeouts(connect=2.0, read=2.0), backoff_base=0.01,
                                   backoff_cap=5.0, sleep=ft.sleep, clock=ft.clock)
    options.update(kwargs)
    with ManagementClient(server.base_url, TOKEN, "demo", **options) as client:
        yield client, ft


def notiflow_json(handle: str = "welcome", *, sha: str = "sha1", status: str = "draft",
                  steps: list[dict[str, Any]] | None = None, published: bool = False) -> dict[str, Any]:
    version = {"id": "v-1", "sha": sha, "status": status, "version_number": 1, "valid": True,
               "steps": steps if steps is not None else [{"handle": "trigger", "type": "trigger", "position": 0}],
               "inserted_at": "2026-01-01T00:00:00Z"}
    return {"handle": handle, "name": "Welcome", "active": True, "include_in_preferences": True,
            "has_unpublished_changes": status == "draft", "current_version": version,
            "published_version": version if published else None}


# -- headers, paths, happy paths ---------------------------------------------------------------


def test_headers_and_paths(server: ScriptedServer) -> None:
    server.script(Answer(200, {"project": {"id": "p1", "name": "Demo", "slug": "demo"}}))
    with client_for(server) as (client, _):
        assert client.whoami()["project"]["slug"] == "demo"
    seen = server.seen[0]
    assert seen.method == "GET" and seen.path == "/management/v1/projects/demo/whoami"
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["user-agent"] == f"notiflows-deploy/{__version__} (+python-requests)"
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["x-request-id"].startswith("nfd_") and len(seen.headers["x-request-id"]) == 36


def test_handles_and_project_are_quoted(server: ScriptedServer) -> None:
    server.script(Answer(200, notiflow_json("a b")))
    with ManagementClient(server.base_url + "/", TOKEN, "my proj/x", sleep=FakeTime().sleep) as client:
        client.get_notiflow("a b/../c")
    assert server.seen[0].path == "/management/v1/projects/my%20proj%2Fx/notiflows/a%20b%2F..%2Fc"


def test_upsert_sends_payload_and_expected_sha(server: ScriptedServer) -> None:
    server.script(Answer(201, notiflow_json()), Answer(200, notiflow_json()))
    payload = {"name": "Welcome", "steps": [{"handle": "trigger", "type": "trigger", "position": 0}]}
    with client_for(server) as (client, _):
        first = client.upsert_notiflow("welcome", payload, expected_sha=None)
        second = client.upsert_notiflow("welcome", payload, expected_sha="abc")
    assert first.created and not second.created
    assert isinstance(first.notiflow, RemoteNotiflow) and first.notiflow.current_version is not None
    bodies = [json.loads(s.body) for s in server.seen]
    assert bodies[0] == payload
    assert bodies[1] == {**payload, "expected_sha": "abc"}
    assert all(s.method == "PUT" and s.headers["content-type"] == "application/json" for s in server.seen)
    assert "expected_sha" not in payload  # the caller's dict is not modified


def test_list_notiflows_paginates(server: ScriptedServer) -> None:
    def page(items: list[str], total: int | None) -> Answer:
        info: dict[str, Any] = {"page": 0, "limit": 2}
        if total is not None:
            info["total"] = total
        return Answer(200, {"items": [{"handle": h} for h in items], "page_info": info})

    # Short page ends it.
    server.script(page(["a", "b"], None), page(["c"], None))
    with client_for(server) as (client, _):
        assert [s.handle for s in client.list_notiflows(limit=2)] == ["a", "b", "c"]
    assert [s.query["page"] for s in server.seen] == [["1"], ["2"]]
    assert all(s.query["limit"] == ["2"] for s in server.seen)
    # page*limit >= total ends it without an extra request.
    server.seen.clear()
    server.script(page(["a", "b"], 4), page(["c", "d"], 4))
    with client_for(server) as (client, _):
        assert len(client.list_notiflows(limit=2)) == 4
    assert len(server.seen) == 2
    # Empty page ends it.
    server.seen.clear()
    server.script(page(["a", "b"], None), page([], None))
    with client_for(server) as (client, _):
        assert len(client.list_notiflows(limit=2)) == 2
    # A server ignoring `page` is caught instead of looping forever.
    server.seen.clear()
    server.script(page(["a", "b"], None), page(["a", "b"], None))
    with client_for(server) as (client, _), pytest.raises(BadResponseError, match="repeats"):
        client.list_notiflows(limit=2)


def test_list_versions_follows_cursor(server: ScriptedServer) -> None:
    def version(n: int) -> dict[str, Any]:
        return {"sha": f"s{n}", "status": "draft", "version_number": n, "valid": True, "steps": []}

    server.script(
        Answer(200, {"items": [version(3), version(2)], "page": {"after": "2", "has_more_after": True}}),
        Answer(200, {"items": [version(1)], "page": {"after": None, "has_more_after": False}}),
    )
    with client_for(server) as (client, _):
        versions = client.list_versions("welcome")
    assert [v.version_number for v in versions] == [3, 2, 1]
    assert server.seen[0].query == {} and server.seen[1].query == {"after": ["2"]}
    assert server.seen[0].path.endswith("/projects/demo/notiflows/welcome/versions")


# -- error envelopes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "cls", "hint"),
    [
        (envelope(401, "unauthenticated"), AuthError, "NOTIFLOWS_TOKEN"),
        (envelope(403, "forbidden"), ForbiddenError, "NOTIFLOWS_TOKEN"),
        (envelope(404, "not_found", details={"resource": "project", "id": "demo"}), NotFoundError,
         "project slug"),
        (envelope(409, "conflict"), ConflictError, "--force"),
        (envelope(422, "validation_failed", details={"fields": [{"field": "steps[0].type",
                                                                  "message": "unknown", "reason": "x"}]}),
         ValidationFailedError, "fields"),
        (envelope(400, "bad_request"), HttpStatusError, ""),
        (envelope(418, "teapot"), HttpStatusError, ""),
    ],
)
def test_error_envelopes_are_typed_and_not_retried(
    server: ScriptedServer, answer: Answer, cls: type[ApiError], hint: str
) -> None:
    server.script(answer)
    with client_for(server) as (client, ft), pytest.raises(cls) as info:
        client.upsert_notiflow("welcome", {"steps": []}, expected_sha=None)
    err = info.value
    assert type(err) is cls
    assert err.status == answer.status and err.request_id == "req_srv_1"
    assert "PUT /management/v1/projects/demo/notiflows/welcome" in str(err)
    assert hint in err.hint
    assert len(server.seen) == 1 and ft.slept == []  # never retried
    if isinstance(err, ValidationFailedError):
        assert err.fields[0]["field"] == "steps[0].type"
        assert "steps[0].type" in str(err)


def test_get_notiflow_404_notiflow_vs_project(server: ScriptedServer) -> None:
    server.script(envelope(404, "not_found", details={"resource": "notiflow", "id": "welcome"}),
                  envelope(404, "not_found", details={"resource": "project", "id": "demo"}))
    with client_for(server) as (client, _):
        assert client.get_notiflow("welcome") is None
        with pytest.raises(NotFoundError) as info:
            client.get_notiflow("welcome")
    assert "project 'demo' not found" in str(info.value)
    assert "project slug" in str(info.value)


def test_5xx_retried_then_succeeds(server: ScriptedServer) -> None:
    server.script(envelope(500, "internal_error"), envelope(503, "unavailable"),
                  Answer(200, notiflow_json()))
    with client_for(server) as (client, ft):
        assert client.get_notiflow("welcome") is not None
    assert len(server.seen) == 3 and len(ft.slept) == 2
    assert ft.slept[0] <= 0.01 and ft.slept[1] <= 0.02  # full jitter within base*2**n
    # The same request id is kept across retries of one call.
    assert len({s.headers["x-request-id"] for s in server.seen}) == 1


def test_5xx_gives_up_after_max_attempts(server: ScriptedServer) -> None:
    server.script(*[envelope(502, "bad_gateway")] * 5)
    with client_for(server, max_attempts=3) as (client, ft), pytest.raises(ServerError) as info:
        client.whoami()
    assert len(server.seen) == 3 and len(ft.slept) == 2
    assert "gave up after 3 attempts" in str(info.value)
    assert "retry later" in info.value.hint


# -- not the envelope --------------------------------------------------------------------------


def test_html_502_from_proxy_is_bad_response_and_retried(server: ScriptedServer) -> None:
    html = "<html><head><title>502 Bad Gateway</title></head>\n<body><h1>Bad Gateway</h1>" + "x" * 2000
    server.script(*[Answer(502, html, content_type="text/html")] * 2)
    with client_for(server, max_attempts=2) as (client, _), pytest.raises(BadResponseError) as info:
        client.whoami()
    text = str(info.value)
    assert info.value.status == 502 and "text/html" in text and "502 Bad Gateway" in text
    assert len(text) < 600 and "\n" not in text  # short, one line
    assert len(server.seen) == 2


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        (Answer(200, b"", content_type="application/json"), "empty"),
        (Answer(200, "<html>login</html>", content_type="text/html"), "not JSON"),
        (Answer(200, "{not json", content_type="application/json"), "not JSON"),
        (Answer(200, [1, 2]), "not an object"),
        (Answer(404, "<html>Not Found</html>", content_type="text/html"), "envelope"),
        (Answer(401, "", content_type=None), "envelope"),
        (Answer(301, "", headers={"Location": "https://elsewhere.example/"}), "envelope"),
    ],
)
def test_non_envelope_answers(server: ScriptedServer, answer: Answer, what: str) -> None:
    server.script(answer)
    with client_for(server) as (client, ft), pytest.raises(BadResponseError) as info:
        client.get_notiflow("welcome")
    assert what in str(info.value)
    assert info.value.status == answer.status
    assert "GET /management/v1/projects/demo/notiflows/welcome" in str(info.value)
    assert len(server.seen) == 1 and ft.slept == []


def test_excerpt_is_sanitised() -> None:
    body = f"<p>\x00Authorization: Bearer {TOKEN}</p>\n\n<p>{TOKEN}</p>".encode()
    text = sanitize_excerpt(body, secret=TOKEN)
    assert TOKEN not in text and "\x00" not in text and "\n" not in text
    assert "nf_at_" not in sanitize_excerpt(b"token nf_at_other_thing here")


def test_bad_response_never_echoes_the_token(server: ScriptedServer) -> None:
    server.script(Answer(502, f"debug: Authorization: Bearer {TOKEN}", content_type="text/plain"))
    with client_for(server, max_attempts=1) as (client, _), pytest.raises(BadResponseError) as info:
        client.whoami()
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)


# -- 429 and Retry-After -----------------------------------------------------------------------


def test_429_retry_after_seconds(server: ScriptedServer) -> None:
    rl = envelope(429, "rate_limited")
    rl.headers["Retry-After"] = "3"
    server.script(rl, Answer(200, notiflow_json()))
    with client_for(server) as (client, ft):
        client.get_notiflow("welcome")
    assert ft.slept == [pytest.approx(3.0)]


def test_429_retry_after_http_date(server: ScriptedServer) -> None:
    rl = envelope(429, "rate_limited")
    rl.headers["Retry-After"] = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    server.script(rl, Answer(200, notiflow_json()))
    with client_for(server) as (client, ft):
        client.get_notiflow("welcome")
    assert len(ft.slept) == 1 and 2.5 <= ft.slept[0] <= 4.0


def test_429_details_retry_after_and_cap(server: ScriptedServer) -> None:
    server.script(envelope(429, "rate_limited", details={"retry_after": 2}), Answer(200, notiflow_json()))
    with client_for(server) as (client, ft):
        client.get_notiflow("welcome")
    assert ft.slept == [pytest.approx(2.0)]
    # The server asks for an hour: we wait the cap.
    rl = envelope(429, "rate_limited", details={"retry_after": 3600})
    server.script(rl, Answer(200, notiflow_json()))
    with client_for(server, backoff_cap=5.0) as (client, ft):
        client.get_notiflow("welcome")
    assert ft.slept == [pytest.approx(5.0)]


def test_429_real_wait_is_measured(server: ScriptedServer) -> None:
    rl = envelope(429, "rate_limited")
    rl.headers["Retry-After"] = "1"
    server.script(rl, Answer(200, notiflow_json()))
    with ManagementClient(server.base_url, TOKEN, "demo", backoff_base=0.01) as client:
        client.get_notiflow("welcome")
    gap = server.seen[1].at - server.seen[0].at
    assert 0.95 <= gap < 3.0


def test_429_pauses_every_worker(server: ScriptedServer) -> None:
    """One worker's 429 makes all workers wait (shared gate), not just the one refused."""
    rl = envelope(429, "rate_limited")
    rl.headers["Retry-After"] = "1"
    slow = Answer(200, notiflow_json(), delay=0.2)
    server.script(rl, slow, slow, slow, slow, slow, slow, slow)
    with ManagementClient(server.base_url, TOKEN, "demo", concurrency=4, backoff_base=0.01) as client:
        results = client.map(client.get_notiflow, [f"n{i}" for i in range(6)])
    assert all(isinstance(r, RemoteNotiflow) for r in results)
    first = server.seen[0].at
    # The 429 came first; only requests already in flight (sent < 0.1 s after it) escaped the pause.
    late = [s.at - first for s in server.seen[1:] if s.at - first > 0.1]
    assert late and min(late) >= 0.95


# -- transport failures ------------------------------------------------------------------------


def test_dropped_connection_retried(server: ScriptedServer) -> None:
    server.script(Answer(drop=True), Answer(200, notiflow_json()))
    with client_for(server) as (client, ft):
        assert client.get_notiflow("welcome") is not None
    assert len(server.seen) == 2 and len(ft.slept) == 1


def test_dropped_connection_exhausted_is_transport_error(server: ScriptedServer) -> None:
    server.script(*[Answer(drop=True)] * 3)
    with client_for(server, max_attempts=3) as (client, _), pytest.raises(TransportError) as info:
        client.get_notiflow("welcome")
    err = info.value
    assert not isinstance(err, ApiTimeoutError)
    assert isinstance(err.__cause__, requests.exceptions.RequestException)  # chained with `from`
    assert "GET /management/v1/projects/demo/notiflows/welcome" in str(err)
    assert "gave up after 3 attempts" in str(err)


def test_read_timeout_before_headers(server: ScriptedServer) -> None:
    server.script(Answer(200, notiflow_json(), delay=1.0), Answer(200, notiflow_json()))
    with client_for(server, timeouts=Timeouts(connect=1.0, read=0.3)) as (client, ft):
        assert client.get_notiflow("welcome") is not None
    assert len(ft.slept) == 1 and len(server.seen) == 2


def test_read_timeout_mid_body_is_a_timeout(server: ScriptedServer) -> None:
    server.script(*[Answer(200, notiflow_json(), body_delay=1.0)] * 2)
    with client_for(server, timeouts=Timeouts(connect=1.0, read=0.3), max_attempts=2) as (client, _), \
            pytest.raises(ApiTimeoutError) as info:
        client.get_notiflow("welcome")
    assert info.value.code == "read_timeout" and "0.3 s" in str(info.value)


def test_connection_refused() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    ft = FakeTime()
    with ManagementClient(f"http://127.0.0.1:{port}", TOKEN, "demo", max_attempts=3, sleep=ft.sleep,
                          clock=ft.clock) as client, pytest.raises(TransportError) as info:
        client.whoami()
    assert info.value.code == "connect_error" and len(ft.slept) == 2
    assert "127.0.0.1" in str(info.value)


# -- upsert / publish after lost answers -------------------------------------------------------


STEPS: list[dict[str, Any]] = [{"handle": "trigger", "type": "trigger", "position": 0},
         {"handle": "email_1", "type": "channel", "position": 1, "channel_type": "email",
          "template": {"channel_type": "email", "data": {"subject": "Hi", "body": "<p>x</p>"}}},
         {"handle": "end", "type": "end", "position": 2}]


def server_steps() -> list[dict[str, Any]]:
    """STEPS as a server echoes them: ids, nulls and empty defaults added, another order."""
    out: list[dict[str, Any]] = []
    for i, step in enumerate(reversed(STEPS)):
        echoed = {**step, "id": f"step-{i}", "parent_step_handle": None, "branch_handle": None,
                  "settings": {}, "conditions": []}
        if "template" in step:
            echoed["template"] = {**dict(step["template"]), "id": "tpl-1"}
        out.append(echoed)
    return out


def test_upsert_409_after_lost_answer_is_success_when_content_matches(server: ScriptedServer) -> None:
    payload = {"name": "Welcome", "active": True, "steps": STEPS}
    server.script(
        Answer(200, notiflow_json(), delay=1.0),  # lands, but the answer is too late
        envelope(409, "conflict"),  # the retry meets our own new version
        Answer(200, notiflow_json(sha="sha2", steps=server_steps())),  # the follow-up GET
    )
    with client_for(server, timeouts=Timeouts(connect=1.0, read=0.3)) as (client, _):
        result = client.upsert_notiflow("welcome", payload, expected_sha="sha1")
    assert not result.created and result.notiflow.current_version is not None
    assert result.notiflow.current_version.sha == "sha2"
    assert [s.method for s in server.seen] == ["PUT", "PUT", "GET"]


def test_upsert_409_after_lost_answer_is_conflict_when_content_differs(server: ScriptedServer) -> None:
    payload = {"name": "Welcome", "steps": STEPS}
    other = [dict(s) for s in STEPS]
    other[1] = {**other[1], "template": {"channel_type": "email", "data": {"subject": "Edited", "body": "x"}}}
    server.script(envelope(503, "unavailable"), envelope(409, "conflict"),
                  Answer(200, notiflow_json(sha="sha9", steps=other)))
    with client_for(server) as (client, _), pytest.raises(ConflictError) as info:
        client.upsert_notiflow("welcome", payload, expected_sha="sha1")
    assert info.value.details.get("after_retry") is True
    assert [s.method for s in server.seen] == ["PUT", "PUT", "GET"]


def test_upsert_first_attempt_409_is_plain_conflict(server: ScriptedServer) -> None:
    server.script(envelope(409, "conflict"))
    with client_for(server) as (client, _), pytest.raises(ConflictError) as info:
        client.upsert_notiflow("welcome", {"steps": STEPS}, expected_sha="sha1")
    assert "after_retry" not in info.value.details and len(server.seen) == 1


def test_upsert_409_after_429_is_plain_conflict(server: ScriptedServer) -> None:
    """A 429 was refused before processing: nothing landed, so no GET."""
    server.script(envelope(429, "rate_limited", details={"retry_after": 0}), envelope(409, "conflict"))
    with client_for(server) as (client, _), pytest.raises(ConflictError):
        client.upsert_notiflow("welcome", {"steps": STEPS}, expected_sha="sha1")
    assert [s.method for s in server.seen] == ["PUT", "PUT"]


def test_publish_not_retried_when_already_published(server: ScriptedServer) -> None:
    server.script(Answer(drop=True), Answer(200, notiflow_json(status="published", published=True)))
    with client_for(server) as (client, _):
        result = client.publish_notiflow("welcome")
    assert result.current_version is not None and result.current_version.status == "published"
    assert [s.method for s in server.seen] == ["POST", "GET"]


def test_publish_retried_when_not_yet_published(server: ScriptedServer) -> None:
    server.script(envelope(500, "internal_error"), Answer(200, notiflow_json(status="draft")),
                  Answer(200, notiflow_json(status="published", published=True)))
    with client_for(server) as (client, _):
        result = client.publish_notiflow("welcome")
    assert result.current_version is not None and result.current_version.status == "published"
    assert [s.method for s in server.seen] == ["POST", "GET", "POST"]
    assert server.seen[0].path.endswith("/notiflows/welcome/publish")


def test_payload_matches_remote() -> None:
    remote = RemoteNotiflow.from_json(notiflow_json(steps=server_steps()))
    assert payload_matches_remote({"name": "Welcome", "active": True, "steps": STEPS}, remote)
    assert payload_matches_remote({"steps": STEPS}, remote)  # absent fields are not compared
    assert not payload_matches_remote({"name": "Other", "steps": STEPS}, remote)
    assert not payload_matches_remote({"active": False, "steps": STEPS}, remote)
    assert not payload_matches_remote({"steps": STEPS[:2]}, remote)
    moved = [dict(s) for s in STEPS]
    moved[1]["position"] = 5
    assert not payload_matches_remote({"steps": moved}, remote)


# -- secrets -----------------------------------------------------------------------------------


def test_token_never_leaks(server: ScriptedServer, caplog: pytest.LogCaptureFixture,
                           capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(envelope(401, "unauthenticated"), envelope(503, "unavailable"), Answer(drop=True),
                  Answer(200, "<html>", content_type="text/html"))
    errors: list[BaseException] = []
    with client_for(server, max_attempts=1) as (client, _):
        for _ in range(4):
            try:
                client.whoami()
            except ApiError as exc:
                errors.append(exc)
        texts = [repr(client), str(client), repr(client._transport), repr(client._transport._auth), repr(vars(client))]
    assert len(errors) == 4
    for failure in errors:
        chain: BaseException | None = failure
        while chain is not None:
            texts += [str(chain), repr(chain), repr(getattr(chain, "__dict__", ""))]
            chain = chain.__cause__ or chain.__context__
    out = capsys.readouterr()
    texts += [caplog.text, out.out, out.err]
    for text in texts:
        assert TOKEN not in text


def test_client_validates_arguments() -> None:
    with pytest.raises(ValueError):
        ManagementClient("ftp://x", TOKEN, "demo")
    with pytest.raises(ValueError):
        ManagementClient("http://127.0.0.1:1", "", "demo")
    with pytest.raises(ValueError):
        ManagementClient("http://127.0.0.1:1", TOKEN, "demo", concurrency=0)


def test_pool_sized_to_concurrency() -> None:
    with ManagementClient("http://127.0.0.1:1", TOKEN, "demo", concurrency=7) as client:
        adapter = client._transport.session.get_adapter("http://127.0.0.1:1/")
        assert adapter._pool_maxsize == 7  # type: ignore[attr-defined]
        assert client.timeouts == Timeouts(5.0, 30.0)


# -- the token echoed in an envelope (issue 3 audit) ---------------------------------------------


def _all_text(err: ApiError) -> str:
    return " ".join([str(err), repr(err), repr(err.__dict__), repr(err.to_dict()), err.message])


@pytest.mark.parametrize("token", [TOKEN, "SuperSecretPlain123"])  # with and without the nf_at_ prefix
def test_envelope_echoing_the_token_is_scrubbed(server: ScriptedServer, token: str) -> None:
    server.script(envelope(401, "unauthenticated", f"Invalid token {token}",
                           details={"token": token, "nested": [{"why": f"got '{token}'"}], token: "as a key"}))
    with ManagementClient(server.base_url, token, "demo", backoff_base=0.01) as client, \
            pytest.raises(AuthError) as info:
        client.whoami()
    text = _all_text(info.value)
    assert token not in text
    assert info.value.message == "Invalid token ***"
    assert info.value.details == {"token": "***", "nested": [{"why": "got '***'"}], "***": "as a key"}


def test_422_field_messages_echoing_the_token_are_scrubbed(server: ScriptedServer) -> None:
    server.script(envelope(422, "validation_failed", details={"fields": [
        {"field": "steps[1].template.data.body", "message": f"contains {TOKEN}", "reason": "x"}]}))
    with client_for(server) as (client, _), pytest.raises(ValidationFailedError) as info:
        client.upsert_notiflow("welcome", {"steps": []}, expected_sha=None)
    assert TOKEN not in _all_text(info.value) and "contains ***" in str(info.value)


def test_html_401_from_a_proxy_gets_the_token_hint(server: ScriptedServer) -> None:
    server.script(Answer(401, "<html>401 Unauthorized</html>", content_type="text/html"))
    with client_for(server) as (client, _), pytest.raises(BadResponseError) as info:
        client.whoami()
    assert "NOTIFLOWS_TOKEN" in info.value.hint and "--api-url" not in info.value.hint


# -- publish guarded by expected_sha (issue 3 audit) ---------------------------------------------


def _dashboard_draft() -> dict[str, Any]:
    data = notiflow_json(sha="sha-dash", status="draft")
    data["current_version"]["created_by"] = {"type": "member", "id": "m1", "name": "Ada Lovelace"}
    data["current_version"]["version_number"] = 2
    return data


def test_publish_with_expected_sha_refuses_a_changed_draft(server: ScriptedServer) -> None:
    """503 on the first POST, then the GET before the retry shows someone else's draft: no POST."""
    from notiflows_deploy.api.errors import DraftChangedError

    server.script(envelope(503, "unavailable"), Answer(200, _dashboard_draft()))
    with client_for(server) as (client, _), pytest.raises(DraftChangedError) as info:
        client.publish_notiflow("welcome", expected_sha="sha1")
    assert [s.method for s in server.seen] == ["POST", "GET"]
    err = info.value
    assert err.code == "draft_changed" and err.current_sha == "sha-dash" and err.changed_by == "Ada Lovelace"
    assert "the draft changed on the server after our push (sha sha-dash, by Ada Lovelace); not published" in str(err)


def test_publish_with_expected_sha_checks_before_a_429_retry_too(server: ScriptedServer) -> None:
    """A 429 landed nothing, but a dashboard edit can land during its wait just the same."""
    from notiflows_deploy.api.errors import DraftChangedError

    server.script(envelope(429, "rate_limited", details={"retry_after": 0}), Answer(200, _dashboard_draft()))
    with client_for(server) as (client, _), pytest.raises(DraftChangedError):
        client.publish_notiflow("welcome", expected_sha="sha1")
    assert [s.method for s in server.seen] == ["POST", "GET"]


def test_publish_with_expected_sha_retries_while_the_draft_is_ours(server: ScriptedServer) -> None:
    server.script(envelope(500, "internal_error"), Answer(200, notiflow_json(sha="sha1", status="draft")),
                  Answer(200, notiflow_json(sha="sha1", status="published", published=True)))
    with client_for(server) as (client, _):
        result = client.publish_notiflow("welcome", expected_sha="sha1")
    assert result.published_version is not None and result.published_version.sha == "sha1"
    assert [s.method for s in server.seen] == ["POST", "GET", "POST"]


def test_publish_with_expected_sha_ours_live_under_a_new_draft_is_success(server: ScriptedServer) -> None:
    """The lost first POST did publish ours; the dashboard then saved a draft on top: no retry."""
    live = notiflow_json(sha="sha1", status="published", published=True)["current_version"]
    data = _dashboard_draft()
    data["published_version"] = live
    server.script(Answer(drop=True), Answer(200, data))
    with client_for(server) as (client, _):
        result = client.publish_notiflow("welcome", expected_sha="sha1")
    assert result.published_version is not None and result.published_version.sha == "sha1"
    assert [s.method for s in server.seen] == ["POST", "GET"]


def test_publish_with_expected_sha_not_retried_when_it_cannot_check(server: ScriptedServer) -> None:
    server.script(envelope(503, "unavailable"), *[envelope(503, "unavailable")] * 5)
    with client_for(server, max_attempts=3) as (client, _), pytest.raises(ServerError) as info:
        client.publish_notiflow("welcome", expected_sha="sha1")
    assert [s.method for s in server.seen] == ["POST", "GET", "GET", "GET"]  # the GET's own retries, no POST
    assert "not retried" in str(info.value)


def test_publish_with_expected_sha_notiflow_gone(server: ScriptedServer) -> None:
    from notiflows_deploy.api.errors import DraftChangedError

    server.script(envelope(503, "unavailable"), envelope(404, "not_found", details={"resource": "notiflow"}))
    with client_for(server) as (client, _), pytest.raises(DraftChangedError) as info:
        client.publish_notiflow("welcome", expected_sha="sha1")
    assert info.value.current_sha is None and "gone" in str(info.value)
    assert [s.method for s in server.seen] == ["POST", "GET"]
