"""Retry policy of the Management API client: pure functions, no I/O, no clock of its own.

What is retried
    * TransportError (connection refused/reset, DNS, dropped connection) and ApiTimeoutError,
      except the codes that a retry cannot fix (``invalid_url``, ``tls_error``, ``circuit_open``);
    * 429 ``rate_limited`` (RateLimitedError);
    * 5xx (ServerError), and a non-envelope answer (BadResponseError) whose status is 429 or 5xx,
      e.g. an HTML 502/503 page from a proxy or load balancer.
  Never retried: every other 4xx (400, 401, 403, 404, 409, 422, ...) and a 2xx body that is not
  JSON, because asking again gives the same answer.

How long to wait
    * If the server said how long (``Retry-After`` as seconds or an HTTP date, or
      ``details.retry_after``), wait that long, but never longer than ``backoff_cap``. A server
      asking for more than the cap gets the cap: the next attempt may be refused again and uses up
      one more of the bounded attempts, so a run never hangs for an unbounded, server-chosen time.
    * Otherwise exponential backoff with FULL jitter:
      ``uniform(0, min(backoff_cap, backoff_base * 2**retry_index))`` where retry_index is 0 for
      the first retry. Full jitter spreads the workers that failed together.
    * At most ``max_attempts`` attempts in all (the first one included).
"""

from __future__ import annotations

import email.utils
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from notiflows_deploy.api.errors import (
    ApiError,
    BadResponseError,
    RateLimitedError,
    ServerError,
    TransportError,
)

# Transport failures that a second attempt cannot fix ("circuit_open": api/circuit.py refused the
# attempt because the server has been unreachable; the client raises it without asking `decide`).
NON_RETRYABLE_TRANSPORT_CODES = frozenset({"invalid_url", "tls_error", "circuit_open"})
# Transport failures that happen before the request left this machine: nothing can have landed.
NOT_SENT_TRANSPORT_CODES = frozenset({"invalid_url", "tls_error", "connect_error", "connect_timeout", "circuit_open"})


class UniformSource(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_cap < 0:
            raise ValueError("backoff_base and backoff_cap must not be negative")


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0  # seconds to wait before the next attempt
    reason: str = ""  # for logs: "server_error", "rate_limited", "retry_after", ...
    server_asked: bool = False  # delay comes from Retry-After / details.retry_after


def is_retryable(error: ApiError) -> bool:
    if isinstance(error, TransportError):  # includes ApiTimeoutError
        return error.code not in NON_RETRYABLE_TRANSPORT_CODES
    if isinstance(error, RateLimitedError | ServerError):
        return True
    if isinstance(error, BadResponseError):
        return error.status is not None and (error.status == 429 or error.status >= 500)
    return False


def may_have_landed(error: ApiError) -> bool:
    """Could the failed attempt have changed server state (so a retry may see its effect)?

    True for failures after the request was sent: read timeouts, resets, 5xx. False for a 429
    (refused before processing) and for failures before sending (connect errors).
    """
    if isinstance(error, TransportError):
        return error.code not in NOT_SENT_TRANSPORT_CODES
    return error.status is not None and error.status >= 500


def backoff_delay(retry_index: int, base: float, cap: float, rng: UniformSource) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**retry_index))."""
    # Large exponents overflow floats; the cap is reached long before.
    ceiling = cap if retry_index >= 64 else min(cap, base * (2.0**retry_index))
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as delta-seconds or an HTTP date -> seconds from now (>= 0), else None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def retry_after_from_details(details: dict[str, Any] | None) -> float | None:
    value = (details or {}).get("retry_after")
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str):
            return parse_retry_after(value)
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def server_retry_after(
    header: str | None, details: dict[str, Any] | None, now: datetime | None = None
) -> float | None:
    """The header wins over details.retry_after (the header is what HTTP intermediaries set)."""
    from_header = parse_retry_after(header, now)
    return from_header if from_header is not None else retry_after_from_details(details)


def decide(
    policy: RetryPolicy,
    attempt: int,
    error: ApiError,
    *,
    retry_after: float | None = None,
    rng: UniformSource | None = None,
) -> RetryDecision:
    """Should attempt number `attempt` (1-based, just failed with `error`) be followed by another?"""
    if not is_retryable(error):
        return RetryDecision(False, reason="not_retryable")
    if attempt >= policy.max_attempts:
        return RetryDecision(False, reason="attempts_exhausted")
    if retry_after is None and isinstance(error, RateLimitedError):
        retry_after = error.retry_after
    if retry_after is not None:
        return RetryDecision(True, min(policy.backoff_cap, retry_after), "retry_after", server_asked=True)
    source: UniformSource = rng if rng is not None else random
    delay = backoff_delay(attempt - 1, policy.backoff_base, policy.backoff_cap, source)
    return RetryDecision(True, delay, error.code or type(error).__name__)
