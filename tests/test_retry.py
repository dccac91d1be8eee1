"""Pure tests of api/retry.py and api/ratelimit.py (no network)."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from notiflows_deploy.api.errors import (
    ApiError,
    ApiTimeoutError,
    AuthError,
    BadResponseError,
    ConflictError,
    ForbiddenError,
    HttpStatusError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    ValidationFailedError,
)
from notiflows_deploy.api.ratelimit import AdaptiveGate, run_bounded
from notiflows_deploy.api.retry import (
    RetryPolicy,
    backoff_delay,
    decide,
    is_retryable,
    may_have_landed,
    parse_retry_after,
    retry_after_from_details,
    server_retry_after,
)


class MaxRng:
    """uniform() returns the upper bound: exposes the jitter ceiling."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return b


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TransportError("x", code="connection_error"), True),
        (TransportError("x", code="connect_error"), True),
        (ApiTimeoutError("x", code="read_timeout"), True),
        (TransportError("x", code="tls_error"), False),
        (TransportError("x", code="invalid_url"), False),
        (RateLimitedError("x", status=429), True),
        (ServerError("x", status=500), True),
        (ServerError("x", status=503), True),
        (BadResponseError("x", status=502), True),
        (BadResponseError("x", status=429), True),
        (BadResponseError("x", status=200), False),
        (BadResponseError("x", status=404), False),
        (HttpStatusError("x", status=400), False),
        (AuthError("x", status=401), False),
        (ForbiddenError("x", status=403), False),
        (NotFoundError("x", status=404), False),
        (ConflictError("x", status=409), False),
        (ValidationFailedError("x", status=422), False),
    ],
)
def test_is_retryable(error: ApiError, expected: bool) -> None:
    assert is_retryable(error) is expected
    decision = decide(RetryPolicy(), 1, error, rng=MaxRng())
    assert decision.retry is expected


def test_may_have_landed() -> None:
    assert may_have_landed(ApiTimeoutError("x", code="read_timeout"))
    assert may_have_landed(TransportError("x", code="connection_error"))
    assert not may_have_landed(TransportError("x", code="connect_error"))
    assert not may_have_landed(ApiTimeoutError("x", code="connect_timeout"))
    assert may_have_landed(ServerError("x", status=500))
    assert not may_have_landed(RateLimitedError("x", status=429))
    assert not may_have_landed(ConflictError("x", status=409))


def test_full_jitter_ceiling_doubles_and_caps() -> None:
    rng = MaxRng()
    ceilings = [backoff_delay(i, 0.5, 4.0, rng) for i in range(6)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(a == 0.0 for a, _ in rng.calls)  # full jitter: lower bound is zero
    assert backoff_delay(10_000, 0.5, 4.0, rng) == 4.0  # no float overflow


def test_full_jitter_is_random_within_bounds() -> None:
    rng = random.Random(7)
    values = [backoff_delay(3, 0.5, 30.0, rng) for _ in range(500)]
    assert all(0.0 <= v <= 4.0 for v in values)
    assert min(values) < 0.5 and max(values) > 3.5  # spread over the whole range


def test_decide_uses_attempt_number_for_backoff() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_base=1.0, backoff_cap=100.0)
    delays = [decide(policy, n, ServerError("x", status=503), rng=MaxRng()).delay for n in (1, 2, 3, 4)]
    assert delays == [1.0, 2.0, 4.0, 8.0]


def test_decide_bounded_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    err = ServerError("x", status=500)
    assert decide(policy, 2, err, rng=MaxRng()).retry
    last = decide(policy, 3, err, rng=MaxRng())
    assert not last.retry and last.reason == "attempts_exhausted"
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_decide_honours_retry_after_capped() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=10.0)
    d = decide(policy, 1, RateLimitedError("x", status=429, retry_after=3.0), rng=MaxRng())
    assert (d.retry, d.delay, d.server_asked) == (True, 3.0, True)
    # Longer than the cap: wait the cap.
    d = decide(policy, 1, RateLimitedError("x", status=429, retry_after=3600.0), rng=MaxRng())
    assert d.delay == 10.0
    # An explicit value (e.g. a 503 with Retry-After) wins over the error's own.
    d = decide(policy, 1, ServerError("x", status=503), retry_after=2.0, rng=MaxRng())
    assert d.delay == 2.0
    # 429 without any hint: backoff.
    d = decide(policy, 2, RateLimitedError("x", status=429), rng=MaxRng())
    assert d.delay == 1.0 and not d.server_asked


def test_parse_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after("-1") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    now = datetime(2026, 11, 23, 18, 0, 0, tzinfo=UTC)
    http_date = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(http_date, now) == pytest.approx(7.0)
    assert parse_retry_after("Mon, 23 Nov 2026 17:00:00 GMT", now) == 0.0  # past -> now
    assert parse_retry_after("Mon, 23 Nov 2026 18:00:05 -0000", now) == pytest.approx(5.0)


def test_retry_after_details() -> None:
    assert retry_after_from_details({"retry_after": 2}) == 2.0
    assert retry_after_from_details({"retry_after": "4"}) == 4.0
    assert retry_after_from_details({"retry_after": True}) is None
    assert retry_after_from_details({"retry_after": -3}) is None
    assert retry_after_from_details(None) is None
    assert server_retry_after("1", {"retry_after": 9}) == 1.0
    assert server_retry_after(None, {"retry_after": 9}) == 9.0
    assert server_retry_after("garbage", {"retry_after": 9}) == 9.0


# -- AdaptiveGate ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.lock = threading.Lock()

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(seconds)
            self.now += seconds


def test_gate_penalize_pauses_and_halves_then_recovers() -> None:
    fc = FakeClock()
    gate = AdaptiveGate(8, clock=fc.clock, sleep=fc.sleep)
    ticket = gate.acquire()
    gate.release()
    gate.penalize(2.0, ticket)
    assert gate.limit == 4
    assert gate.pause_remaining() == pytest.approx(2.0)
    gate.acquire()  # sleeps until the shared pause is over
    gate.release()
    assert sum(fc.slept) == pytest.approx(2.0)
    # A second 429 from a request started before the decrease does not halve again.
    gate.penalize(1.0, ticket)
    assert gate.limit == 4
    for _ in range(40):
        gate.on_success()
    assert gate.limit == 8  # additive increase back to the maximum, never above


def test_gate_limits_in_flight() -> None:
    gate = AdaptiveGate(3)
    peak = 0
    lock = threading.Lock()
    current = 0

    def work(_: int) -> int:
        nonlocal peak, current
        gate.acquire()
        try:
            with lock:
                current += 1
                peak = max(peak, current)
            time.sleep(0.01)
            with lock:
                current -= 1
        finally:
            gate.release()
        return 1

    assert sum(r for r in run_bounded(work, range(40), 10) if isinstance(r, int)) == 40
    assert peak <= 3
    assert gate.in_flight == 0


def test_gate_pause_applies_to_all_workers() -> None:
    gate = AdaptiveGate(4)
    gate.penalize(0.3)
    started = time.monotonic()
    def through(_: int) -> float:
        gate.acquire()
        gate.release()
        return time.monotonic()

    results = run_bounded(through, range(4), 4)
    assert all(isinstance(r, float) and r - started >= 0.28 for r in results)


def test_run_bounded_keeps_order_and_returns_exceptions() -> None:
    def fn(n: int) -> int:
        if n % 3 == 0:
            raise ValueError(f"bad {n}")
        time.sleep(0.001 * (10 - n))
        return n * 10

    results = run_bounded(fn, range(10), 4)
    assert [r if isinstance(r, int) else str(r) for r in results] == [
        "bad 0", 10, 20, "bad 3", 40, 50, "bad 6", 70, 80, "bad 9"
    ]
    assert run_bounded(fn, [], 4) == []
    with pytest.raises(ValueError):
        run_bounded(fn, [1], 0)
