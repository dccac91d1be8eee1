"""HTTP front of the emulator: routing, auth, error envelope, fault injection, control endpoints.

API routes live under `base_path` (default /management/v1); control routes under /_emulator/ need no
token (the emulator binds to loopback). HTTP/1.1 keep-alive, one write per answer, no Nagle.

Every answer that is not a success is the error envelope, also for what the stdlib refuses (bad
request line 400, URL too long 414, bad HTTP version 505, too many headers 431) and for an
unexpected bug (500, one line on stderr, never a traceback). Request bodies: at most
`max_body_bytes` (default 5 MiB; larger -> 413 ``payload_too_large``, not read), a decimal
Content-Length (else 400), JSON (``application/json``, parameters allowed, or ``*/*+json``; another
media type -> 415 ``unsupported_media_type``; no Content-Type at all is accepted, as the body must
parse as a JSON object anyway), strict JSON (no NaN/Infinity, at most 100 levels deep, else 400
``invalid_json``). A body is only looked at once the route and the project are known (404 first).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote

from notiflows_deploy.emulator.content import loads_strict
from notiflows_deploy.emulator.faults import Decision, FailRule, FaultInjector, Faults, code_for
from notiflows_deploy.emulator.store import ApiProblem, Store, bad_param, dumps

DEFAULT_TOKEN = "nf_at_emulator"
DEFAULT_PROJECT = "demo"
DEFAULT_TOKEN_NAME = "ci-deploy"
BASE_PATH = "/management/v1"
CONTROL_PREFIX = "/_emulator/"
ERROR_TYPE = "https://notiflows.com/docs/api/errors#{code}-{status}"
REQUEST_LOG_SIZE = 10_000
MAX_BODY_BYTES = 5 * 1024 * 1024
DISCARD_LIMIT = 64 * 1024 * 1024  # a refused body is read and dropped up to this size, ...
DISCARD_TIMEOUT = 2.0  # ... while it keeps arriving at least this often (seconds)
_MAX_ERROR_MESSAGE = 200  # the stdlib quotes the refused request line in its messages


def error_body(status: int, code: str, message: str, request_id: str, details: dict[str, Any]) -> bytes:
    return dumps({"error": {
        "type": ERROR_TYPE.format(code=code, status=status),
        "code": code,
        "message": message,
        "status": status,
        "request_id": request_id,
        "details": details,
    }})


def _int_param(query: dict[str, list[str]], name: str, default: int | None, minimum: int) -> int | None:
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        raise bad_param(name, f"{name} must be an integer") from None
    if value < minimum:
        raise bad_param(name, f"{name} must be >= {minimum}")
    return value


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    emulator: Emulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, killed deploy) is normal here, not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "notiflows-emulator"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    # ---- plumbing ----

    def setup(self) -> None:
        super().setup()
        self.server.emulator._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.emulator._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: a test run makes thousands of requests

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors raised by the stdlib itself (bad request line, unknown method): same envelope.

        Called before the request line is parsed, so `command` and `path` may be unset."""
        self.close_connection = True
        request_id = f"req_{uuid.uuid4().hex[:24]}"
        text = " ".join((message or explain or "Bad request").split())
        if len(text) > _MAX_ERROR_MESSAGE:
            text = text[:_MAX_ERROR_MESSAGE] + "…"
        body = error_body(code, code_for(code), text, request_id, {})
        if getattr(self, "command", None) == "HEAD":
            body = b""
        with contextlib.suppress(OSError):  # the client may already be gone
            self._send(code, body, request_id)

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _send(self, status: int, body: bytes, request_id: str, extra: Mapping[str, str] | None = None) -> None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Status"
        head = [
            f"HTTP/1.1 {status} {phrase}",
            f"Server: {self.server_version}",
            f"Date: {self.server.emulator._date()}",
            "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}",
            f"x-request-id: {request_id}",
        ]
        for key, value in (extra or {}).items():
            head.append(f"{key}: {value}")
        if self.close_connection:
            head.append("Connection: close")
        # Logged before the write so a client that has its answer always finds it in the log.
        self.server.emulator._log(getattr(self, "command", None) or "", getattr(self, "path", ""), status)
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def _send_json(self, status: int, value: Any, request_id: str) -> None:
        self._send(status, dumps(value), request_id)

    def _send_problem(self, problem: ApiProblem, request_id: str) -> None:
        body = error_body(problem.status, problem.code, problem.message, request_id, problem.details)
        self._send(problem.status, body, request_id, problem.headers)

    # ---- dispatch ----

    def _handle(self) -> None:
        method = self.command
        raw_path, _, query_text = self.path.partition("?")
        request_id = self.headers.get("x-request-id") or f"req_{uuid.uuid4().hex[:24]}"
        try:
            raw_body = self._read_body()
            if raw_path.startswith(CONTROL_PREFIX):
                self._control(method, raw_path[len(CONTROL_PREFIX):], raw_body, request_id)
            else:
                self._api(method, raw_path, query_text, raw_body, request_id)
        except ApiProblem as problem:  # from _read_body: the connection cannot be reused
            self.close_connection = True
            self._send_problem(problem, request_id)
        except (ConnectionError, TimeoutError):
            raise  # the client went away: _Server.handle_error stays quiet
        except Exception as exc:  # a bug: one line on stderr and a 500 envelope, not a traceback
            self.close_connection = True
            print(f"notiflows-deploy emulator: internal error on {method} {raw_path}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            bug = ApiProblem(500, "internal_error", f"Internal emulator error ({type(exc).__name__})")
            with contextlib.suppress(OSError):
                self._send_problem(bug, request_id)

    def _read_body(self) -> bytes:
        """The whole body, or ApiProblem (after which the connection is closed unread).

        Always consumed before answering: body bytes left unread would corrupt the next request on
        this keep-alive connection."""
        if self.headers.get("Transfer-Encoding"):
            raise ApiProblem(400, "bad_request", "Chunked bodies are not supported; send Content-Length",
                             {"reason": "invalid_param", "param": "Transfer-Encoding"})
        values = self.headers.get_all("Content-Length") or []
        if len(set(values)) > 1 or not all(v.strip().isdigit() and v.strip().isascii() for v in values):
            raise ApiProblem(400, "bad_request", "Bad Content-Length: want one decimal number of bytes",
                             {"reason": "invalid_param", "param": "Content-Length"})
        length = int(values[0]) if values else 0
        limit = self.server.emulator.max_body_bytes
        if length > limit:
            self._discard(length)
            raise ApiProblem(413, "payload_too_large", f"The body is {length} bytes; at most {limit} are accepted",
                             {"limit": limit, "length": length})
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client closed mid-body: never act on a truncated request
            raise ConnectionAbortedError("request body truncated")
        return body

    def _discard(self, length: int) -> None:
        """Read and drop (a bounded part of) a refused body, so that the client, still sending,
        gets the 413 rather than a connection reset; the connection is closed afterwards."""
        remaining = min(length, DISCARD_LIMIT)
        self.connection.settimeout(DISCARD_TIMEOUT)
        with contextlib.suppress(OSError):
            while remaining > 0:
                chunk = self.rfile.read1(min(65536, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)

    def _api(self, method: str, path: str, query_text: str, raw_body: bytes, request_id: str) -> int | None:
        em = self.server.emulator
        em._count()
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        decision: Decision = em.faults.decide(method, path, token)
        if decision.latency:
            time.sleep(decision.latency)  # no lock held: concurrent clients overlap
        if decision.drop:
            self.close_connection = True
            em._log(method, self.path, None)
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return None
        try:
            if decision.status is not None:
                headers = {"Retry-After": str(decision.retry_after)} if decision.retry_after is not None else {}
                raise ApiProblem(decision.status, code_for(decision.status), _fault_message(decision.status),
                                 dict(decision.details), headers)
            actor = em._actors.get(token)
            if actor is None:
                raise ApiProblem(401, "unauthenticated", "Authentication required", {"auth": "account_token"},
                                 {"WWW-Authenticate": 'Bearer realm="notiflows"'})
            if not path.startswith(em.base_path + "/"):
                raise ApiProblem(404, "not_found", "No such route", {"resource": "route", "id": path})
            parts = [unquote(p) for p in path[len(em.base_path) + 1:].split("/")]
            status, payload = self._route(method, parts, parse_qs(query_text), raw_body, actor)
        except ApiProblem as problem:
            self._send_problem(problem, request_id)
            return problem.status
        if isinstance(payload, bytes):
            self._send(status, payload, request_id)
        else:
            self._send_json(status, payload, request_id)
        return status

    def _route(
        self, method: str, parts: list[str], query: dict[str, list[str]], raw_body: bytes, actor: dict[str, str]
    ) -> tuple[int, Any]:
        store = self.server.emulator.store
        n = len(parts)
        if n < 3 or parts[0] != "projects" or not parts[1]:
            raise ApiProblem(404, "not_found", "No such route", {"resource": "route", "id": "/".join(parts)})
        slug, rest = parts[1], parts[2:]
        if rest == ["whoami"]:
            _allow(method, "GET")
            return 200, store.whoami(slug)
        if rest == ["notiflows"]:
            _allow(method, "GET")
            page = _int_param(query, "page", 1, 1)
            limit = _int_param(query, "limit", 25, 1)
            assert page is not None and limit is not None
            filters = {k: v[-1] for k, v in query.items() if k in ("query", "active", "published") and v}
            return 200, store.list_notiflows(slug, page, limit, filters)
        if rest[0] != "notiflows" or not rest[1:] or not rest[1]:
            raise ApiProblem(404, "not_found", "No such route", {"resource": "route", "id": "/".join(parts)})
        handle, tail = rest[1], rest[2:]
        if not tail:
            _allow(method, "GET", "PUT")
            if method == "GET":
                return 200, store.get_notiflow_bytes(slug, handle)
            store.require(slug)  # an unknown project is a 404 whatever the body
            return store.upsert(slug, handle, self._body_object(raw_body), actor)
        if tail == ["publish"]:
            _allow(method, "POST")
            if raw_body.strip():  # publish takes no fields; a body sent must still be JSON
                store.require(slug, handle)
                self._body_object(raw_body)
            return 200, store.publish(slug, handle, actor)
        if tail == ["versions"]:
            _allow(method, "GET")
            limit = _int_param(query, "limit", 25, 1)
            assert limit is not None
            after = _int_param(query, "after", None, 0)
            before = _int_param(query, "before", None, 0)
            return 200, store.list_versions(slug, handle, limit, after, before)
        if len(tail) == 2 and tail[0] == "versions":
            _allow(method, "GET")
            try:
                number = int(tail[1])
            except ValueError:
                raise bad_param("version_number", "version_number must be an integer") from None
            return 200, store.get_version(slug, handle, number)
        raise ApiProblem(404, "not_found", "No such route", {"resource": "route", "id": "/".join(parts)})

    # ---- control endpoints ----

    def _body_object(self, raw: bytes) -> dict[str, Any]:
        """The body as a JSON object; 415 for a non-JSON media type, 400 for anything not a JSON object."""
        content_type = self.headers.get("Content-Type")
        if raw and content_type is not None and not _is_json_media_type(content_type):
            shown = " ".join(content_type.split())[:80]
            raise ApiProblem(415, "unsupported_media_type",
                             f"Unsupported Content-Type {shown!r}: send the body as application/json",
                             {"reason": "unsupported_media_type", "content_type": shown})
        return _json_object(raw)

    def _control(self, method: str, name: str, raw_body: bytes, request_id: str) -> int:
        em = self.server.emulator
        try:
            body = self._body_object(raw_body) if raw_body.strip() else {}
            result: Any
            if (method, name) == ("GET", "state"):
                result = em.state()
            elif (method, name) == ("GET", "faults"):
                result = em.faults.to_json()
            elif (method, name) == ("GET", "requests"):
                result = {"request_count": em.request_count, "requests": em.requests}
            elif (method, name) == ("POST", "faults"):
                rules = body.pop("fail_next", None)
                if body.pop("clear", False):
                    em.clear_faults()
                em.set_faults(**body)
                for rule in [rules] if isinstance(rules, dict) else (rules or []):
                    em.fail_next(**rule)
                result = em.faults.to_json()
            elif (method, name) == ("POST", "fail-next"):
                em.fail_next(**body)
                result = em.faults.to_json()
            elif (method, name) == ("POST", "dashboard-edit"):
                result = em.dashboard_edit(body["project"], body["handle"], body.get("patch"),
                                           publish=bool(body.get("publish", False)))
            elif (method, name) == ("POST", "remote-only"):
                result = em.create_remote_only(body["project"], body["handle"], name=body.get("name"),
                                               steps=body.get("steps"), publish=bool(body.get("publish", False)))
            elif (method, name) == ("POST", "reset"):
                em.reset()
                result = em.state()
            else:
                raise ApiProblem(404, "not_found", "No such control endpoint", {"resource": "route", "id": name})
        except ApiProblem as problem:
            self._send_problem(problem, request_id)
            return problem.status
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            bad = ApiProblem(400, "bad_request", f"Bad control request: {exc}", {"reason": "invalid_param"})
            self._send_problem(bad, request_id)
            return 400
        self._send_json(200, result, request_id)
        return 200


def _fault_message(status: int) -> str:
    if status == 429:
        return "Rate limit exceeded"
    if status >= 500:
        return "Service temporarily unavailable (injected fault)"
    return "Injected failure"


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise ApiProblem(405, "method_not_allowed", f"{method} is not allowed here",
                         {"allowed": list(allowed)}, {"Allow": ", ".join(allowed)})


def _is_json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = loads_strict(raw.decode("utf-8")) if raw.strip() else None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN, too deep, huge integers
        message = " ".join(str(exc).split())[:_MAX_ERROR_MESSAGE]
        raise ApiProblem(400, "bad_request", f"Invalid JSON body: {message}", {"reason": "invalid_json"}) from None
    if not isinstance(value, dict):
        raise ApiProblem(400, "bad_request", "The body must be a JSON object", {"reason": "invalid_json"})
    return value


class Emulator:
    """The Management API emulator, in-process.

    tokens: accepted bearer tokens (iterable, or mapping token -> display name of its actor);
    default {"nf_at_emulator"}. projects: slugs (iterable, or mapping slug -> name); default {"demo"}.
    faults: a `Faults` or a mapping of its fields (rate_limit may be "N/W").
    max_body_bytes: larger request bodies get 413 (default 5 MiB).
    fresh_drafts: after a publish, create a fresh draft equal to the published version (the
    versioning docs' wording; off by default, see store.Store).
    """

    def __init__(
        self,
        tokens: Iterable[str] | Mapping[str, str] | None = None,
        projects: Iterable[str] | Mapping[str, str] | None = None,
        data_file: str | os.PathLike[str] | None = None,
        faults: Faults | Mapping[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        base_path: str = BASE_PATH,
        max_body_bytes: int = MAX_BODY_BYTES,
        fresh_drafts: bool = False,
    ) -> None:
        if max_body_bytes < 0:
            raise ValueError("max_body_bytes must be >= 0")
        self.max_body_bytes = max_body_bytes
        token_map = _as_mapping(tokens, DEFAULT_TOKEN, lambda _t: DEFAULT_TOKEN_NAME)
        project_map = _as_mapping(projects, DEFAULT_PROJECT, lambda slug: slug)
        self.tokens = list(token_map)
        self.projects = list(project_map)
        # Actors computed once: no hashing per request.
        self._actors = {
            t: {"type": "account_token", "id": "at_" + hashlib.sha256(t.encode()).hexdigest()[:16], "name": name}
            for t, name in token_map.items()
        }
        self.store = Store(project_map, data_file, fresh_drafts=fresh_drafts)
        self.faults = FaultInjector()
        if isinstance(faults, Faults):
            self.faults.configure(**faults.to_json())
        elif faults:
            self.faults.configure(**dict(faults))
        self.host = host
        self._port = port
        self.base_path = "/" + base_path.strip("/")
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._counter_lock = threading.Lock()
        self._request_count = 0
        self._log_entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=REQUEST_LOG_SIZE)
        self._connections: set[socket.socket] = set()
        self._date_cache: tuple[int, str] = (0, "")

    # ---- lifecycle ----

    def start(self) -> str:
        if self._server is not None:
            return self.base_url
        server = _Server((self.host, self._port), _Handler)
        server.emulator = self
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="notiflows-emulator", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        # Keep-alive connections would otherwise keep answering from a stopped emulator.
        with self._counter_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- addresses ----

    @property
    def port(self) -> int:
        return self._port

    @property
    def root_url(self) -> str:
        """http://host:port (control endpoints live under root_url + "/_emulator/")."""
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        """The Management API base URL (what --api-url takes)."""
        return self.root_url + self.base_path

    @property
    def token(self) -> str:
        return self.tokens[0]

    @property
    def project(self) -> str:
        return self.projects[0]

    # ---- controls (also reachable over HTTP under /_emulator/) ----

    def set_faults(self, **changes: Any) -> Faults:
        """latency_ms, rate_limit ("N/W" | int | None), rate_window, error_rate, error_status, drop_rate, seed."""
        return self.faults.configure(**changes)

    def clear_faults(self) -> None:
        self.faults.clear()

    def fail_next(
        self, method: str, path: str, status: int = 503, count: int = 1, drop: bool = False,
        retry_after: int | None = None,
    ) -> None:
        """Fail the next `count` API requests whose method ("*" = any) and path (regex search) match."""
        self.faults.add_rule(FailRule(method, path, status, count, drop, retry_after))

    def dashboard_edit(
        self, project: str, handle: str, patch: Mapping[str, Any] | None = None, publish: bool = False
    ) -> dict[str, Any]:
        return self.store.dashboard_edit(project, handle, patch, publish)

    def create_remote_only(
        self, project: str, handle: str, name: str | None = None, steps: list[dict[str, Any]] | None = None,
        publish: bool = False,
    ) -> dict[str, Any]:
        return self.store.create_remote_only(project, handle, name=name, steps=steps, publish=publish)

    def reset(self) -> None:
        """Empty projects, no faults, counters at zero."""
        self.store.reset()
        self.faults.clear()
        with self._counter_lock:
            self._request_count = 0
            self._log_entries.clear()

    def state(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "request_count": self.request_count, "faults": self.faults.to_json(),
                **self.store.snapshot()}

    @property
    def request_count(self) -> int:
        """API requests received (control endpoints excluded), faulted ones included."""
        with self._counter_lock:
            return self._request_count

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The last API/control requests: {method, path, status}; status None = dropped."""
        with self._counter_lock:
            return list(self._log_entries)

    # ---- used by the handler ----

    def _count(self) -> None:
        with self._counter_lock:
            self._request_count += 1

    def _log(self, method: str, path: str, status: int | None) -> None:
        with self._counter_lock:
            self._log_entries.append({"method": method, "path": path, "status": status})

    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._counter_lock:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _date(self) -> str:
        now = int(time.time())
        cached = self._date_cache
        if cached[0] != now:
            cached = (now, formatdate(now, usegmt=True))
            self._date_cache = cached
        return cached[1]


def _as_mapping(
    values: Iterable[str] | Mapping[str, str] | None, default: str, name_for: Any
) -> dict[str, str]:
    if values is None:
        return {default: name_for(default)}
    if isinstance(values, Mapping):
        result = {str(k): str(v) for k, v in values.items()}
    else:
        result = {str(v): name_for(str(v)) for v in values}
    return result or {default: name_for(default)}
