"""The client's shared circuit breaker (api/circuit.py) and the NOTIFLOWS_DEPLOY_BACKOFF_BASE knob.

Unit tests drive `CircuitBreaker` with a hand-made clock; the rest runs the real client against a
closed 127.0.0.1 port, the scripted server of test_client_faults and the emulator stopped mid-way.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from emulator_support import PROJECT, TOKEN, running_emulator
from test_client_faults import Answer, FakeTime, ScriptedServer, envelope, notiflow_json

from notiflows_deploy.api import client as client_module
from notiflows_deploy.api.circuit import CIRCUIT_OPEN, CircuitBreaker, counts_as_unreachable
from notiflows_deploy.api.client import ManagementClient, backoff_base_from_env
from notiflows_deploy.api.errors import ApiError, ApiTimeoutError, ServerError, TransportError
from notiflows_deploy.api.retry import is_retryable, may_have_landed
from notiflows_deploy.api.transport import Timeouts
from notiflows_deploy.emulator import Emulator


def refused(message: str = "could not connect to 127.0.0.1:9") -> TransportError:
    return TransportError(message, code="connect_error")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def server() -> Any:
    srv = ScriptedServer()
    try:
        yield srv
    finally:
        srv.close()


# -- the breaker alone -------------------------------------------------------------------------


def test_opens_after_threshold_consecutive_unreachable_attempts() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown=5.0, clock=Clock())
    for _ in range(2):
        breaker.on_error(refused())
        assert breaker.check() is None
    breaker.on_error(refused("could not connect to api.example:443"))
    assert breaker.is_open and breaker.failures == 3
    error = breaker.check(method="GET", path="/management/v1/projects/demo/whoami")
    assert isinstance(error, TransportError) and error.code == CIRCUIT_OPEN
    assert error.message.startswith("not attempted: the API has been unreachable for the last 3 attempts")
    assert "could not connect to api.example:443" in error.message
    assert "remaining API calls are not attempted" in error.message
    assert "GET /management/v1/projects/demo/whoami" in str(error) and error.hint
    assert error.request_id is None  # nothing was sent


def test_what_counts() -> None:
    assert counts_as_unreachable(TransportError("x", code="connect_error"))
    assert counts_as_unreachable(ApiTimeoutError("x", code="connect_timeout"))
    assert counts_as_unreachable(TransportError("x", code="connection_error"))  # reset mid-request
    assert not counts_as_unreachable(ApiTimeoutError("x", code="read_timeout"))
    assert not counts_as_unreachable(TransportError("x", code="tls_error"))
    assert not counts_as_unreachable(ServerError("x", code="internal_error", status=500))
    breaker = CircuitBreaker(threshold=2, clock=Clock())
    breaker.on_error(refused())
    for neutral in (ApiTimeoutError("slow", code="read_timeout"), ServerError("x", status=503)):
        breaker.on_error(neutral)  # neither counted nor resetting
    assert breaker.failures == 1 and not breaker.is_open
    breaker.on_error(refused())
    assert breaker.is_open


def test_any_answer_resets_and_closes() -> None:
    breaker = CircuitBreaker(threshold=2, clock=Clock())
    breaker.on_error(refused())
    breaker.on_answer()  # e.g. a 404 or a 503: the server is there
    breaker.on_error(refused())
    assert not breaker.is_open and breaker.failures == 1
    breaker.on_error(refused())
    assert breaker.is_open
    breaker.on_answer()  # an attempt that was in flight when it opened got an answer
    assert not breaker.is_open and breaker.failures == 0 and breaker.check() is None


def test_one_probe_per_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=5.0, clock=clock)
    breaker.on_error(refused())
    clock.now += 4.9
    assert breaker.check() is not None
    clock.now += 0.1
    assert breaker.check() is None  # the probe
    assert breaker.check() is not None  # only one
    breaker.on_error(refused())  # the probe failed: still open, cooldown restarts
    clock.now += 4.9
    assert breaker.check() is not None
    clock.now += 0.1
    assert breaker.check() is None
    breaker.on_answer()
    assert not breaker.is_open and breaker.check() is None and breaker.check() is None


def test_breaker_arguments_and_retry_codes() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(cooldown=-1)
    error = CircuitBreaker(threshold=1, clock=Clock())
    error.on_error(refused())
    fail_fast = error.check()
    assert fail_fast is not None and not is_retryable(fail_fast) and not may_have_landed(fail_fast)


def test_breaker_is_thread_safe() -> None:
    breaker = CircuitBreaker(threshold=10_000, clock=Clock())

    def hammer() -> None:
        for _ in range(1000):
            breaker.on_error(refused())

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert breaker.failures == 8000 and not breaker.is_open


# -- the client, deterministic (fake clock and sleep) ------------------------------------------


def test_lone_call_keeps_its_retries_then_the_rest_fails_fast() -> None:
    ft = FakeTime()
    with ManagementClient(f"http://127.0.0.1:{closed_port()}", TOKEN, PROJECT, sleep=ft.sleep,
                          clock=ft.clock) as client:
        with pytest.raises(TransportError) as first:
            client.whoami()
        assert first.value.code == "connect_error" and "gave up after 5 attempts" in first.value.message
        assert len(ft.slept) == 4 and client.breaker.is_open
        for handle in ("a", "b", "c"):
            with pytest.raises(TransportError) as info:
                client.get_notiflow(handle)
            assert info.value.code == CIRCUIT_OPEN
            assert info.value.message.startswith("not attempted: the API has been unreachable for the last 5 attempts")
            assert "127.0.0.1" in info.value.message  # the latest real failure says where
        assert len(ft.slept) == 4  # no retries, no sleeping


def test_call_refused_mid_retries_says_what_it_did(server: ScriptedServer) -> None:
    server.script(*[Answer(drop=True)] * 3)
    ft = FakeTime()
    with ManagementClient(server.base_url, TOKEN, PROJECT, circuit_threshold=3, backoff_base=0.01,
                          sleep=ft.sleep, clock=ft.clock) as client, pytest.raises(TransportError) as info:
        client.get_notiflow("welcome")
    assert info.value.code == CIRCUIT_OPEN and len(server.seen) == 3
    assert info.value.message.startswith("gave up after 3 attempts: the API has been unreachable for the last 3")
    assert "connection to 127.0.0.1" in info.value.message  # the reset that came last


def test_http_answers_keep_it_closed(server: ScriptedServer) -> None:
    """404 / 503 / 429 / a proxy page between resets: the server is reachable, never opens."""
    answers = [envelope(404, "not_found", details={"resource": "notiflow"}), envelope(503, "unavailable"),
               envelope(429, "rate_limited", details={"retry_after": 0}),
               Answer(502, "<html>bad gateway</html>", content_type="text/html")]
    for answer in answers:
        server.script(*[Answer(drop=True)] * 4, answer)
    ft = FakeTime()
    with ManagementClient(server.base_url, TOKEN, PROJECT, max_attempts=1, sleep=ft.sleep,
                          clock=ft.clock) as client:
        for _ in range(len(answers) * 5):
            try:
                client.get_notiflow("welcome")
            except ApiError as exc:
                assert exc.code != CIRCUIT_OPEN
        assert client.breaker.failures == 0 and not client.breaker.is_open
        server.script(*[Answer(drop=True)] * 5)
        for _ in range(5):
            with pytest.raises(TransportError):
                client.get_notiflow("welcome")
        assert client.breaker.is_open
    assert len(server.seen) == len(answers) * 5 + 5


def test_read_timeouts_do_not_open_it(server: ScriptedServer) -> None:
    server.script(*[Answer(200, notiflow_json(), delay=0.5)] * 3)
    ft = FakeTime()
    with ManagementClient(server.base_url, TOKEN, PROJECT, max_attempts=3, circuit_threshold=2,
                          timeouts=Timeouts(connect=1.0, read=0.1), sleep=ft.sleep, clock=ft.clock) as client:
        with pytest.raises(ApiTimeoutError) as info:
            client.get_notiflow("welcome")
        assert info.value.code == "read_timeout" and not client.breaker.is_open
    assert len(server.seen) == 3


def test_request_in_flight_finishes_and_its_answer_closes_it(server: ScriptedServer) -> None:
    ft = FakeTime()
    with ManagementClient(server.base_url, TOKEN, PROJECT, max_attempts=1, circuit_threshold=3,
                          sleep=ft.sleep, clock=ft.clock) as client:
        server.script(Answer(200, notiflow_json("slow"), delay=0.6))
        slow: list[Any] = []
        worker = threading.Thread(target=lambda: slow.append(client.get_notiflow("slow")))
        worker.start()
        assert _wait(lambda: len(server.seen) == 1)
        server.script(*[Answer(drop=True)] * 3)
        for _ in range(3):
            with pytest.raises(TransportError):
                client.get_notiflow("welcome")
        assert client.breaker.is_open
        with pytest.raises(TransportError) as info:
            client.get_notiflow("welcome")
        assert info.value.code == CIRCUIT_OPEN and len(server.seen) == 4  # not sent
        worker.join(timeout=10)
        assert slow and slow[0] is not None and slow[0].handle == "slow"  # finished normally
        assert not client.breaker.is_open  # its answer closed the circuit
        server.script(Answer(200, notiflow_json()))
        assert client.get_notiflow("welcome") is not None and len(server.seen) == 5


def _wait(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


# -- the client, real time: a dead server must not cost minutes --------------------------------


def _fail_fast_run(client: ManagementClient, handles: list[str]) -> tuple[list[Any], float]:
    started = time.monotonic()
    results = client.map(client.get_notiflow, handles)
    return results, time.monotonic() - started


def test_fifty_calls_on_a_closed_port_fail_fast() -> None:
    sent: list[str] = []
    with ManagementClient(f"http://127.0.0.1:{closed_port()}", TOKEN, PROJECT, concurrency=4,
                          timeouts=Timeouts(connect=2.0, read=5.0)) as client:
        assert client.policy.backoff_base == 0.5  # the default backoff, real sleeps
        send = client._transport.send

        def counting_send(*args: Any, **kwargs: Any) -> Any:
            sent.append(str(kwargs.get("path")))
            return send(*args, **kwargs)

        client._transport.send = counting_send  # type: ignore[method-assign]
        results, elapsed = _fail_fast_run(client, [f"flow-{i:02d}" for i in range(50)])
    # Without the breaker: 50 calls x 5 attempts, ~3.75 s of backoff each / 4 workers = ~47 s.
    assert elapsed < 3.0, elapsed
    assert all(isinstance(r, TransportError) for r in results)
    codes = [r.code for r in results if isinstance(r, TransportError)]
    assert codes.count(CIRCUIT_OPEN) >= 46  # at most the 4 calls running when it opened differ
    assert set(codes) <= {CIRCUIT_OPEN, "connect_error"}
    assert len(sent) <= 5 + 3  # the threshold, plus at most one attempt per other worker in flight
    fail_fast = next(r for r in results if isinstance(r, TransportError) and r.code == CIRCUIT_OPEN)
    assert "the API has been unreachable for the last" in fail_fast.message
    assert "remaining API calls are not attempted" in fail_fast.message


def test_emulator_stopped_mid_way_then_back() -> None:
    clock = Clock()  # the breaker's cooldown is driven by hand; sleeps are real
    with running_emulator(tokens=[TOKEN], projects=[PROJECT]) as emu:
        port = emu.port
        client = ManagementClient(emu.base_url, TOKEN, PROJECT, concurrency=4, clock=clock,
                                  timeouts=Timeouts(connect=2.0, read=5.0))
        stopped = threading.Event()
        stopped_at: list[float] = []

        def call(i: int) -> Any:
            if i == 10:
                emu.stop()  # mid-way: keep-alive connections are cut, the port refuses
                stopped_at.append(time.monotonic())
                stopped.set()
            elif i > 10:
                stopped.wait(timeout=10)
            return client.get_notiflow(f"flow-{i:02d}")

        results = client.map(call, range(60))
        done = time.monotonic()
    try:
        # Without the breaker: 50 calls x 5 attempts, ~3.75 s of backoff each / 4 workers = ~47 s.
        assert done - stopped_at[0] < 3.0, done - stopped_at[0]
        assert sum(r is None for r in results[:10]) >= 7  # answered (404 notiflow -> None) before
        assert all(isinstance(r, TransportError) for r in results[10:])
        fail_fast = [r for r in results if isinstance(r, TransportError) and r.code == CIRCUIT_OPEN]
        assert len(fail_fast) >= 50 - 4  # at most the 4 calls running when it opened differ
        assert client.breaker.is_open

        with Emulator(tokens=[TOKEN], projects=[PROJECT], port=port):  # the server comes back
            with pytest.raises(TransportError) as info:
                client.get_notiflow("welcome")  # within the cooldown: still not attempted
            assert info.value.code == CIRCUIT_OPEN
            clock.now += client.breaker.cooldown
            assert client.get_notiflow("welcome") is None  # the probe is answered: closed
            assert not client.breaker.is_open
            assert client.map(client.get_notiflow, ["a", "b", "c", "d", "e"]) == [None] * 5
    finally:
        client.close()


# -- NOTIFLOWS_DEPLOY_BACKOFF_BASE -------------------------------------------------------------


def test_backoff_base_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert backoff_base_from_env({}) == 0.5
    assert backoff_base_from_env({"NOTIFLOWS_DEPLOY_BACKOFF_BASE": " 0.01 "}) == 0.01
    assert backoff_base_from_env({"NOTIFLOWS_DEPLOY_BACKOFF_BASE": "0"}) == 0.0
    for bad in ("", "fast", "-1", "nan", "inf"):
        assert backoff_base_from_env({"NOTIFLOWS_DEPLOY_BACKOFF_BASE": bad}) == 0.5
    monkeypatch.delenv(client_module.BACKOFF_BASE_ENV, raising=False)
    with ManagementClient("http://127.0.0.1:1", TOKEN, PROJECT) as client:
        assert client.policy.backoff_base == 0.5
    monkeypatch.setenv(client_module.BACKOFF_BASE_ENV, "0.02")
    with ManagementClient("http://127.0.0.1:1", TOKEN, PROJECT) as client:
        assert client.policy.backoff_base == 0.02  # read when the client is built
    with ManagementClient("http://127.0.0.1:1", TOKEN, PROJECT, backoff_base=0.3) as client:
        assert client.policy.backoff_base == 0.3  # an explicit value wins
