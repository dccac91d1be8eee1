"""Pacing in api/ratelimit.py: once a 429 says the server's rate (details.limit / details.window),
the shared gate spaces request starts to stay under it with one request of room per window. Pure
tests with a fake clock (late wake-ups included), one threaded test on the real clock, and one
against the emulator's rate limit."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from emulator_support import PROJECT, TOKEN, running_emulator

from notiflows_deploy.api.client import ManagementClient
from notiflows_deploy.api.models import RemoteNotiflow
from notiflows_deploy.api.ratelimit import AdaptiveGate, pace_spacing, parse_window, rate_from_details, run_bounded
from notiflows_deploy.api.transport import Timeouts


class FakeClock:
    """sleep() advances the clock; `during_sleep` runs inside the first sleep (another worker)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.during_sleep: Callable[[], None] | None = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        hook, self.during_sleep = self.during_sleep, None
        if hook is not None:
            hook()


def paced_gate(fc: FakeClock, limit: int = 8, **kwargs: Any) -> AdaptiveGate:
    return AdaptiveGate(limit, clock=fc.clock, sleep=fc.sleep, **kwargs)


# -- reading the server's rate ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1s", 1.0), ("1", 1.0), (" 2.5 s ", 2.5), ("500ms", 0.5), ("1m", 60.0), ("1min", 60.0),
     ("60 seconds", 60.0), ("minute", 60.0), ("1h", 3600.0), ("2 hours", 7200.0), (1, 1.0), (0.5, 0.5),
     ("", None), ("0s", None), ("-1s", None), ("1 fortnight", None), ("s1", None), (True, None),
     (None, None), ([1], None), (float("inf"), None), (float("nan"), None)],
)
def test_parse_window(value: object, seconds: float | None) -> None:
    assert parse_window(value) == seconds


@pytest.mark.parametrize(
    ("details", "rate"),
    [({"limit": 100, "window": "1s", "retry_after": 1}, (100, 1.0)),
     ({"limit": 600, "window": 60}, (600, 60.0)),
     ({"limit": 100}, None), ({"window": "1s"}, None), ({"limit": 0, "window": "1s"}, None),
     ({"limit": True, "window": "1s"}, None), ({"limit": "100", "window": "1s"}, None),
     ({"limit": 100, "window": "soon"}, None), ({}, None), (None, None)],
)
def test_rate_from_details(details: dict[str, Any] | None, rate: tuple[int, float] | None) -> None:
    assert rate_from_details(details) == rate


# -- the gate -----------------------------------------------------------------------------------


def test_no_pacing_until_a_429_says_the_rate() -> None:
    fc = FakeClock()
    gate = paced_gate(fc)
    for _ in range(20):
        gate.acquire()
        gate.release()
    assert fc.slept == [] and gate.interval == 0.0
    ticket = gate.acquire()
    gate.release()
    gate.penalize(1.0, ticket)  # a 429 without limit/window: the old behaviour, halve and pause
    assert gate.interval == 0.0 and gate.limit == 4


def test_rate_429_pauses_then_spaces_starts_without_halving() -> None:
    fc = FakeClock()
    gate = paced_gate(fc)
    ticket = gate.acquire()
    gate.release()
    gate.penalize(1.0, ticket, (100, 1.0))
    assert gate.interval == pytest.approx(1.05 / 99)  # window / (limit - 1), 5% slower still
    assert gate.limit == 8  # the rate is the bottleneck, not the number in flight
    starts = []
    for _ in range(4):  # held at once: the spacing is shared, not per worker
        starts.append(gate.acquire())
    for _ in range(4):
        gate.release()
    assert starts[0] == pytest.approx(ticket + 1.0)  # everyone waited for Retry-After first
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == pytest.approx([1.05 / 99] * 3)
    assert gate.in_flight == 0


def test_idle_time_does_not_allow_a_burst() -> None:
    fc = FakeClock()
    gate = paced_gate(fc)
    gate.penalize(0.0, None, (10, 1.0))
    gate.acquire()
    gate.release()
    fc.now += 5.0  # idle for many intervals
    first = gate.acquire()
    second = gate.acquire()
    assert second - first == pytest.approx(1.05 / 9)


def test_pause_begun_while_waiting_for_a_slot_voids_it() -> None:
    fc = FakeClock()
    gate = paced_gate(fc)
    gate.penalize(0.0, None, (10, 1.0))
    first = gate.acquire()  # takes the slot at now; the next is 1.05 / 9 s later
    # While the next worker sleeps towards its slot, another worker is told 429 + 2 s.
    fc.during_sleep = lambda: gate.penalize(2.0, first, (10, 1.0))
    start = gate.acquire()
    assert start >= 100 + 1.05 / 9 + 2.0 - 1e-9  # not at its old slot, inside the pause
    after = gate.acquire()
    assert after - start == pytest.approx(1.05 / 9)
    assert gate.in_flight == 3


def test_429_despite_pacing_widens_once_per_burst() -> None:
    fc = FakeClock()
    gate = paced_gate(fc)
    early = gate.acquire()
    gate.release()
    gate.penalize(1.0, early, (100, 1.0))
    gate.penalize(1.0, early, (100, 1.0))  # the rest of the first burst: nothing new
    assert gate.interval == pytest.approx(1.05 / 99)
    paced = gate.acquire()
    gate.release()
    gate.penalize(1.0, paced, (100, 1.0))  # refused although paced: slow down by 10%
    gate.penalize(1.0, paced, (100, 1.0))
    assert gate.interval == pytest.approx(1.05 / 99 * 1.1)
    assert gate.limit == 8


def test_stricter_rate_replaces_looser_and_spacing_is_capped() -> None:
    fc = FakeClock()
    gate = paced_gate(fc, max_interval=5.0)
    gate.penalize(0.0, None, (100, 1.0))
    gate.penalize(0.0, float("-inf"), (10, 1.0))  # stricter: adopted even from an old request
    assert gate.interval == pytest.approx(1.05 / 9)
    gate.penalize(0.0, float("-inf"), (1000, 1.0))  # looser, old request: ignored
    assert gate.interval == pytest.approx(1.05 / 9)
    gate.penalize(0.0, None, (1, 3600.0))  # one an hour: capped like a server-asked wait
    assert gate.interval == 5.0


def test_margin_zero_still_leaves_one_request_of_room() -> None:
    fc = FakeClock()
    gate = paced_gate(fc, pace_margin=0.0)
    gate.penalize(0.0, None, (4, 1.0))
    assert gate.interval == pytest.approx(1 / 3)  # 3 gaps a window: 4 starts in a window that opens on one
    assert pace_spacing((1, 1.0), 0.0) == 1.0  # one a window: never two in it
    with pytest.raises(ValueError):
        paced_gate(fc, pace_margin=-0.1)


class LateClock(FakeClock):
    """A loaded machine: every sleep ends later than asked, by a random amount up to `late`."""

    def __init__(self, late: float, seed: int = 7) -> None:
        super().__init__()
        self.late = late
        self.random = random.Random(seed)

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds + self.random.uniform(0, self.late))


def fixed_window_refusals(starts: list[float], limit: int, window: float) -> int:
    """What the emulator's limiter says to these starts: a window opens at the first start after
    the previous one ended and admits `limit`; the rest of it is refused."""
    refused, opened, count = 0, float("-inf"), 0
    for start in sorted(starts):
        if start - opened >= window:
            opened, count = start, 0
        count += 1
        refused += count > limit
    return refused


def test_a_late_wake_up_does_not_let_the_next_start_catch_up() -> None:
    fc = FakeClock()
    gate = paced_gate(fc)
    gate.penalize(0.0, None, (11, 1.0))  # 0.105 s apart
    first = gate.acquire()
    # The next worker oversleeps its slot by 0.3 s; the one after must not start right behind it.
    fc.during_sleep = lambda: setattr(fc, "now", fc.now + 0.3)
    late = gate.acquire()
    after = gate.acquire()
    assert late - first == pytest.approx(0.105 + 0.3)
    assert after - late == pytest.approx(0.105)


def test_paced_starts_fit_a_fixed_window_even_when_wake_ups_are_late() -> None:
    """100 a second, every wake-up up to 50 ms late: no window the emulator's way holds too many."""
    limit, window = 100, 1.0
    fc = LateClock(late=0.05)
    gate = paced_gate(fc)
    gate.penalize(0.0, None, (limit, window))
    starts = []
    for _ in range(600):
        starts.append(gate.acquire())
        gate.release()
    assert min(b - a for a, b in itertools.pairwise(starts)) >= gate.interval - 1e-9
    assert fixed_window_refusals(starts, limit - 1, window) == 0  # a request of room in every window
    assert fixed_window_refusals(starts, limit, window + 0.05) == 0  # room for arrivals 50 ms out of step


def test_threads_share_the_spacing() -> None:
    """Real clock, 6 threads: starts are spread evenly, not bunched per worker."""
    gate = AdaptiveGate(6)
    gate.penalize(0.0, None, (50, 1.0))  # 21 ms
    starts: list[float] = []
    lock = threading.Lock()

    def work(_: int) -> None:
        start = gate.acquire()
        try:
            with lock:
                starts.append(start)
            time.sleep(0.03)  # a request longer than the spacing: several in flight at once
        finally:
            gate.release()

    run_bounded(work, range(24), 6)
    starts.sort()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Actual starts, not only slots, are a spacing apart: a late thread pushes the next one back.
    assert len(starts) == 24 and min(gaps) >= gate.interval - 1e-9, gaps
    assert starts[-1] - starts[0] >= 23 * gate.interval - 1e-9
    assert gate.in_flight == 0


# -- against the emulator -----------------------------------------------------------------------


def test_emulator_rate_limit_is_paced_not_stormed() -> None:
    """40 requests/s, 200 GETs, concurrency 8: one burst of 429s teaches the rate, then pacing.

    What matters, asserted without counting on a quiet machine: no request fails, the first burst is
    bounded by the requests in flight, the gate paces at the advertised rate, and later 429s stay
    rare (fewer than one per rate window, where a client that only halves its concurrency overshoots
    in every window). 429s are told apart by when they reached the limiter, not by the emulator's
    log: that is in answer order, and under load an early 200 answered late looks like a resumption
    and turns the rest of the first burst into "later" 429s."""
    count, rate, concurrency = 200, 40, 8
    reached: list[tuple[float, int | None]] = []  # (when, status) as the limiter decided
    with running_emulator() as em:
        for i in range(count):
            em.create_remote_only(PROJECT, f"flow-{i}")
        em.set_faults(latency_ms=10, rate_limit=f"{rate}/1")
        decide = em.faults.decide

        def recording(*args: Any, **kwargs: Any) -> Any:
            decision = decide(*args, **kwargs)
            reached.append((time.monotonic(), decision.status))
            return decision

        em.faults.decide = recording  # type: ignore[method-assign]
        with ManagementClient(em.base_url, TOKEN, PROJECT, concurrency=concurrency, max_attempts=8,
                              backoff_base=0.01, backoff_cap=2.0,
                              timeouts=Timeouts(connect=2.0, read=5.0)) as c:
            results = c.map(c.get_notiflow, [f"flow-{i}" for i in range(count)])
            interval = c.gate.interval
    assert all(isinstance(r, RemoteNotiflow) for r in results), [r for r in results if isinstance(r, Exception)]
    refused = [when for when, status in reached if status == 429]
    assert refused, "the test must really hit the rate limit"
    assert sum(1 for _, status in reached if status is None) == count
    # The first 429 pauses everyone for its Retry-After (1 s): a 429 half a second later is a later one.
    burst = [when for when in refused if when < min(refused) + 0.5]
    later_429s = len(refused) - len(burst)
    # In flight when the window filled, plus any started before the first 429 came back.
    assert len(burst) <= 2 * concurrency, len(burst)
    assert later_429s < count // rate, later_429s
    # paced with a request of room per window, 5% slower still (10% slower per later 429, if any)
    assert 1.05 / (rate - 1) - 1e-9 <= interval <= 1.05 / (rate - 1) * 1.1**later_429s + 1e-9
