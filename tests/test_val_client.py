"""API client, round 2: defensive parsing, listing totals, a total deadline per request, and body
excerpts that cannot leak the start of a secret. Servers run on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from trickle_server import TrickleServer

from notiflows_deploy.api.client import ManagementClient, sanitize_excerpt
from notiflows_deploy.api.errors import ApiTimeoutError, BadResponseError
from notiflows_deploy.api.models import MalformedAnswer, RemoteNotiflow, RemoteVersion
from notiflows_deploy.api.transport import Timeouts
from tests.test_client_faults import TOKEN, Answer, ScriptedServer, Seen, client_for, notiflow_json

SECRET = "SuperSecretValue123"

WHOAMI = json.dumps({"project": {"id": "1", "name": "d", "slug": "demo"}}).encode()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    try:
        yield srv
    finally:
        srv.close()


# --- 2: a malformed field is a BadResponseError for that call -------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"version_number": "abc"}, "current_version.version_number"),
        ({"version_number": 2.5}, "current_version.version_number"),
        ({"steps": {"a": 1}}, "current_version.steps"),
        ({"steps": [{"handle": "trigger"}, 5]}, "current_version.steps[1]"),
        ({"sha": 12}, "current_version.sha"),
        ({"valid": "yes"}, "current_version.valid"),
    ],
)
def test_a_malformed_version_field_is_a_bad_response(server: ScriptedServer, change: dict[str, Any],
                                                      field: str) -> None:
    data = notiflow_json()
    data["current_version"].update(change)
    server.script(Answer(200, data))
    with client_for(server, max_attempts=1) as (client, _), pytest.raises(BadResponseError) as info:
        client.get_notiflow("welcome")
    assert info.value.code == "bad_response" and info.value.status == 200
    assert field in info.value.message
    assert len(server.seen) == 1  # not retried: asking again gives the same answer


@pytest.mark.parametrize(
    ("change", "field"),
    [({"current_version": "oops"}, "current_version"), ({"published_version": 5}, "published_version"),
     ({"name": 5}, "name"), ({"active": "yes"}, "active"), ({"has_unpublished_changes": "no"}, "has_unpub")],
)
def test_a_malformed_notiflow_field_is_a_bad_response(server: ScriptedServer, change: dict[str, Any],
                                                       field: str) -> None:
    server.script(Answer(200, {**notiflow_json(), **change}))
    with client_for(server, max_attempts=1) as (client, _), pytest.raises(BadResponseError) as info:
        client.get_notiflow("welcome")
    assert field in info.value.message


def test_a_listing_item_without_a_handle_is_a_bad_response(server: ScriptedServer) -> None:
    server.script(Answer(200, {"items": [{"handle": "a"}, {"name": "x"}], "page_info": {"total": 2}}))
    with client_for(server) as (client, _), pytest.raises(BadResponseError, match=r"items\[1\]\.handle"):
        client.list_notiflows()


def test_a_malformed_version_in_the_versions_list_is_a_bad_response(server: ScriptedServer) -> None:
    server.script(Answer(200, {"items": [{"sha": "a", "version_number": "x"}], "page": {"has_more_after": False}}))
    with client_for(server) as (client, _), pytest.raises(BadResponseError, match=r"items\[0\]\.version_number"):
        client.list_versions("welcome")


def test_a_version_without_a_number_is_unknown_not_zero() -> None:
    version = RemoteVersion.from_json({"sha": "a", "status": "published", "steps": []})
    assert version is not None and version.version_number is None
    remote = RemoteNotiflow.from_json({"handle": "w", "current_version": None, "published_version": None})
    assert remote.current_version is None and remote.published_version is None


def test_the_models_raise_a_typed_error_not_a_value_error_deep_inside() -> None:
    with pytest.raises(MalformedAnswer) as info:
        RemoteNotiflow.from_json({"handle": "w", "current_version": {"version_number": "abc"}})
    assert info.value.field == "current_version.version_number"


# --- 5: listing pages with a total ----------------------------------------------------------------


def _capped_listing(total: int, cap: int) -> Any:
    """A server that caps `limit` at `cap` and says nothing of it but the total."""
    def answer(seen: Seen) -> Answer:
        page = int(seen.query["page"][0])
        items = [{"handle": f"n-{i:03d}"} for i in range((page - 1) * cap, min(page * cap, total))]
        return Answer(200, {"items": items, "page_info": {"page": page, "total": total}})
    return answer


def test_a_server_cap_below_the_limit_does_not_drop_pages(server: ScriptedServer) -> None:
    server.routes[("GET", "/management/v1/projects/demo/notiflows")] = _capped_listing(120, 50)
    with client_for(server) as (client, _):
        handles = [s.handle for s in client.list_notiflows(limit=100)]
    assert handles == [f"n-{i:03d}" for i in range(120)]
    assert [s.query["page"] for s in server.seen] == [["1"], ["2"], ["3"]]  # stops at the total


def test_a_total_larger_than_the_listing_ends_on_an_empty_page(server: ScriptedServer) -> None:
    def answer(seen: Seen) -> Answer:
        page = int(seen.query["page"][0])
        items = [{"handle": f"n-{i}"} for i in range((page - 1) * 10, min(page * 10, 25))]
        return Answer(200, {"items": items, "page_info": {"total": 40}})

    server.routes[("GET", "/management/v1/projects/demo/notiflows")] = answer
    with client_for(server) as (client, _):
        assert len(client.list_notiflows(limit=10)) == 25
    assert len(server.seen) == 4


def test_without_a_total_a_short_page_still_ends_the_listing(server: ScriptedServer) -> None:
    server.script(Answer(200, {"items": [{"handle": "a"}, {"handle": "b"}], "page_info": {}}),
                  Answer(200, {"items": [{"handle": "c"}], "page_info": {}}))
    with client_for(server) as (client, _):
        assert [s.handle for s in client.list_notiflows(limit=2)] == ["a", "b", "c"]
    assert len(server.seen) == 2


# --- 6: a total deadline per request ----------------------------------------------------------------


@pytest.mark.parametrize("in_headers", [False, True])
def test_a_trickling_server_is_cut_off_at_the_total_deadline(in_headers: bool) -> None:
    # ~6 s for the whole answer, each byte within the 1 s read timeout
    trickle = TrickleServer(WHOAMI, path="/management/v1", every=0.1, in_headers=in_headers)
    try:
        with ManagementClient(trickle.url, TOKEN, "demo", timeouts=Timeouts(connect=1.0, read=1.0, total=0.8),
                              max_attempts=2, backoff_base=0.0) as client:
            started = time.monotonic()
            with pytest.raises(ApiTimeoutError) as info:
                client.whoami()
            elapsed = time.monotonic() - started
    finally:
        trickle.close()
    assert elapsed < 3.0  # 2 attempts of 0.8 s, not 2 x 6 s
    assert info.value.code == "read_timeout"  # retried like a read timeout
    assert "0.8 s" in info.value.message and "gave up after 2 attempts" in info.value.message
    assert trickle.requests == 2


def test_the_default_deadline_is_connect_plus_read() -> None:
    assert Timeouts().deadline == 35.0
    assert Timeouts(connect=1, read=2).deadline == 3.0
    assert Timeouts(connect=1, read=2, total=10).deadline == 10.0
    with pytest.raises(ValueError):
        Timeouts(total=0)


def test_a_fast_answer_is_not_cut_and_the_connection_is_kept(server: ScriptedServer) -> None:
    server.script(*[Answer(200, {"project": {"slug": "demo"}})] * 21)
    with client_for(server, timeouts=Timeouts(connect=1.0, read=1.0, total=0.5)) as (client, _):
        for _ in range(20):
            client.whoami()
        time.sleep(0.7)  # past every deadline: a watchdog firing late must not break the pooled socket
        client.whoami()


# --- 7: excerpts redact the run's secrets before they are cut ----------------------------------------


def test_a_secret_at_the_cut_does_not_leave_its_prefix(server: ScriptedServer) -> None:
    secrets: set[str] = set()
    body = "x" * 190 + " token=" + SECRET + " and more text after it"
    server.script(Answer(502, body, content_type="text/html"))
    with client_for(server, max_attempts=1, secrets=secrets) as (client, _):
        secrets.add(SECRET)  # a live collection: values learned after the client was made count too
        with pytest.raises(BadResponseError) as info:
            client.whoami()
    message = str(info.value)
    for size in range(4, len(SECRET) + 1):
        assert SECRET[:size] not in message, size


@pytest.mark.parametrize("encode", [lambda s: s, lambda s: quote(s, safe=""), lambda s: json.dumps(s)[1:-1]])
def test_encoded_forms_of_a_secret_are_redacted_too(encode: Any) -> None:
    secret = "p@ss/w0rd+long"
    text = sanitize_excerpt(f"error: {encode(secret)} was refused".encode(), secrets=[secret])
    assert encode(secret) not in text and "***" in text


def test_a_secret_cut_by_the_scan_window_leaves_no_prefix() -> None:
    body = b" " * (64 * 1024 - 6) + SECRET.encode() + b" tail"
    text = sanitize_excerpt(body, secrets=[SECRET])
    assert SECRET[:6] not in text and text.endswith("…")


def test_a_cut_inside_a_word_that_starts_a_secret_drops_the_word() -> None:
    # Not the secret itself (not redacted), but the cut would end in its first characters "Supe".
    text = sanitize_excerpt(("y" * 195 + " SuperSecretValue999 tail").encode(), secrets=[SECRET], limit=200)
    assert text == "y" * 195 + "…"


def test_short_values_and_no_secrets_keep_the_plain_behaviour() -> None:
    assert sanitize_excerpt(b"hello   world") == "hello world"
    assert sanitize_excerpt(b"a" * 300) == "a" * 200 + "…"


def test_the_client_never_reads_a_growing_secret_set_unsafely() -> None:
    """The set may grow in another thread while an error is being built."""
    secrets = {f"secret-value-{i}" for i in range(50)}
    client = ManagementClient("http://127.0.0.1:9/x", TOKEN, "demo", secrets=secrets)
    stop = threading.Event()

    def grow() -> None:
        i = 0
        while not stop.is_set():
            secrets.add(f"more-{i}")
            i += 1

    thread = threading.Thread(target=grow)
    thread.start()
    try:
        for _ in range(200):
            assert client._secret_values()
    finally:
        stop.set()
        thread.join()
        client.close()

