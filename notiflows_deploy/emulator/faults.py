"""Fault injection: latency, rate limiting, random 5xx, dropped connections, and "fail the next N".

`FaultInjector.decide()` is called once per API request (never for control endpoints) and returns
what to do. Random draws come from one seeded generator, so a single sequential client sees the
same faults on every run with the same seed.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

ERROR_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
    505: "http_version_not_supported",
}


def code_for(status: int) -> str:
    return ERROR_CODES.get(status, "internal_error" if status >= 500 else "bad_request")


@dataclass
class FailRule:
    """Fail the next `count` requests whose method and path (re.search) match."""

    method: str
    path: str
    status: int = 503
    count: int = 1
    drop: bool = False  # close the connection instead of answering
    retry_after: int | None = None  # for 429 answers
    pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method:
            raise ValueError("method must be an HTTP method or '*'")
        if not isinstance(self.path, str):
            raise ValueError("path must be a regular expression (a string)")
        # An error envelope with a 2xx/3xx status would be neither a success nor an error to a client.
        if not _is_int(self.status) or not 400 <= self.status <= 599:
            raise ValueError(f"status must be an error status (400-599), not {self.status!r}")
        if not _is_int(self.count) or self.count < 1:
            raise ValueError(f"count must be an integer >= 1, not {self.count!r}")
        if not isinstance(self.drop, bool):
            raise ValueError("drop must be true or false")
        if self.retry_after is not None and (not _is_int(self.retry_after) or self.retry_after < 0):
            raise ValueError(f"retry_after must be an integer >= 0, not {self.retry_after!r}")
        self.method = self.method.upper()
        try:
            self.pattern = re.compile(self.path)
        except re.error as exc:
            raise ValueError(f"path {self.path!r} is not a valid regular expression: {exc}") from None

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and self.pattern.search(path) is not None

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "status": self.status, "count": self.count,
                "drop": self.drop, "retry_after": self.retry_after}


@dataclass
class Faults:
    latency_ms: float = 0.0
    rate_limit: int | None = None  # requests per window per token
    rate_window: float = 1.0  # seconds
    error_rate: float = 0.0
    error_status: int = 503
    drop_rate: float = 0.0
    seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "rate_limit": self.rate_limit, "rate_window": self.rate_window,
                "error_rate": self.error_rate, "error_status": self.error_status, "drop_rate": self.drop_rate,
                "seed": self.seed}


def parse_rate_limit(text: str) -> tuple[int, float]:
    """"100/1" -> (100, 1.0); "100" -> (100, 1.0). A ValueError that says what is wanted otherwise."""
    count, _, window = text.partition("/")
    problem = f"bad rate limit {text!r}: want N/WINDOW_SECONDS with N a whole number >= 1, e.g. 100/1"
    try:
        n, w = int(count.strip()), float(window) if window else 1.0
    except ValueError:
        raise ValueError(problem) from None
    if n < 1 or not math.isfinite(w) or w <= 0:
        raise ValueError(problem)
    return n, w


@dataclass(frozen=True)
class Decision:
    """What the server does with one request before normal handling."""

    latency: float = 0.0  # seconds to sleep first (outside every lock)
    drop: bool = False
    status: int | None = None  # answer with this error status
    retry_after: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


class FaultInjector:
    def __init__(self, faults: Faults | None = None) -> None:
        self._lock = threading.Lock()
        self.faults = faults or Faults()
        self._random = random.Random(self.faults.seed)
        self._rules: list[FailRule] = []
        self._windows: dict[str, tuple[float, int]] = {}

    def configure(self, **changes: Any) -> Faults:
        """Update some settings (unknown keys raise TypeError); `rate_limit` may be "N/W" text or None."""
        with self._lock:
            values = self.faults.to_json()
            if isinstance(changes.get("rate_limit"), str):
                changes["rate_limit"], changes["rate_window"] = parse_rate_limit(changes["rate_limit"])
            for key, value in changes.items():
                if key not in values:
                    raise TypeError(f"unknown fault setting {key!r}")
                values[key] = value
            self.faults = _checked(Faults(**values))
            if "seed" in changes:
                self._random = random.Random(self.faults.seed)
            if "rate_limit" in changes or "rate_window" in changes:
                self._windows.clear()
            return self.faults

    def add_rule(self, rule: FailRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self.faults = Faults()
            self._random = random.Random(None)
            self._rules.clear()
            self._windows.clear()

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {**self.faults.to_json(), "fail_next": [r.to_json() for r in self._rules]}

    def decide(self, method: str, path: str, token: str) -> Decision:
        with self._lock:
            f = self.faults
            latency = f.latency_ms / 1000.0
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
                    if rule.drop:
                        return Decision(latency=latency, drop=True)
                    retry = rule.retry_after if rule.retry_after is not None else (1 if rule.status == 429 else None)
                    details: dict[str, Any] = {"retry_after": retry} if retry is not None else {}
                    return Decision(latency=latency, status=rule.status, retry_after=retry, details=details)
            if f.drop_rate and self._random.random() < f.drop_rate:
                return Decision(latency=latency, drop=True)
            if f.rate_limit is not None:
                now = time.monotonic()
                start, count = self._windows.get(token, (now, 0))
                if now - start >= f.rate_window:
                    start, count = now, 0
                count += 1
                self._windows[token] = (start, count)
                if count > f.rate_limit:
                    retry = max(1, math.ceil(start + f.rate_window - now))
                    limited: dict[str, Any] = {
                        "retry_after": retry, "limit": f.rate_limit, "window": f"{f.rate_window:g}s"}
                    return Decision(latency=latency, status=429, retry_after=retry, details=limited)
            if f.error_rate and self._random.random() < f.error_rate:
                return Decision(latency=latency, status=f.error_status)
            return Decision(latency=latency)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked(f: Faults) -> Faults:
    # NaN passes every comparison below and inf overflows time.sleep: both refused here, not per request.
    for name in ("latency_ms", "error_rate", "drop_rate", "rate_window"):
        value = getattr(f, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, not {value!r}")
    if f.latency_ms < 0:
        raise ValueError("latency_ms must be >= 0")
    for name in ("error_rate", "drop_rate"):
        if not 0.0 <= getattr(f, name) <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
    if f.rate_limit is not None and (not _is_int(f.rate_limit) or f.rate_limit < 1):
        raise ValueError("rate_limit must be an integer >= 1")
    if f.rate_window <= 0:
        raise ValueError("rate_window must be > 0")
    if not _is_int(f.error_status) or not 500 <= f.error_status <= 599:
        raise ValueError("error_status must be a 5xx status")
    return f
