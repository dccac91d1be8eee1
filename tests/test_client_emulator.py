"""ManagementClient against the bundled emulator over real loopback HTTP: every call, every error
code, retries under each injected fault, 429 back-off honoured, and no token anywhere."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from emulator_support import PROJECT, TOKEN, running_emulator, valid_payload

from notiflows_deploy.api.client import ManagementClient
from notiflows_deploy.api.errors import (
    ApiError,
    ApiTimeoutError,
    AuthError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    ValidationFailedError,
)
from notiflows_deploy.api.models import NotiflowSummary, RemoteNotiflow
from notiflows_deploy.api.transport import Timeouts
from notiflows_deploy.emulator import Emulator

FAST: dict[str, Any] = dict(backoff_base=0.01, backoff_cap=2.0, timeouts=Timeouts(connect=2.0, read=5.0))


def logged(emulator: Emulator, count: int) -> list[dict[str, Any]]:
    """The request log once it has `count` more entries than the API count implies (the emulator
    logs after sending the answer, so the client may return first)."""
    deadline = time.monotonic() + 2
    while len(emulator.requests) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    return emulator.requests


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with running_emulator() as em:
        yield em


@pytest.fixture
def client(emulator: Emulator) -> Iterator[ManagementClient]:
    with ManagementClient(emulator.base_url, TOKEN, PROJECT, **FAST) as c:
        yield c


def test_every_call(client: ManagementClient, emulator: Emulator) -> None:
    assert client.whoami()["project"]["slug"] == PROJECT
    assert client.list_notiflows() == []
    assert client.get_notiflow("welcome-series") is None

    created = client.upsert_notiflow("welcome-series", valid_payload(), expected_sha=None)
    assert created.created
    v1 = created.notiflow.current_version
    assert v1 is not None and v1.status == "draft" and v1.version_number == 1 and v1.sha

    same = client.upsert_notiflow("welcome-series", valid_payload(), expected_sha=v1.sha)
    assert not same.created and same.notiflow.current_version == v1  # unchanged: no new version

    published = client.publish_notiflow("welcome-series")
    assert published.current_version is not None and published.current_version.status == "published"
    assert published.published_version is not None and published.published_version.sha == v1.sha
    again = client.publish_notiflow("welcome-series")  # publishing the published version: no-op
    assert again.current_version == published.current_version

    updated = client.upsert_notiflow("welcome-series", valid_payload(name="Renamed"), expected_sha=v1.sha)
    assert not updated.created and updated.notiflow.name == "Renamed"
    got = client.get_notiflow("welcome-series")
    assert isinstance(got, RemoteNotiflow) and got.has_unpublished_changes
    assert got.current_version is not None and got.current_version.version_number == 2
    assert got.current_version.created_by is not None and got.current_version.created_by.type == "account_token"

    summaries = client.list_notiflows()
    assert [s.handle for s in summaries] == ["welcome-series"]
    assert isinstance(summaries[0], NotiflowSummary)
    assert [v.version_number for v in client.list_versions("welcome-series")] == [2, 1]


def test_list_notiflows_all_pages(client: ManagementClient, emulator: Emulator) -> None:
    handles = [f"flow-{i:02d}" for i in range(7)]
    results = client.map(lambda h: client.upsert_notiflow(h, valid_payload(), expected_sha=None), handles)
    assert not [r for r in results if isinstance(r, Exception)]
    before = emulator.request_count
    assert [s.handle for s in client.list_notiflows(limit=3)] == handles
    assert emulator.request_count - before == 3  # 3 + 3 + 1 (short page ends it)
    before = emulator.request_count
    assert len(client.list_notiflows(limit=7)) == 7
    assert emulator.request_count - before == 1  # page*limit >= total
    # The emulator caps limit at 100: a larger request still pages correctly.
    assert len(client.list_notiflows(limit=500)) == 7


def test_list_versions_follows_cursor(client: ManagementClient) -> None:
    for i in range(5):  # one draft at a time: publish each so versions accumulate
        client.upsert_notiflow("multi", valid_payload(name=f"N{i}"), expected_sha=None)
        client.publish_notiflow("multi")
    versions = client.list_versions("multi", limit=2)
    assert [v.version_number for v in versions] == [5, 4, 3, 2, 1]
    assert [v.status for v in versions] == ["published"] + ["archived"] * 4


# -- error codes -------------------------------------------------------------------------------


def test_401(emulator: Emulator) -> None:
    with ManagementClient(emulator.base_url, "nf_at_wrong", PROJECT, **FAST) as c, pytest.raises(AuthError) as info:
        c.whoami()
    assert info.value.status == 401 and info.value.code == "unauthenticated"
    assert "NOTIFLOWS_TOKEN" in str(info.value)
    assert emulator.request_count == 1  # not retried


def test_404_project(emulator: Emulator) -> None:
    with ManagementClient(emulator.base_url, TOKEN, "no-such-project", **FAST) as c:
        for call in (c.whoami, c.list_notiflows, lambda: c.get_notiflow("x"),
                     lambda: c.upsert_notiflow("x", valid_payload(), expected_sha=None)):
            with pytest.raises(NotFoundError) as info:
                call()
            assert "project slug" in str(info.value), str(info.value)
        with pytest.raises(NotFoundError, match="project 'no-such-project' not found"):
            c.get_notiflow("x")


def test_404_notiflow(client: ManagementClient) -> None:
    assert client.get_notiflow("missing") is None
    with pytest.raises(NotFoundError) as info:
        client.publish_notiflow("missing")
    assert "POST /management/v1/projects/demo/notiflows/missing/publish" in str(info.value)
    with pytest.raises(NotFoundError):
        client.list_versions("missing")


def test_404_wrong_base_path_is_not_a_missing_notiflow(emulator: Emulator) -> None:
    base = emulator.root_url + "/api/management/v1"
    with ManagementClient(base, TOKEN, PROJECT, **FAST) as c, pytest.raises(NotFoundError) as info:
        c.get_notiflow("welcome-series")
    assert "--api-url" in str(info.value)


def test_409_conflict_after_dashboard_edit(client: ManagementClient, emulator: Emulator) -> None:
    first = client.upsert_notiflow("welcome-series", valid_payload(), expected_sha=None)
    assert first.notiflow.current_version is not None
    emulator.dashboard_edit(PROJECT, "welcome-series", {"name": "Edited in dashboard"})
    before = emulator.request_count
    with pytest.raises(ConflictError) as info:
        client.upsert_notiflow("welcome-series", valid_payload(name="Ours"),
                               expected_sha=first.notiflow.current_version.sha)
    assert info.value.status == 409 and "after_retry" not in info.value.details
    assert emulator.request_count - before == 1
    remote = client.get_notiflow("welcome-series")
    assert remote is not None and remote.name == "Edited in dashboard"


def test_422_validation(client: ManagementClient) -> None:
    with pytest.raises(ValidationFailedError) as info:
        client.upsert_notiflow("welcome_series", valid_payload(), expected_sha=None)
    assert info.value.status == 422 and any(f.get("field") == "handle" for f in info.value.fields)
    # A blank template body is refused on upsert already.
    blank = valid_payload()
    blank["steps"][1]["template"]["data"]["body"] = " "
    with pytest.raises(ValidationFailedError):
        client.upsert_notiflow("blank-body", blank, expected_sha=None)
    # A channel step without a channel is a valid draft but cannot be published.
    no_channel = valid_payload()
    del no_channel["steps"][1]["channel_handle"]
    draft = client.upsert_notiflow("no-channel", no_channel, expected_sha=None)
    assert draft.notiflow.current_version is not None and not draft.notiflow.current_version.valid
    with pytest.raises(ValidationFailedError) as pub:
        client.publish_notiflow("no-channel")
    assert any("channel_handle" in f.get("field", "") for f in pub.value.fields)
    assert "POST /management/v1/projects/demo/notiflows/no-channel/publish" in str(pub.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_retried(client: ManagementClient, emulator: Emulator, status: int) -> None:
    emulator.fail_next("GET", "/whoami$", status=status, count=2)
    assert client.whoami()["project"]["slug"] == PROJECT
    assert [r["status"] for r in logged(emulator, 3)][-3:] == [status, status, 200]


def test_5xx_exhausted(emulator: Emulator) -> None:
    emulator.fail_next("GET", "/whoami$", status=503, count=10)
    with ManagementClient(emulator.base_url, TOKEN, PROJECT, max_attempts=3, **FAST) as c, \
            pytest.raises(ServerError) as info:
        c.whoami()
    assert "gave up after 3 attempts" in str(info.value) and emulator.request_count == 3


def test_dropped_connection_retried(client: ManagementClient, emulator: Emulator) -> None:
    emulator.fail_next("GET", "/whoami$", drop=True, count=2)
    assert client.whoami()["project"]["slug"] == PROJECT
    assert emulator.request_count == 3


def test_dropped_connections_exhausted(emulator: Emulator) -> None:
    emulator.fail_next("*", ".", drop=True, count=10)
    with ManagementClient(emulator.base_url, TOKEN, PROJECT, max_attempts=2, **FAST) as c, \
            pytest.raises(TransportError) as info:
        c.list_notiflows()
    assert info.value.__cause__ is not None


def test_latency_past_read_timeout(emulator: Emulator) -> None:
    emulator.set_faults(latency_ms=600)
    with ManagementClient(emulator.base_url, TOKEN, PROJECT, max_attempts=2, backoff_base=0.01,
                          timeouts=Timeouts(connect=1.0, read=0.2)) as c, pytest.raises(ApiTimeoutError) as info:
        c.whoami()
    assert info.value.code == "read_timeout"


def test_429_retry_after_is_honoured(client: ManagementClient, emulator: Emulator) -> None:
    emulator.fail_next("GET", "/whoami$", status=429, retry_after=1)
    started = time.monotonic()
    assert client.whoami()["project"]["slug"] == PROJECT
    elapsed = time.monotonic() - started
    assert 0.95 <= elapsed < 2.5, elapsed  # waited the server's 1 s, not the 0.01 s backoff


def test_429_exhausted_is_rate_limited(emulator: Emulator) -> None:
    emulator.fail_next("GET", "/whoami$", status=429, retry_after=1, count=5)
    slept: list[float] = []
    clock = [0.0]

    def sleep(s: float) -> None:
        slept.append(s)
        clock[0] += s

    with ManagementClient(emulator.base_url, TOKEN, PROJECT, max_attempts=3, sleep=sleep,
                          clock=lambda: clock[0], backoff_base=0.01) as c, pytest.raises(RateLimitedError) as info:
        c.whoami()
    assert info.value.retry_after == 1.0 and info.value.code == "rate_limited"
    assert slept == [1.0, 1.0]


def test_rate_limit_slows_all_workers(emulator: Emulator) -> None:
    """4 workers, server allows 3 requests per second: everything succeeds, spread over time."""
    for i in range(9):
        emulator.create_remote_only(PROJECT, f"flow-{i}")
    emulator.set_faults(rate_limit="3/1")
    with ManagementClient(emulator.base_url, TOKEN, PROJECT, concurrency=4, max_attempts=8,
                          backoff_base=0.01, backoff_cap=2.0) as c:
        started = time.monotonic()
        results = c.map(c.get_notiflow, [f"flow-{i}" for i in range(9)])
        elapsed = time.monotonic() - started
    assert all(isinstance(r, RemoteNotiflow) for r in results), results
    statuses = [r["status"] for r in logged(emulator, emulator.request_count)]
    assert statuses.count(200) == 9 and statuses.count(429) >= 1
    assert elapsed >= 1.9  # 9 requests at 3/s need at least two more windows


def test_map_isolates_failures(client: ManagementClient) -> None:
    client.upsert_notiflow("good", valid_payload(), expected_sha=None)
    results = client.map(client.publish_notiflow, ["good", "missing", "good"])
    assert isinstance(results[0], RemoteNotiflow) and isinstance(results[2], RemoteNotiflow)
    assert isinstance(results[1], NotFoundError)


def test_upsert_lost_answer_then_409_is_recognised_as_ours(emulator: Emulator) -> None:
    """The first PUT lands but its answer is lost (read timeout); the retry gets 409 because our own
    write moved the sha; the client reads the notiflow, sees its content, and reports success."""
    with ManagementClient(emulator.base_url, TOKEN, PROJECT, **FAST) as setup:
        first = setup.upsert_notiflow("welcome-series", valid_payload(), expected_sha=None)
    assert first.notiflow.current_version is not None
    sha1 = first.notiflow.current_version.sha

    emulator.set_faults(latency_ms=600)
    baseline = emulator.request_count

    def clear_latency_once_sent() -> None:
        deadline = time.monotonic() + 5
        while emulator.request_count == baseline and time.monotonic() < deadline:
            time.sleep(0.005)
        emulator.set_faults(latency_ms=0)  # only the first PUT is slow

    helper = threading.Thread(target=clear_latency_once_sent)
    helper.start()
    # Wait 0.6 s before the retry so the slow first PUT has landed by then.
    with ManagementClient(emulator.base_url, TOKEN, PROJECT, timeouts=Timeouts(connect=1.0, read=0.3),
                          sleep=lambda _s: time.sleep(0.6)) as c:
        result = c.upsert_notiflow("welcome-series", valid_payload(name="Ours"), expected_sha=sha1)
    helper.join()
    assert not result.created and result.notiflow.name == "Ours"
    assert result.notiflow.current_version is not None and result.notiflow.current_version.version_number == 2
    methods = [(r["method"], r["status"]) for r in logged(emulator, emulator.request_count)][-3:]
    assert methods == [("PUT", 409), ("GET", 200)] or methods[-2:] == [("PUT", 409), ("GET", 200)], methods


def test_publish_lost_answer_not_repeated(emulator: Emulator) -> None:
    with ManagementClient(emulator.base_url, TOKEN, PROJECT, **FAST) as setup:
        setup.upsert_notiflow("welcome-series", valid_payload(), expected_sha=None)
    emulator.set_faults(latency_ms=500)
    baseline = emulator.request_count

    def clear() -> None:
        while emulator.request_count == baseline:
            time.sleep(0.005)
        emulator.set_faults(latency_ms=0)

    helper = threading.Thread(target=clear)
    helper.start()
    with ManagementClient(emulator.base_url, TOKEN, PROJECT, timeouts=Timeouts(connect=1.0, read=0.25),
                          sleep=lambda _s: time.sleep(0.5)) as c:
        result = c.publish_notiflow("welcome-series")
    helper.join()
    assert result.current_version is not None and result.current_version.status == "published"
    tail = [r["method"] for r in logged(emulator, emulator.request_count)][-2:]
    assert tail == ["POST", "GET"]  # the retry was skipped: the GET showed it published


# -- secrets -----------------------------------------------------------------------------------


def test_token_never_appears(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "nf_at_Z9_very_secret_token_value_42"
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    errors: list[BaseException] = []
    with running_emulator(tokens=[secret]) as em:
        with ManagementClient(em.base_url, secret, PROJECT, max_attempts=2, **FAST) as c:
            texts += [repr(c), str(c), repr(c.__dict__), repr(vars(c._transport))]
            calls: list[Any] = [
                c.whoami, c.list_notiflows, lambda: c.get_notiflow("nope"),
                lambda: c.upsert_notiflow("a", valid_payload(), expected_sha=None),
                lambda: c.upsert_notiflow("a", valid_payload(name="B"), expected_sha="stale"),  # 409
                lambda: c.upsert_notiflow("bad_handle", valid_payload(), expected_sha=None),  # 422
                lambda: c.publish_notiflow("a"), lambda: c.list_versions("a"),
                lambda: c.publish_notiflow("nope"),  # 404
            ]
            for call in calls:
                try:
                    texts.append(repr(call()))
                except ApiError as exc:
                    errors.append(exc)
            for status, drop in ((429, False), (503, False), (0, True)):
                em.fail_next("*", ".", status=status or 503, count=2, drop=drop, retry_after=0)
                try:
                    c.whoami()
                except ApiError as exc:
                    errors.append(exc)
            em.set_faults(latency_ms=300)
            with ManagementClient(em.base_url, secret, PROJECT, max_attempts=1,
                                  timeouts=Timeouts(connect=1.0, read=0.1)) as slow:
                try:
                    slow.whoami()
                except ApiError as exc:
                    errors.append(exc)
            em.set_faults(latency_ms=0)
        with ManagementClient(em.base_url, "nf_at_other_" + secret[::-1], "nope", **FAST) as wrong:
            try:
                wrong.whoami()
            except ApiError as exc:
                errors.append(exc)
    kinds = {type(e).__name__ for e in errors}
    assert {"ConflictError", "ValidationFailedError", "NotFoundError", "RateLimitedError", "ServerError",
            "TransportError", "ApiTimeoutError", "AuthError"} <= kinds, kinds
    for failure in errors:
        chain: BaseException | None = failure
        while chain is not None:
            texts += [str(chain), repr(chain), repr(chain.args), repr(vars(chain))]
            if isinstance(chain, ApiError):
                texts.append(repr(chain.to_dict()))
            chain = chain.__cause__ or chain.__context__
    out = capsys.readouterr()
    texts += [caplog.text, out.out, out.err]
    leaks = [t for t in texts if secret in t]
    assert not leaks, leaks[:1]
