"""Bounded concurrency shared by every worker thread, slowing down for everyone on 429.

`AdaptiveGate` is one object per client, shared by all threads using that client:

* at most ``limit`` requests are in flight (a condition-variable semaphore whose size can change);
* a shared "not before" instant: when any worker is told 429 + Retry-After, `penalize` moves it
  forward and every worker (not just the one that was refused) waits until then before its next
  request, so the whole run backs off instead of each thread hammering on its own;
* additive-increase / multiplicative-decrease of ``limit``: a 429 halves it (at least 1), each
  success adds ``1/limit`` (about +1 per round of successful requests) up to ``max_limit``. Only the
  first 429 of a burst halves: a 429 answering a request that started before the last decrease says
  nothing new.

`run_bounded` runs a function over items on a thread pool and returns results or exceptions in
input order: one failure never stops the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class AdaptiveGate:
    def __init__(
        self,
        max_limit: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_limit < 1:
            raise ValueError("concurrency must be at least 1")
        self.max_limit = max_limit
        self._limit = float(max_limit)
        self._in_flight = 0
        self._not_before = 0.0
        self._last_decrease = float("-inf")
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()

    @property
    def limit(self) -> int:
        with self._cond:
            return max(1, int(self._limit))

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def pause_remaining(self) -> float:
        with self._cond:
            return max(0.0, self._not_before - self._clock())

    def acquire(self) -> float:
        """Wait for a slot and for the shared pause to end; returns the start instant (a ticket)."""
        while True:
            with self._cond:
                while self._in_flight >= max(1, int(self._limit)):
                    self._cond.wait()
                wait = self._not_before - self._clock()
                if wait <= 0:
                    self._in_flight += 1
                    return self._clock()
            # Sleep outside the lock (injectable sleep), then check again: the pause may have moved.
            self._sleep(wait)

    def release(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def on_success(self) -> None:
        with self._cond:
            if self._limit < self.max_limit:
                self._limit = min(float(self.max_limit), self._limit + 1.0 / self._limit)
                self._cond.notify_all()

    def penalize(self, delay: float, started_at: float | None = None) -> None:
        """A 429 asked for `delay` seconds: pause everyone until then and halve the limit."""
        with self._cond:
            now = self._clock()
            self._not_before = max(self._not_before, now + max(0.0, delay))
            if started_at is None or started_at > self._last_decrease:
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
