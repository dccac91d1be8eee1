"""Circuit breaker of the Management API client: stop calling a server that is not there.

One `CircuitBreaker` per client, shared by every worker thread (like `AdaptiveGate`). Without it,
once the server is gone every remaining call would still make all its attempts with backoff.

What counts
    * Counted as "unreachable": TransportError codes ``connect_error`` (connection refused, DNS,
      no route), ``connect_timeout`` and ``connection_error`` (reset / dropped mid-request: the
      server went away under us).
    * Not counted, and not resetting the count either: read timeouts (``read_timeout``). Something
      accepted the connection and took the request; one slow endpoint (say, publishing a large
      notiflow) must not fail unrelated notiflows, and "unreachable" would be the wrong word. The
      price: a server that accepts connections but never answers is not caught (each call still
      waits its read timeouts). Also neutral: ``tls_error`` / ``invalid_url`` (configuration
      errors, never retried anyway) and other transport errors.
    * Any HTTP answer, whatever its status (2xx, 4xx, 429, 5xx, a proxy's HTML page), proves the
      server is reachable: it resets the count and closes the circuit. 429s and 5xx are the retry
      policy's business (api/retry.py), not the breaker's.

States
    * closed: every attempt goes out.
    * open: after `threshold` consecutive counted failures (by any workers, no answer between
      them). `check` then refuses every new attempt, first or retry, with a TransportError of code
      ``circuit_open`` (nothing sent, no retry, no sleep). Attempts already on the wire finish
      normally, and an answer from one of them closes the circuit.
    * probing: once `cooldown` seconds (the injected clock) have passed since the server was last
      found unreachable, `check` lets ONE attempt through and restarts the cooldown, so at most one
      probe per cooldown. Its answer closes the circuit; its counted failure keeps it open.

The default threshold (5) equals the client's default `max_attempts`, so a call running alone keeps
its whole retry budget; with several workers the threshold is reached within their first retries,
and the rest of the run fails within a backoff wait or two (about a second) instead of minutes.
The price: an outage shorter than a call's retry budget but seen by 5 attempts (say, a restart
refusing connections for a moment while 4 workers are busy) fails the remaining calls of the run;
the next run picks them up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from notiflows_deploy.api.errors import ApiError, TransportError

log = logging.getLogger("notiflows_deploy.api")

UNREACHABLE_CODES = frozenset({"connect_error", "connect_timeout", "connection_error"})
CIRCUIT_OPEN = "circuit_open"
HINT_UNREACHABLE = "check network access and --api-url / NOTIFLOWS_BASE_URL; run again once the API answers"


def counts_as_unreachable(error: ApiError) -> bool:
    return isinstance(error, TransportError) and error.code in UNREACHABLE_CODES


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError("circuit threshold must be at least 1")
        if cooldown < 0:
            raise ValueError("circuit cooldown must not be negative")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0  # consecutive counted failures since the last answer
        self._open = False
        self._last_failure_at = 0.0  # when the server was last found unreachable
        self._last_message = ""  # what the latest counted failure said (host, kind)

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open

    @property
    def failures(self) -> int:
        with self._lock:
            return self._failures

    def check(self, *, method: str = "", path: str = "", attempts: int = 0) -> TransportError | None:
        """None: the attempt may go out. Otherwise the error to raise instead of attempting it;
        `attempts` is how many attempts this call already made (for the message)."""
        with self._lock:
            if not self._open:
                return None
            now = self._clock()
            if now - self._last_failure_at >= self.cooldown:
                self._last_failure_at = now  # one probe per cooldown
                log.info("%s %s: probing whether the API answers again", method, path)
                return None
            failures, latest = self._failures, self._last_message
        done = f"gave up after {attempts} attempt{'s' * (attempts > 1)}" if attempts else "not attempted"
        return TransportError(
            f"{done}: the API has been unreachable for the last {failures} attempts (latest: {latest}); "
            f"the remaining API calls are not attempted",
            code=CIRCUIT_OPEN, method=method, url=path, details={"unreachable_attempts": failures},
            hint=HINT_UNREACHABLE,
        )

    def on_answer(self) -> None:
        """An HTTP answer arrived (any status): the server is reachable."""
        with self._lock:
            was_open, self._open, self._failures = self._open, False, 0
        if was_open:
            log.info("the API answers again; calls are attempted again")

    def on_error(self, error: ApiError) -> None:
        """An attempt failed without an HTTP answer; only counted failures matter."""
        if not counts_as_unreachable(error):
            return
        with self._lock:
            self._failures += 1
            self._last_failure_at = self._clock()
            self._last_message = error.message
            opened = not self._open and self._failures >= self.threshold
            self._open = self._open or opened
            failures = self._failures
        if opened:
            log.warning("the API was unreachable for the last %d attempts (%s); failing the remaining calls "
                        "without attempting them", failures, error.message)
