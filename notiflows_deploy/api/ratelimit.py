"""Bounded concurrency shared by every worker thread, slowing down for everyone on 429.

`AdaptiveGate` is one object per client, shared by all threads using that client:

* at most ``limit`` requests are in flight (a condition-variable semaphore whose size can change);
* a shared "not before" instant: when any worker is told 429 + Retry-After, `penalize` moves it
  forward and every worker (not just the one that was refused) waits until then before its next
  request, so the whole run backs off instead of each thread hammering on its own;
* pacing, once the server has said its rate: a 429 whose details carry ``limit`` and ``window``
  (`rate_from_details`) sets a minimum spacing of ``window / (limit - 1) * (1 + pace_margin)``
  seconds between request starts, shared by all workers (each reserves the next start slot, then
  waits for it holding its in-flight place). Evenly spaced starts stay under fixed and sliding
  windows alike; halving concurrency alone overshoots again in every window and pays a Retry-After
  pause each time. Why ``limit - 1``: a window that opens on a start holds ``window / spacing + 1``
  starts, so spacing by ``window / limit`` leaves no room at all; one request of room, plus the
  margin, absorbs requests that reach the server a little later or earlier than they started (a
  loaded machine). The spacing holds between actual starts, not only between reserved slots: a
  worker that wakes late pushes the next start back instead of letting it "catch up" right after
  it. A stricter advertised rate replaces a looser one. A 429 for a request that started while
  that pacing was already in force (jitter, another client on the same token) widens the spacing by
  10%. The spacing never exceeds ``max_interval`` (as retry.py caps server-asked waits). Until such
  a 429 there is no pacing at all, and a paced 429 does not halve concurrency (the rate is the
  bottleneck, not the number of requests in flight);
* additive-increase / multiplicative-decrease of ``limit`` for 429s that do not say the rate: a 429
  halves it (at least 1), each success adds ``1/limit`` (about +1 per round of successful requests)
  up to ``max_limit``. Only the first 429 of a burst halves or widens: a 429 answering a request
  that started before the last change says nothing new.

`run_bounded` runs a function over items on a thread pool and returns results or exceptions in
input order: one failure never stops the others.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_WIDEN = 1.1  # spacing factor per 429 that pacing did not prevent
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
                 "h": 3600.0, "hr": 3600.0, "hour": 3600.0}
_WINDOW = re.compile(r"(\d+(?:\.\d+)?)?\s*([a-z]*)")


def parse_window(value: object) -> float | None:
    """A rate-limit window in seconds: a number (seconds) or text such as "1s", "500ms", "1m",
    "60 seconds", "minute"; None when it is not understood (then the gate does not pace)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _WINDOW.fullmatch(value.strip().lower())
        if match is None or (match.group(1) is None and not match.group(2)):
            return None
        unit = match.group(2) or "s"
        if unit not in _UNIT_SECONDS and unit.endswith("s"):
            unit = unit[:-1]  # plurals: "seconds", "mins"
        if unit not in _UNIT_SECONDS:
            return None
        seconds = float(match.group(1) or 1) * _UNIT_SECONDS[unit]
    else:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def rate_from_details(details: Mapping[str, Any] | None) -> tuple[int, float] | None:
    """(limit, window seconds) from a 429's ``details.limit`` / ``details.window``, else None."""
    limit = (details or {}).get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        return None
    window = parse_window((details or {}).get("window"))
    return (limit, window) if window is not None else None


def pace_spacing(rate: tuple[int, float], margin: float) -> float:
    """Seconds between request starts for a server allowing ``rate`` = (limit, window seconds): one
    request of room in every window (``limit - 1``; see the module docstring), then `margin` more."""
    limit, window = rate
    return window / max(1, limit - 1) * (1.0 + margin)


class AdaptiveGate:
    def __init__(
        self,
        max_limit: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        pace_margin: float = 0.05,
        max_interval: float = 30.0,
    ) -> None:
        if max_limit < 1:
            raise ValueError("concurrency must be at least 1")
        if pace_margin < 0 or max_interval <= 0:
            raise ValueError("pace_margin must be >= 0 and max_interval > 0")
        self.max_limit = max_limit
        self.pace_margin = pace_margin
        self.max_interval = max_interval
        self._limit = float(max_limit)
        self._in_flight = 0
        self._not_before = 0.0
        self._last_decrease = float("-inf")  # the last change of limit or spacing
        self._interval = 0.0  # seconds between request starts; 0: not pacing
        self._next_start = float("-inf")  # the next free start slot when pacing
        self._last_start = float("-inf")  # when the latest paced request actually started
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()

    @property
    def limit(self) -> int:
        with self._cond:
            return max(1, int(self._limit))

    @property
    def interval(self) -> float:
        """Seconds between request starts (0.0: not pacing)."""
        with self._cond:
            return self._interval

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def pause_remaining(self) -> float:
        with self._cond:
            return max(0.0, self._not_before - self._clock())

    def _reserve(self, now: float) -> float:
        """The next start slot (lock held): after the pause and one spacing after the last slot."""
        slot = max(now, self._not_before, self._next_start)
        self._next_start = slot + self._interval
        return slot

    def acquire(self) -> float:
        """Wait for a slot, for the shared pause to end and, when pacing, for this request's start
        slot; returns the start instant (a ticket)."""
        while True:
            with self._cond:
                while self._in_flight >= max(1, int(self._limit)):
                    self._cond.wait()
                now = self._clock()
                wait = self._not_before - now
                if wait <= 0:
                    self._in_flight += 1
                    if self._interval <= 0:
                        return now
                    slot = self._reserve(now)
                    break
            # Sleep outside the lock (injectable sleep), then check again: the pause may have moved.
            self._sleep(wait)
        try:  # paced: wait for our slot; a pause begun meanwhile voids it, so take a later one
            while True:
                if slot > now:
                    self._sleep(slot - now)
                with self._cond:
                    now = self._clock()
                    if slot < self._not_before:
                        slot = self._reserve(now)
                        continue
                    slot = self._no_catch_up(slot)
                    if slot <= now:
                        self._last_start = now
                        self._next_start = max(self._next_start, now + self._interval)
                        return now
        except BaseException:
            self.release()
            raise

    def _no_catch_up(self, slot: float) -> float:
        """(lock held) `slot`, or later: one spacing after the latest actual start. A worker that woke
        late (a loaded machine) must not be followed at once by the next one, whose slot has come:
        two starts that close let a rate window hold more than the server allows."""
        return max(slot, self._last_start + self._interval)

    def release(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def on_success(self) -> None:
        with self._cond:
            if self._limit < self.max_limit:
                self._limit = min(float(self.max_limit), self._limit + 1.0 / self._limit)
                self._cond.notify_all()

    def penalize(self, delay: float, started_at: float | None = None,
                 rate: tuple[int, float] | None = None) -> None:
        """A 429 asked for `delay` seconds: pause everyone until then. With the server's `rate`
        (limit, window seconds): pace to it, or widen the spacing if pacing did not prevent this
        429; without it: halve the limit."""
        with self._cond:
            now = self._clock()
            self._not_before = max(self._not_before, now + max(0.0, delay))
            news = started_at is None or started_at > self._last_decrease
            if rate is not None:
                spacing = min(self.max_interval, pace_spacing(rate, self.pace_margin))
                if spacing > self._interval:
                    self._interval = spacing
                    self._last_decrease = now
                elif news:
                    self._interval = min(self.max_interval, self._interval * _WIDEN)
                    self._last_decrease = now
            elif news:
                self._limit = max(1.0, self._limit / 2.0)
                self._last_decrease = now


def run_bounded(fn: Callable[[T], R], items: Iterable[T], concurrency: int) -> list[R | Exception]:
    """`fn` over `items` with at most `concurrency` threads; results (or the exception each call
    raised) in input order."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    work = list(items)
    if not work:
        return []

    def guarded(item: T) -> R | Exception:
        try:
            return fn(item)
        except Exception as exc:  # returned as a value: one failure must not stop the others
            return exc

    if concurrency == 1 or len(work) == 1:
        return [guarded(item) for item in work]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(work)), thread_name_prefix="nfd-api") as pool:
        return list(pool.map(guarded, work))
