"""Client of the Notiflows Management API (CONTRACT section 5).

Every call: ``Authorization: Bearer <token>``, a fixed User-Agent, JSON in and out, an
``x-request-id: nfd_<hex>`` per logical call (kept across its retries so the server can correlate
them), explicit connect/read timeouts, at most `concurrency` requests in flight (shared
`AdaptiveGate`), retries per api/retry.py, a shared circuit breaker (api/circuit.py: once the server
has been unreachable for the last few attempts, the remaining calls fail at once). Answers become
api/models.py objects; failures become the typed errors of api/errors.py with a message naming
method and path and a hint.

Retries and writes
    * ``PUT`` (upsert) is a full replace, so repeating it is safe. The one trap: with
      ``expected_sha``, if the first attempt landed but its answer was lost (read timeout, reset,
      5xx), the retry meets a server whose current sha is the one *we* just created and answers 409.
      So a 409 after an attempt that may have landed triggers a GET: if the server's current
      content equals what we sent (`payload_matches_remote`), the upsert succeeded and its result is
      returned (``created=False``: with expected_sha the notiflow existed before); otherwise the
      ConflictError is raised, with ``details["after_retry"] = True``. Without expected_sha a lost
      201 retried gives 200: ``created`` is then False although this run created the notiflow.
    * ``POST .../publish``: publishing the already-published current version is a no-op on the
      server, so a retry cannot publish twice. The harmful case is another writer: publish has no
      precondition, and a dashboard edit landing during the backoff would make the retry publish
      *their* draft. So with ``expected_sha`` (the sha our PUT answered; the deployer passes it),
      before every retry the client GETs the notiflow: our version already published -> returned,
      no retry; current sha still ``expected_sha`` -> retried; anything else -> DraftChangedError
      (code ``draft_changed``) and no POST; the GET failing -> the original error, not retried.
      No GET before the first POST (the PUT answer is fresh; a race in that gap is caught by the
      deployer, which checks that the published sha is the pushed one). Without ``expected_sha``:
      after a failure that may have landed, the GET only skips the retry when already published.
    * A 409 is never read for the server's state (its details are not relied upon): callers GET.

404s: ``details.resource`` tells them apart. "notiflow" (or absent) on GET notiflow -> None;
"project" -> NotFoundError "project '<slug>' not found" with a hint about the slug; anything else
(e.g. "route": a wrong --api-url) -> NotFoundError with a hint about the base URL, never None.
Pagination: ``list_notiflows`` walks pages until it holds ``page_info.total`` notiflows (or meets an
empty page) when the server gives a total; without one it stops on an empty page or a page shorter
than the server's own ``page_info.limit`` (the server may cap the requested limit, so a short page
alone proves nothing when the total says more are coming). ``list_versions`` follows
``page.after`` while ``has_more_after``. A server repeating a page or a cursor is a
BadResponseError, not an endless loop.

Answers are parsed defensively (api/models.py): a field with a type the API does not document
(``"version_number": "abc"``, ``"steps": {...}``, a listing item without a handle) is a
BadResponseError (code ``bad_response``) for that call only, never a ValueError that stops the run.

The token is held only by the transport's auth object; it is in no repr, message or log line.
Error envelopes are scrubbed (`scrub`: the exact token, ``nf_at_…``, ``Bearer …``) in code, message,
request_id and every string of details, because a server or proxy may echo the token it refused.
Excerpts of bodies that are no envelope also lose the run's secret values (``secrets``: a live
collection, e.g. the runner's set of substituted values, and their encoded forms, `redact.variants`)
before they are cut to length, and are never cut inside a word that begins a secret: the cut must
not leave a prefix of a secret that the run's Redactor no longer recognises.
Logs (logger ``notiflows_deploy.api``) carry method, path, status, attempt and request_id only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests

from notiflows_deploy.api.circuit import CircuitBreaker
from notiflows_deploy.api.errors import (
    ApiError,
    AuthError,
    BadResponseError,
    ConflictError,
    DraftChangedError,
    ForbiddenError,
    HttpStatusError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    ValidationFailedError,
)
from notiflows_deploy.api.models import (
    MalformedAnswer,
    NotiflowSummary,
    RemoteNotiflow,
    RemoteVersion,
    UpsertResult,
)
from notiflows_deploy.api.ratelimit import AdaptiveGate, rate_from_details, run_bounded
from notiflows_deploy.api.retry import (
    RetryPolicy,
    UniformSource,
    decide,
    may_have_landed,
    server_retry_after,
)
from notiflows_deploy.api.transport import HttpResponse, Secret, Timeouts, Transport, new_request_id
from notiflows_deploy.redact import variants

log = logging.getLogger("notiflows_deploy.api")

T = TypeVar("T")
R = TypeVar("R")

MAX_PAGES = 10_000
BACKOFF_BASE_ENV = "NOTIFLOWS_DEPLOY_BACKOFF_BASE"
DEFAULT_BACKOFF_BASE = 0.5
_EXCERPT_CHARS = 200
_EXCERPT_SCAN = 64 * 1024  # bytes of a body looked at (redacted, then cut to _EXCERPT_CHARS)
_TOKEN_LIKE = re.compile(r"(?i)(bearer\s+)\S+|nf_at_[A-Za-z0-9_\-]+")

HINTS = {
    401: "check NOTIFLOWS_TOKEN / the token input: the token is missing, wrong or revoked",
    403: "the token may not do this here; check NOTIFLOWS_TOKEN / the token input and the project slug",
    409: "the notiflow changed on the server since the repo saw it; review it, or deploy with --force",
    422: "the server rejected the content; see the listed fields",
    429: "rate limited; retry later or lower --concurrency",
}
HINT_PROJECT = "check the project slug (--project, NOTIFLOWS_PROJECT or notiflows.json)"
HINT_BASE_URL = "check --api-url / NOTIFLOWS_BASE_URL: it must point at the Management API (…/management/v1)"
HINT_SERVER = "the Notiflows API failed; retry later"
HINT_AUTH_NOT_ENVELOPE = HINTS[401] + " (the answer was not the Notiflows error envelope: a proxy may be refusing it)"
HINT_MALFORMED = "the server's answer does not have the documented shape; retry later, or report it to Notiflows"

_CODE_CLASSES: dict[str, type[HttpStatusError]] = {
    "unauthenticated": AuthError,
    "forbidden": ForbiddenError,
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "validation_failed": ValidationFailedError,
    "rate_limited": RateLimitedError,
}
_STATUS_CLASSES: dict[int, type[HttpStatusError]] = {
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationFailedError,
    429: RateLimitedError,
}


# ---------------------------------------------------------------------------------------------
# Answer parsing (pure)


def scrub(text: str, secret: str | None = None) -> str:
    """`text` with the token (exactly) and anything token-like (``nf_at_…``, ``Bearer …``) masked."""
    if secret:
        text = text.replace(secret, "***")
    return _TOKEN_LIKE.sub(lambda m: (m.group(1) or "") + "***", text)


def scrub_value(value: Any, secret: str | None = None) -> Any:
    """`scrub` applied to every string (keys included) of a JSON value, at any depth."""
    if isinstance(value, str):
        return scrub(value, secret)
    if isinstance(value, dict):
        return {scrub_value(k, secret): scrub_value(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(v, secret) for v in value]
    return value


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Every spelling of `secrets` an answer may carry (`redact.variants`), longest first."""
    found: set[str] = set()
    for value in secrets:
        found.update(variants(value))
    return sorted(found, key=len, reverse=True)


def _redact(text: str, forms: list[str]) -> str:
    if not forms:
        return text
    return re.sub("|".join(re.escape(f) for f in forms), "***", text)


def _without_secret_prefix(text: str, forms: list[str]) -> str:
    """`text` (about to end at a cut) without its last word when that word ends in the start of a secret."""
    for form in forms:
        for size in range(min(len(form) - 1, len(text)), 0, -1):
            if text.endswith(form[:size]):
                start = len(text) - size
                return text[: text.rfind(" ", 0, start) + 1].rstrip()
    return text


def sanitize_excerpt(
    body: bytes, *, secret: str | None = None, limit: int = _EXCERPT_CHARS, secrets: Iterable[str] = ()
) -> str:
    """A short, single-line, printable excerpt of a body: anything token-like and every form of
    `secrets` removed first, then cut to `limit` characters, never inside the start of a secret."""
    forms = secret_forms([*([secret] if secret else []), *secrets])
    scanned = body[:_EXCERPT_SCAN]
    text = _redact(scrub(scanned.decode("utf-8", errors="replace"), secret), forms)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())
    cut = len(scanned) < len(body) or len(text) > limit
    if not cut:
        return text
    return _without_secret_prefix(text[:limit], forms) + "…"


def _is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _decode_json(resp: HttpResponse) -> tuple[bool, Any]:
    if not resp.body.strip():
        return False, None
    try:
        return True, json.loads(resp.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False, None


def error_from_response(
    resp: HttpResponse, *, method: str, path: str, request_id: str, secret: str | None = None,
    not_found_hint: str = "", secrets: Iterable[str] = (),
) -> ApiError:
    """Turn a non-2xx answer into a typed error (the envelope), or a BadResponseError."""
    ok, data = _decode_json(resp)
    envelope = data.get("error") if ok and isinstance(data, dict) else None
    rid = scrub(resp.headers.get("x-request-id") or request_id, secret)
    if not isinstance(envelope, dict):
        return bad_response(resp, method=method, path=path, request_id=rid, secret=secret,
                            why="an error answer that is not the Notiflows error envelope", secrets=secrets)
    # A server (or a proxy) may echo the token it refused: nothing of the envelope is kept unscrubbed.
    code = scrub(str(envelope.get("code") or ""), secret)
    message = scrub(str(envelope.get("message") or f"HTTP {resp.status}"), secret)
    raw_details = envelope.get("details")
    details: dict[str, Any] = scrub_value(raw_details, secret) if isinstance(raw_details, dict) else {}
    rid = scrub(str(envelope.get("request_id") or rid), secret)
    cls: type[HttpStatusError] = _STATUS_CLASSES.get(resp.status) or (
        ServerError if resp.status >= 500 else _CODE_CLASSES.get(code, HttpStatusError)
    )
    hint = HINTS.get(resp.status, "")
    if cls is ServerError:
        hint = HINT_SERVER
    if cls is NotFoundError:
        resource = str(details.get("resource") or "").lower()
        hint = {"project": HINT_PROJECT, "route": HINT_BASE_URL}.get(resource, not_found_hint)
    if cls is ValidationFailedError:
        fields = details.get("fields")
        if isinstance(fields, list) and fields:
            shown = "; ".join(
                f"{f.get('field', '?')}: {f.get('message', '')}" for f in fields[:5] if isinstance(f, dict)
            )
            message = f"{message} ({shown}{'; …' if len(fields) > 5 else ''})"
    common: dict[str, Any] = dict(code=code, status=resp.status, request_id=rid, details=details,
                                  method=method, url=path, hint=hint)
    if cls is RateLimitedError:
        return RateLimitedError(
            message, retry_after=server_retry_after(resp.headers.get("retry-after"), details), **common
        )
    return cls(message, **common)


def bad_response(
    resp: HttpResponse, *, method: str, path: str, request_id: str, why: str, secret: str | None = None,
    secrets: Iterable[str] = (),
) -> BadResponseError:
    ctype = scrub(resp.content_type, secret) or "no content type"
    excerpt = sanitize_excerpt(resp.body, secret=secret, secrets=secrets) if resp.body.strip() else "(empty body)"
    return BadResponseError(
        f"{why}: HTTP {resp.status}, {ctype}, body: {excerpt}",
        code="bad_response", status=resp.status,
        request_id=scrub(resp.headers.get("x-request-id") or request_id, secret),
        method=method, url=path, hint=_bad_response_hint(resp.status),
    )


def _bad_response_hint(status: int) -> str:
    if status >= 500 or status == 429:
        return HINT_SERVER
    if status == 401:
        # Whoever answered (the API or a proxy in front of it), credentials were refused: not a URL problem.
        return HINT_AUTH_NOT_ENVELOPE
    return HINT_BASE_URL


def is_project_not_found(details: dict[str, Any]) -> bool:
    return str(details.get("resource") or "").lower() == "project"


# ---------------------------------------------------------------------------------------------
# Content comparison (pure)


def payload_matches_remote(payload: dict[str, Any], remote: RemoteNotiflow) -> bool:
    """Does the server's current version hold exactly what `payload` would write?

    The same comparison the planner uses (`normalize.same_content`): top-level fields when the
    payload gives them, steps fully and order-independently, volatile server fields ignored.
    """
    from notiflows_deploy.normalize import content_from_remote, same_content

    if remote.current_version is None:
        return False
    return same_content(payload, content_from_remote(remote))


# ---------------------------------------------------------------------------------------------
# The client


@dataclass
class _CallState:
    attempts: int = 0
    maybe_landed: bool = False  # some failed attempt may have changed server state


@dataclass(frozen=True)
class _Reply:
    status: int
    data: dict[str, Any]
    request_id: str


def backoff_base_from_env(environ: Mapping[str, str] | None = None) -> float:
    """`NOTIFLOWS_DEPLOY_BACKOFF_BASE` (seconds) when set to a finite number >= 0, else 0.5.

    A hidden knob for tests (fast retries through the real CLI and subprocesses); a bad value is
    logged and ignored rather than failing a deploy.
    """
    text = (environ if environ is not None else os.environ).get(BACKOFF_BASE_ENV, "").strip()
    if not text:
        return DEFAULT_BACKOFF_BASE
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        log.warning("ignoring %s=%r: not a number of seconds >= 0", BACKOFF_BASE_ENV, text)
        return DEFAULT_BACKOFF_BASE
    return value


class ManagementClient:
    """The Management API for one project, safe to share between worker threads (`map`).

    Keyword options:
        timeouts: connect/read timeouts of every request.
        max_attempts: attempts per logical call, the first included (api/retry.py).
        concurrency: requests in flight at most, and the size of the `map` pool.
        backoff_base, backoff_cap: exponential backoff with full jitter, in seconds.
            ``backoff_base=None`` (the default) reads the environment variable
            ``NOTIFLOWS_DEPLOY_BACKOFF_BASE`` (float seconds, >= 0; a hidden knob that lets tests
            shorten the waits through the real CLI), else 0.5. An invalid value is ignored (logged).
        circuit_threshold, circuit_cooldown: the shared circuit breaker (api/circuit.py). After
            `circuit_threshold` consecutive attempts, by any workers, that found the server
            unreachable (refused, reset, DNS, connect timeout; not read timeouts, not HTTP errors),
            every further attempt fails at once with TransportError code ``circuit_open`` ("the API
            has been unreachable for the last N attempts ..."), without sending, retrying or
            sleeping; requests already in flight finish normally. Any HTTP answer closes it; after
            `circuit_cooldown` seconds one attempt is let through to see whether the server is back.
        sleep, clock, rng: injectable for tests (waits, the gate's and the breaker's clock, jitter).
        session: a caller's requests.Session, used as is (without the total per-request deadline,
            which needs the connection classes of `transport.build_session`).
        secrets: the run's secret values, a live collection read at every error (it may grow during
            the run, e.g. the runner's SecretSink): removed from body excerpts before they are cut.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        project: str,
        *,
        timeouts: Timeouts = Timeouts(),  # noqa: B008 (frozen dataclass, immutable default)
        max_attempts: int = 5,
        concurrency: int = 4,
        backoff_base: float | None = None,
        backoff_cap: float = 30.0,
        circuit_threshold: int = 5,
        circuit_cooldown: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: UniformSource | None = None,
        secrets: Collection[str] | None = None,
    ) -> None:
        scheme = urlsplit(base_url).scheme
        if scheme not in ("http", "https") or not urlsplit(base_url).netloc:
            raise ValueError("base_url must be an http(s) URL")
        if not token:
            raise ValueError("token must not be empty")
        if not project:
            raise ValueError("project must not be empty")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.project = project
        self.concurrency = concurrency
        if backoff_base is None:
            backoff_base = backoff_base_from_env()
        self.policy = RetryPolicy(max_attempts=max_attempts, backoff_base=backoff_base, backoff_cap=backoff_cap)
        self._token = Secret(token)  # shows as *** in any repr / vars() dump
        self._secrets = secrets
        self._sleep = sleep
        self._rng: UniformSource = rng if rng is not None else random.Random()
        self._rng_lock = threading.Lock()
        self._transport = Transport(self._token, timeouts=timeouts, pool_size=concurrency, session=session)
        self.gate = AdaptiveGate(concurrency, clock=clock, sleep=sleep)
        self.breaker = CircuitBreaker(circuit_threshold, circuit_cooldown, clock=clock)
        self._project_prefix = "/projects/" + quote(project, safe="")
        self._base_path = urlsplit(self.base_url).path.rstrip("/")

    # -- plumbing ------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"ManagementClient(base_url={self.base_url!r}, project={self.project!r}, token=***)"

    def __enter__(self) -> ManagementClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    @property
    def timeouts(self) -> Timeouts:
        return self._transport.timeouts

    def _secret_values(self) -> tuple[str, ...]:
        """A snapshot of the run's secrets (the set may grow in another thread while it is read)."""
        if not self._secrets:
            return ()
        for _ in range(5):
            try:
                return tuple(self._secrets)
            except RuntimeError:  # "changed size during iteration": read it again
                continue
        return tuple(list(self._secrets))

    def _notiflow_path(self, handle: str, suffix: str = "") -> str:
        return f"{self._project_prefix}/notiflows/{quote(handle, safe='')}{suffix}"

    def _call(
        self,
        method: str,
        rel_path: str,
        *,
        params: dict[str, str | int] | None = None,
        json_body: Any = None,
        state: _CallState | None = None,
        not_found_hint: str = "",
        before_retry: Callable[[ApiError], _Reply | None] | None = None,
    ) -> _Reply:
        """One logical call with retries. `rel_path` is relative to base_url."""
        state = state if state is not None else _CallState()
        request_id = new_request_id()
        url = self.base_url + rel_path
        path = self._base_path + rel_path  # what messages and logs show: no host, no token
        shown = path + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
        while True:
            started = self.gate.acquire()
            resp: HttpResponse | None = None
            error: ApiError | None = None
            try:
                # Asked after the slot is ours: the circuit may have opened while we waited for it.
                refused = self.breaker.check(method=method, path=shown, attempts=state.attempts)
                if refused is None:
                    state.attempts += 1
                    resp = self._transport.send(method, url, path=shown, request_id=request_id,
                                                json_body=json_body, params=params)
                    if not 200 <= resp.status < 300:
                        error = error_from_response(
                            resp, method=method, path=shown, request_id=request_id,
                            secret=self._token.reveal(), not_found_hint=not_found_hint,
                            secrets=self._secret_values())
            except ApiError as exc:
                error = exc
            finally:
                self.gate.release()
            if refused is not None:
                log.debug("%s %s not attempted: circuit open", method, shown)
                raise refused
            if resp is not None:
                self.breaker.on_answer()  # any status: the server is reachable
            elif isinstance(error, TransportError):
                self.breaker.on_error(error)
            if error is None and resp is not None:
                reply = self._parse_success(resp, method=method, path=shown, request_id=request_id)
                self.gate.on_success()
                log.debug("%s %s -> %s attempt=%d request_id=%s", method, shown, resp.status,
                          state.attempts, request_id)
                return reply
            assert error is not None
            status = error.status if error.status is not None else "-"
            retry_after = (server_retry_after(resp.headers.get("retry-after"), error.details)
                           if resp is not None and (error.status == 429 or (error.status or 0) >= 500)
                           else None)
            with self._rng_lock:
                decision = decide(self.policy, state.attempts, error, retry_after=retry_after, rng=self._rng)
            if may_have_landed(error):
                state.maybe_landed = True
            if not decision.retry:
                log.debug("%s %s -> %s attempt=%d request_id=%s (%s)", method, shown, status,
                          state.attempts, request_id, decision.reason)
                if decision.reason == "attempts_exhausted" and state.attempts > 1:
                    error.message = f"{error.message} (gave up after {state.attempts} attempts)"
                raise error
            log.warning("%s %s -> %s attempt=%d request_id=%s; retrying in %.2f s (%s)", method, shown,
                        status, state.attempts, request_id, decision.delay, decision.reason)
            if isinstance(error, RateLimitedError) or error.status == 429:
                # Everyone waits (acquire() sleeps); details.limit/window, when given, start pacing.
                self.gate.penalize(decision.delay, started, rate_from_details(error.details))
            else:
                self._sleep(decision.delay)
            if before_retry is not None:
                # After the wait: a slow first attempt has had time to land.
                shortcut = before_retry(error)
                if shortcut is not None:
                    return shortcut

    def _parse_success(self, resp: HttpResponse, *, method: str, path: str, request_id: str) -> _Reply:
        def bad(why: str) -> BadResponseError:
            return bad_response(resp, method=method, path=path, request_id=request_id, why=why,
                                secret=self._token.reveal(), secrets=self._secret_values())

        if resp.status == 204 or not resp.body.strip():
            raise bad("an empty answer where JSON was expected")
        ok, data = _decode_json(resp)
        if not ok:
            raise bad("an answer that is not JSON")
        if not isinstance(data, dict):
            raise bad("a JSON answer that is not an object")
        return _Reply(resp.status, data, resp.headers.get("x-request-id") or request_id)

    def _shape_error(self, method: str, path: str, reply: _Reply, what: str, hint: str = HINT_BASE_URL
                     ) -> BadResponseError:
        return BadResponseError(
            f"unexpected answer shape: {what}", code="bad_response", status=reply.status,
            request_id=reply.request_id, method=method, url=self._base_path + path, hint=hint,
        )

    def _malformed(self, method: str, path: str, reply: _Reply, exc: MalformedAnswer) -> BadResponseError:
        return self._shape_error(method, path, reply, scrub(str(exc), self._token.reveal()), HINT_MALFORMED)

    def _notiflow_from(self, method: str, path: str, reply: _Reply) -> RemoteNotiflow:
        if not isinstance(reply.data.get("handle"), str):
            raise self._shape_error(method, path, reply, "no notiflow 'handle'")
        try:
            return RemoteNotiflow.from_json(reply.data)
        except MalformedAnswer as exc:
            raise self._malformed(method, path, reply, exc) from None

    # -- API calls -----------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        path = self._project_prefix + "/whoami"
        reply = self._call("GET", path, not_found_hint=HINT_PROJECT)
        if not isinstance(reply.data.get("project"), dict):
            raise self._shape_error("GET", path, reply, "no 'project' object")
        return reply.data

    def list_notiflows(self, limit: int = 100) -> list[NotiflowSummary]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        path = self._project_prefix + "/notiflows"
        out: list[NotiflowSummary] = []
        seen: set[str] = set()
        previous: list[str] | None = None
        for page in range(1, MAX_PAGES + 1):
            reply = self._call("GET", path, params={"page": page, "limit": limit}, not_found_hint=HINT_PROJECT)
            items = reply.data.get("items")
            if not isinstance(items, list):
                raise self._shape_error("GET", path, reply, "no 'items' list")
            handles = [str(i.get("handle")) for i in items if isinstance(i, dict)]
            if items and handles == previous:
                # A server ignoring `page` would otherwise loop until MAX_PAGES.
                raise self._shape_error("GET", path, reply, f"page {page} repeats page {page - 1}")
            previous = handles
            for i, item in enumerate(items):
                summary = self._summary_from(path, reply, i, item)
                if summary.handle not in seen:
                    seen.add(summary.handle)
                    out.append(summary)
            if self._last_page(reply.data.get("page_info"), items, len(out), limit):
                break
        return out

    def _summary_from(self, path: str, reply: _Reply, index: int, item: Any) -> NotiflowSummary:
        if not isinstance(item, dict):
            raise self._shape_error("GET", path, reply, f"items[{index}] is not an object", HINT_MALFORMED)
        try:
            return NotiflowSummary.from_json(item, f"items[{index}]")
        except MalformedAnswer as exc:
            raise self._malformed("GET", path, reply, exc) from None

    @staticmethod
    def _last_page(info: Any, items: list[Any], have: int, limit: int) -> bool:
        """Whether the listing is complete after a page with `items` (`have` notiflows so far).

        With a total, only reaching it (or an empty page) ends the walk: a server may cap `limit`
        and send shorter pages than asked for. Without one, a page shorter than the page size does.
        """
        if not items:
            return True
        info = info if isinstance(info, dict) else {}
        total = info.get("total")
        if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
            return have >= total
        size = info.get("limit")  # the server's own page size, when it says
        size = size if isinstance(size, int) and not isinstance(size, bool) and 0 < size <= limit else limit
        return len(items) < size

    def get_notiflow(self, handle: str) -> RemoteNotiflow | None:
        """None when the notiflow does not exist; NotFoundError when the project does not."""
        path = self._notiflow_path(handle)
        try:
            reply = self._call("GET", path)
        except NotFoundError as exc:
            resource = str(exc.details.get("resource") or "notiflow").lower()
            if resource == "notiflow":
                return None
            if resource == "project":
                exc.message = f"project {self.project!r} not found"
            else:  # e.g. "route": the URL is wrong, which must not look like "no such notiflow"
                exc.hint = HINT_BASE_URL
            raise
        return self._notiflow_from("GET", path, reply)

    def upsert_notiflow(self, handle: str, payload: dict[str, Any], *, expected_sha: str | None) -> UpsertResult:
        path = self._notiflow_path(handle)
        body = dict(payload)
        body.pop("expected_sha", None)
        if expected_sha is not None:
            body["expected_sha"] = expected_sha
        state = _CallState()
        try:
            reply = self._call("PUT", path, json_body=body, state=state, not_found_hint=HINT_PROJECT)
        except ConflictError as exc:
            if expected_sha is None or not state.maybe_landed:
                raise
            # Our earlier attempt may have landed and moved the sha: see what the server holds.
            remote = self.get_notiflow(handle)
            if remote is not None and payload_matches_remote(payload, remote):
                log.info("PUT %s: 409 after a retry, but the server holds our content; treating as success",
                         self._base_path + path)
                return UpsertResult(created=False, notiflow=remote)
            exc.details = {**exc.details, "after_retry": True}
            exc.message = (f"{exc.message} (after a retried attempt; the server's current content "
                           f"is not what was sent)")
            raise
        return UpsertResult(created=reply.status == 201, notiflow=self._notiflow_from("PUT", path, reply))

    def publish_notiflow(self, handle: str, *, expected_sha: str | None = None) -> RemoteNotiflow:
        """Publish the current draft. With `expected_sha` (the sha our PUT answered), every retry
        first GETs the notiflow: our version already live -> returned without a retry; the current
        version's sha is no longer `expected_sha` (a dashboard edit during the backoff) ->
        DraftChangedError, nothing POSTed; can't tell (the GET failed) -> the original error, not retried.
        No GET before the first POST: the caller's PUT answer is milliseconds old."""
        path = self._notiflow_path(handle, "/publish")

        def before_retry(error: ApiError) -> _Reply | None:
            if expected_sha is not None:
                return self._publish_guard(handle, path, error, expected_sha)
            return self._already_published(handle, path, error)

        reply = self._call("POST", path, json_body={}, before_retry=before_retry,
                           not_found_hint="check the notiflow handle")
        return self._notiflow_from("POST", path, reply)

    def _already_published(self, handle: str, path: str, error: ApiError) -> _Reply | None:
        """Without expected_sha: skip the retry when a landed attempt already published."""
        if not may_have_landed(error):
            return None
        try:
            remote = self.get_notiflow(handle)
        except ApiError:
            return None  # can't tell: retrying is harmless (publishing twice is a no-op)
        current = remote.current_version if remote is not None else None
        if remote is None or current is None:
            return None
        published = remote.published_version
        if current.status == "published" or (published is not None and published.sha == current.sha
                                              and not remote.has_unpublished_changes):
            log.info("POST %s: the notiflow is already published; not retrying", self._base_path + path)
            return _Reply(200, remote.raw, error.request_id or "")
        return None

    def _publish_guard(self, handle: str, path: str, error: ApiError, expected_sha: str) -> _Reply | None:
        """With expected_sha: retry only while the server's current version is still ours."""
        shown = self._base_path + path
        try:
            remote = self.get_notiflow(handle)
        except ApiError as exc:
            error.message = (f"{error.message} (not retried: re-reading the notiflow to check that the draft is"
                             f" still ours failed: {exc.message})")
            raise error from exc
        published = remote.published_version if remote is not None else None
        if remote is not None and published is not None and published.sha == expected_sha:
            # Our content is live (an earlier attempt landed); a newer draft on top is not ours to publish.
            log.info("POST %s: our version is already published; not retrying", shown)
            return _Reply(200, remote.raw, error.request_id or "")
        current = remote.current_version if remote is not None else None
        if current is not None and current.sha == expected_sha:
            return None  # still our draft: retrying publishes exactly what we pushed
        raise self._draft_changed(handle, shown, expected_sha, current, error)

    def _draft_changed(
        self, handle: str, shown: str, expected_sha: str, current: RemoteVersion | None, error: ApiError
    ) -> DraftChangedError:
        by = current.created_by.name if current is not None and current.created_by is not None else ""
        if current is None:
            message = (f"the notiflow {handle!r} is gone from the server (or has no version) since our push"
                       f" (sha {expected_sha}); not published")
        else:
            message = (f"the draft changed on the server after our push (sha {current.sha}"
                       f"{f', by {by}' if by else ''}); not published")
        log.warning("POST %s: %s", shown, message)
        return DraftChangedError(
            message, code="draft_changed", request_id=error.request_id, method="POST", url=shown,
            details={"expected_sha": expected_sha, "current_sha": current.sha if current is not None else None,
                     "changed_by": by or None},
            hint="review the server's draft; the next run plans against it",
        )

    def list_versions(self, handle: str, limit: int | None = None) -> list[RemoteVersion]:
        """Every version, newest first (all cursor pages). `limit` is the page size (server default)."""
        path = self._notiflow_path(handle, "/versions")
        out: list[RemoteVersion] = []
        base: dict[str, str | int] = {"limit": limit} if limit is not None else {}
        params: dict[str, str | int] = dict(base)
        seen_cursors: set[str] = set()
        for _ in range(MAX_PAGES):
            reply = self._call("GET", path, params=dict(params) or None, not_found_hint="check the notiflow handle")
            items = reply.data.get("items")
            if not isinstance(items, list):
                raise self._shape_error("GET", path, reply, "no 'items' list")
            for i, item in enumerate(items):
                try:
                    version = RemoteVersion.from_json(item, f"items[{i}]")
                except MalformedAnswer as exc:
                    raise self._malformed("GET", path, reply, exc) from None
                if version is not None:
                    out.append(version)
            page = reply.data.get("page")
            if not isinstance(page, dict) or not page.get("has_more_after"):
                break
            after = page.get("after")
            if not isinstance(after, str | int) or isinstance(after, bool) or str(after) in seen_cursors:
                if after in (None, ""):
                    raise self._shape_error("GET", path, reply, "has_more_after without an 'after' cursor")
                raise self._shape_error("GET", path, reply, f"cursor {after!r} repeats")
            seen_cursors.add(str(after))
            params = {**base, "after": str(after)}
        return out

    # -- concurrency ---------------------------------------------------------------------------

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R | Exception]:
        """`fn` over `items` on up to `concurrency` threads sharing this client; results or
        exceptions in input order."""
        return run_bounded(fn, items, self.concurrency)


def iter_ok(results: Iterable[R | Exception]) -> Iterator[R]:
    """The successful results of `map` / `run_bounded`."""
    for item in results:
        if not isinstance(item, Exception):
            yield item
