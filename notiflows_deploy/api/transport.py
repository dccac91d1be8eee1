"""HTTP transport: one pooled requests.Session, fixed headers, explicit timeouts.

This is the ONLY place where requests' exceptions are caught; each becomes a TransportError or
ApiTimeoutError (chained with ``from``) whose message names the method, the URL path and the host,
never a header. The token lives only in a `Secret` inside a `BearerAuth` object (their reprs hide it); passing an
auth object on every request also stops requests from replacing the header with ~/.netrc
credentials. Redirects are not followed (a PUT must not silently become a GET elsewhere).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from notiflows_deploy import __version__
from notiflows_deploy.api.errors import ApiTimeoutError, TransportError

USER_AGENT = f"notiflows-deploy/{__version__} (+python-requests)"


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 30.0

    def __post_init__(self) -> None:
        if self.connect <= 0 or self.read <= 0:
            raise ValueError("timeouts must be positive")

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


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
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, pool_size), max_retries=0)
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
        where = f"{method} {path}"
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
        except requests.exceptions.ConnectTimeout as exc:
            raise ApiTimeoutError(
                f"could not connect to {host} within {self.timeouts.connect:g} s",
                code="connect_timeout", method=method, url=path, request_id=request_id,
                hint="check network access and --api-url / NOTIFLOWS_BASE_URL",
            ) from exc
        except requests.exceptions.ReadTimeout as exc:
            raise self._read_timeout(method, path, host, request_id) from exc
        except requests.exceptions.SSLError as exc:
            raise TransportError(
                f"TLS error talking to {host}: {type(exc).__name__}",
                code="tls_error", method=method, url=path, request_id=request_id,
                hint="check the certificate chain or a TLS-intercepting proxy",
            ) from exc
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            raise TransportError(
                f"invalid API URL for {where}", code="invalid_url", method=method, url=path,
                request_id=request_id, hint="check --api-url / NOTIFLOWS_BASE_URL",
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            if _is_read_timeout(exc):
                raise self._read_timeout(method, path, host, request_id) from exc
            connect = _is_connect_failure(exc)
            raise TransportError(
                f"could not connect to {host}" if connect else f"connection to {host} failed mid-request",
                code="connect_error" if connect else "connection_error",
                method=method, url=path, request_id=request_id,
                hint="check network access and --api-url / NOTIFLOWS_BASE_URL",
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise TransportError(
                f"request failed: {type(exc).__name__}", code="transport_error", method=method,
                url=path, request_id=request_id, hint="retry later",
            ) from exc
        return HttpResponse(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=body,
            elapsed=response.elapsed.total_seconds(),
        )

    def _read_timeout(self, method: str, path: str, host: str, request_id: str) -> ApiTimeoutError:
        return ApiTimeoutError(
            f"{host} did not answer within {self.timeouts.read:g} s",
            code="read_timeout", method=method, url=path, request_id=request_id,
            hint="the API is slow or unreachable; retry later",
        )
