"""HTTP transport: one pooled requests.Session, fixed headers, explicit timeouts.

Timeouts: `connect` bounds connecting and `read` each wait for bytes, which alone cannot stop a
server that trickles its answer a byte at a time (each byte restarts the read timeout). So every
request also has a total deadline (`Timeouts.total`, default connect + read = 35 s): one shared
watchdog thread shuts the request's socket down when it passes, in the headers or the body, and
the request fails with ApiTimeoutError ``read_timeout``, retried like any read timeout. Sessions
built here (`build_session`) carry the connection classes that tell the watchdog their socket; a
caller's own session keeps only the per-read timeouts.

This is the ONLY place where requests' exceptions are caught; each becomes a TransportError or
ApiTimeoutError (chained with ``from``) whose message names the method, the URL path and the host,
never a header. The token lives only in a `Secret` inside a `BearerAuth` object (their reprs hide it); passing an
auth object on every request also stops requests from replacing the header with ~/.netrc
credentials. Redirects are not followed (a PUT must not silently become a GET elsewhere).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import math
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
import urllib3.poolmanager
from requests.adapters import HTTPAdapter

from notiflows_deploy import __version__
from notiflows_deploy.api.errors import ApiError, ApiTimeoutError, TransportError

USER_AGENT = f"notiflows-deploy/{__version__} (+python-requests)"


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `total` bounds one whole request (connect, send, headers, body); None: connect + read."""

    connect: float = 5.0
    read: float = 30.0
    total: float | None = None

    def __post_init__(self) -> None:
        if self.connect <= 0 or self.read <= 0 or (self.total is not None and self.total <= 0):
            raise ValueError("timeouts must be positive")

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)

    @property
    def deadline(self) -> float:
        """The total budget of one request, in seconds."""
        return self.total if self.total is not None else self.connect + self.read


# --- the total deadline ----------------------------------------------------------------------------


class _Watch:
    """One request's deadline; `sock` is told by the connection once it reads the answer.

    State changes under the watchdog's one lock (requests and the watchdog thread both touch it).
    """

    __slots__ = ("active", "deadline", "expired", "sock")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sock: Any = None  # a socket, or urllib3's TLS-in-TLS transport
        self.active = True
        self.expired = False

    def attach(self, sock: Any) -> None:
        with _WATCH_LOCK:
            self.sock = sock
            late = self.expired
        if late:  # the deadline passed while connecting or sending
            _shutdown(sock)

    def expire(self) -> None:
        with _WATCH_LOCK:
            if not self.active:
                return
            self.expired = True
            sock = self.sock
        _shutdown(sock)

    def disarm(self) -> None:
        with _WATCH_LOCK:
            self.active = False
            self.sock = None


_WATCH_LOCK = threading.Lock()


def _shutdown(sock: Any) -> None:
    """Stop a request's socket: its blocked read returns at once and the request fails."""
    shutdown = getattr(sock, "shutdown", None)  # a TLS-in-TLS transport (HTTPS proxy) may have none
    if shutdown is not None:
        with contextlib.suppress(Exception):  # already closed: nothing left to stop; never kill the watchdog
            shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread for the process: expires each `_Watch` at its deadline.

    A heap of deadlines. Finished requests stay in it until their deadline passes, so the thread
    sleeps until the earliest deadline and is woken by `arm` only when an earlier one comes (rarely:
    deadlines mostly come in order), not once per request.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._wakes_at = math.inf  # when the thread looks again by itself

    def arm(self, seconds: float) -> _Watch:
        watch = _Watch(time.monotonic() + seconds)
        with self._cond:
            heapq.heappush(self._heap, (watch.deadline, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="notiflows-api-deadline", daemon=True)
                self._thread.start()
            if watch.deadline < self._wakes_at:
                self._cond.notify()
        return watch

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due: list[_Watch] = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
                if not due:
                    self._wakes_at = self._heap[0][0] if self._heap else math.inf
                    self._cond.wait(None if not self._heap else self._wakes_at - now)
                    self._wakes_at = -math.inf  # awake: it looks at the heap before sleeping again
                    continue
            for watch in due:
                watch.expire()  # a no-op for requests that finished in time


_WATCHDOG = _Watchdog()
_CURRENT = threading.local()  # the calling thread's `_Watch` while it sends a request


def _watch_current_socket(sock: Any) -> None:
    watch: _Watch | None = getattr(_CURRENT, "watch", None)
    if watch is not None:
        watch.attach(sock)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def getresponse(self) -> Any:  # the answer is urllib3's HTTPResponse
        _watch_current_socket(self.sock)
        return super().getresponse()


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def getresponse(self) -> Any:
        _watch_current_socket(self.sock)
        return super().getresponse()


class _WatchedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def _watch_pools(manager: Any) -> None:
    """Make `manager` (a urllib3 PoolManager) build watched pools, unless it has its own (SOCKS)."""
    if getattr(manager, "pool_classes_by_scheme", None) is urllib3.poolmanager.pool_classes_by_scheme:
        manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections tell the watchdog their socket (also through an HTTP proxy)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(*args, **kwargs)
        _watch_pools(manager)
        return manager


class Secret:
    """A string that does not show itself: repr/str/format give ``***``; `reveal()` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    __hash__ = None  # type: ignore[assignment]


class BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: Secret) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        return r

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BearerAuth) and other._token == self._token

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes
    elapsed: float  # seconds

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def new_request_id() -> str:
    return f"nfd_{uuid.uuid4().hex}"


def build_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    # Retries are ours (api/retry.py): urllib3 must not retry behind our back.
    adapter = _WatchedAdapter(pool_connections=1, pool_maxsize=max(1, pool_size), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Is `exc`, or anything it wraps (args, `reason`, cause, context), one of `kinds`?

    requests hides the interesting urllib3 error several wrappers deep, and not always in the same
    place (e.g. ConnectionError(ReadTimeoutError) for a timeout while reading the body).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, kinds):
            return True
        wrapped = [a for a in current.args if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            wrapped.append(reason)
        current = wrapped[0] if wrapped else current.__cause__ or current.__context__
    return False


def _is_read_timeout(exc: BaseException) -> bool:
    return _caused_by(exc, (urllib3.exceptions.ReadTimeoutError, requests.exceptions.ReadTimeout))


def _is_connect_failure(exc: BaseException) -> bool:
    return _caused_by(exc, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.NameResolutionError))


class Transport:
    """Sends one HTTP request and returns the raw answer, or raises TransportError."""

    def __init__(
        self,
        token: Secret,
        *,
        timeouts: Timeouts,
        pool_size: int,
        session: requests.Session | None = None,
    ) -> None:
        self.timeouts = timeouts
        self._auth = BearerAuth(token)
        self._owns_session = session is None
        # A caller's session is used as is (its pool sizing included); auth goes per request.
        self.session = session if session is not None else build_session(pool_size)
        self._headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }

    def __repr__(self) -> str:
        return f"Transport(timeouts={self.timeouts!r})"

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def send(
        self,
        method: str,
        url: str,
        *,
        path: str,
        request_id: str,
        json_body: Any = None,
        params: dict[str, str | int] | None = None,
    ) -> HttpResponse:
        """`path` is what messages show (no host); `url` is where the request goes."""
        headers = dict(self._headers)
        headers["x-request-id"] = request_id
        data: bytes | None = None
        if json_body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        host = urlsplit(url).netloc
        watch = _WATCHDOG.arm(self.timeouts.deadline)
        _CURRENT.watch = watch
        try:
            response, body = self._exchange(method, url, path, host, request_id, data, headers, params, watch)
        finally:
            _CURRENT.watch = None
            watch.disarm()
        return HttpResponse(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=body,
            elapsed=response.elapsed.total_seconds(),
        )

    def _exchange(
        self, method: str, url: str, path: str, host: str, request_id: str, data: bytes | None,
        headers: dict[str, str], params: dict[str, str | int] | None, watch: _Watch,
    ) -> tuple[requests.Response, bytes]:
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                timeout=self.timeouts.as_tuple(),
                allow_redirects=False,  # a redirect would turn PUT into GET and may drop the token
                auth=self._auth,
            )
            body = response.content
        except requests.exceptions.RequestException as exc:
            if watch.expired:  # the watchdog cut it off: whatever requests made of the closed socket
                raise self._past_deadline(method, path, host, request_id) from exc
            raise self._failure(exc, method, path, host, request_id) from exc
        return response, body

    def _failure(
        self, exc: requests.exceptions.RequestException, method: str, path: str, host: str, request_id: str
    ) -> ApiError:
        """The typed error for what requests raised (most specific class first: ConnectTimeout and
        SSLError are ConnectionErrors too)."""
        network_hint = "check network access and --api-url / NOTIFLOWS_BASE_URL"
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return ApiTimeoutError(
                f"could not connect to {host} within {self.timeouts.connect:g} s",
                code="connect_timeout", method=method, url=path, request_id=request_id, hint=network_hint,
            )
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return self._read_timeout(method, path, host, request_id)
        if isinstance(exc, requests.exceptions.SSLError):
            return TransportError(
                f"TLS error talking to {host}: {type(exc).__name__}",
                code="tls_error", method=method, url=path, request_id=request_id,
                hint="check the certificate chain or a TLS-intercepting proxy",
            )
        if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
                      | requests.exceptions.InvalidSchema):
            return TransportError(
                f"invalid API URL for {method} {path}", code="invalid_url", method=method, url=path,
                request_id=request_id, hint="check --api-url / NOTIFLOWS_BASE_URL",
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            if _is_read_timeout(exc):
                return self._read_timeout(method, path, host, request_id)
            connect = _is_connect_failure(exc)
            return TransportError(
                f"could not connect to {host}" if connect else f"connection to {host} failed mid-request",
                code="connect_error" if connect else "connection_error",
                method=method, url=path, request_id=request_id, hint=network_hint,
            )
        return TransportError(
            f"request failed: {type(exc).__name__}", code="transport_error", method=method,
            url=path, request_id=request_id, hint="retry later",
        )

    def _past_deadline(self, method: str, path: str, host: str, request_id: str) -> ApiTimeoutError:
        return ApiTimeoutError(
            f"{host} did not finish answering within {self.timeouts.deadline:g} s (the total time allowed "
            "for one request)",
            code="read_timeout", method=method, url=path, request_id=request_id,
            hint="the API is slow or unreachable; retry later",
        )

    def _read_timeout(self, method: str, path: str, host: str, request_id: str) -> ApiTimeoutError:
        return ApiTimeoutError(
            f"{host} did not answer within {self.timeouts.read:g} s",
            code="read_timeout", method=method, url=path, request_id=request_id,
            hint="the API is slow or unreachable; retry later",
        )
