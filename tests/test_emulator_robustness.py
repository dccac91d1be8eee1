"""The emulator under bad input (issue 3 audit): malformed requests, oversized or odd bodies, bad
state files, bad control requests. Always the error envelope, never a traceback, never half a write."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from emulator_support import PROJECT, api_session, running_emulator, valid_payload

from notiflows_deploy.emulator import Emulator
from notiflows_deploy.emulator.cli import main as emulator_main


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with running_emulator() as emulator:
        yield emulator


def url(emu: Emulator, handle: str = "flow", project: str = PROJECT) -> str:
    return f"{emu.base_url}/projects/{project}/notiflows/{handle}"


def ctl(emu: Emulator, name: str) -> str:
    return f"{emu.root_url}/_emulator/{name}"


def envelope_of(status: int, code: str, resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code and err["status"] == status
    assert set(err) == {"type", "code", "message", "status", "request_id", "details"}
    details: dict[str, Any] = err["details"]
    return details


def raw_exchange(emu: Emulator, data: bytes, *, half_close: bool = False) -> bytes:
    """Send raw bytes, return everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def parse_raw(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err


# ---- 2a: malformed request lines ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (b"GET / HTTP/1.1 extra\r\n\r\n", 400, "bad_request"),
        (b"GET /x HTTP/9.9\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "uri_too_long"),
        (b"GET /x HTTP/1.1\r\n" + b"X-H: y\r\n" * 200 + b"\r\n", 431, "headers_too_large"),
    ],
)
def test_malformed_requests_get_the_envelope(
    emu: Emulator, capfd: pytest.CaptureFixture[str], raw: bytes, status: int, code: str
) -> None:
    got, body = parse_raw(raw_exchange(emu, raw))
    assert got == status and body["error"]["code"] == code and body["error"]["status"] == status
    assert len(body["error"]["message"]) <= 201
    no_traceback(capfd)
    assert api_session(emu).get(f"{emu.base_url}/projects/{PROJECT}/whoami").status_code == 200


# ---- 2b: body size and Content-Length --------------------------------------------------------------


def test_huge_content_length_is_413_without_reading_it(emu: Emulator, capfd: pytest.CaptureFixture[str]) -> None:
    raw = (b"PUT /management/v1/projects/demo/notiflows/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000000\r\n"
           b"Authorization: Bearer " + emu.token.encode() + b"\r\n\r\n{}")
    status, body = parse_raw(raw_exchange(emu, raw, half_close=True))
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert body["error"]["details"] == {"limit": 5 * 1024 * 1024, "length": 100_000_000_000}
    no_traceback(capfd)


def test_body_over_the_cap_is_413_and_not_stored() -> None:
    with running_emulator(max_body_bytes=10_000) as emu:
        s = api_session(emu)
        big = valid_payload()
        big["steps"][1]["template"]["data"]["body"] = "x" * 20_000
        envelope_of(413, "payload_too_large", s.put(url(emu), json=big))
        assert s.get(url(emu)).status_code == 404
        assert s.put(url(emu), json=valid_payload()).status_code == 201  # under the cap: fine


def test_default_cap_is_5_mib(emu: Emulator) -> None:
    s = api_session(emu)
    big = valid_payload()
    big["steps"][1]["template"]["data"]["body"] = "x" * (5 * 1024 * 1024)
    envelope_of(413, "payload_too_large", s.put(url(emu), json=big))
    assert s.get(url(emu)).status_code == 404


@pytest.mark.parametrize("value", [b"abc", b"-1", b"+2", b"1_0", b"0x2", b"\xd9\xa2"])
def test_bad_content_length_is_400(emu: Emulator, value: bytes) -> None:
    raw = (b"PUT /management/v1/projects/demo/notiflows/x HTTP/1.1\r\nHost: a\r\nContent-Length: " + value +
           b"\r\nAuthorization: Bearer " + emu.token.encode() + b"\r\n\r\n{}")
    status, body = parse_raw(raw_exchange(emu, raw, half_close=True))
    assert status == 400 and body["error"]["details"]["param"] == "Content-Length"


def test_conflicting_content_lengths_are_400(emu: Emulator) -> None:
    raw = (b"PUT /management/v1/projects/demo/notiflows/x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
           b"Content-Length: 3\r\nAuthorization: Bearer " + emu.token.encode() + b"\r\n\r\n{} ")
    status, _ = parse_raw(raw_exchange(emu, raw, half_close=True))
    assert status == 400


def test_truncated_body_is_never_applied(emu: Emulator, capfd: pytest.CaptureFixture[str]) -> None:
    body = json.dumps(valid_payload()).encode()
    raw = (b"PUT /management/v1/projects/demo/notiflows/cut HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
           b"Content-Length: " + str(len(body) + 10).encode() + b"\r\nAuthorization: Bearer " + emu.token.encode() +
           b"\r\n\r\n" + body)
    assert raw_exchange(emu, raw, half_close=True) == b""  # closed: no answer to half a request
    assert api_session(emu).get(url(emu, "cut")).status_code == 404
    no_traceback(capfd)


# ---- 2c, 2f: JSON the emulator refuses ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"steps": ' + b"[" * 150 + b"]" * 150 + b"}",
        b'{"name": NaN}',
        b'{"name": "x", "steps": [{"handle": "trigger", "type": "trigger", "position": Infinity}]}',
        b'{"active": -Infinity}',
        b'{"name": 1e400}',
        b'{"name": ' + b"1" * 5000 + b"}",
    ],
)
def test_bad_json_is_400_invalid_json(emu: Emulator, capfd: pytest.CaptureFixture[str], data: bytes) -> None:
    r = api_session(emu).put(url(emu), data=data, headers={"Content-Type": "application/json"})
    assert envelope_of(400, "bad_request", r)["reason"] == "invalid_json"
    no_traceback(capfd)


def test_control_bodies_are_strict_json_too(emu: Emulator) -> None:
    r = requests.post(ctl(emu, "faults"), data=b'{"latency_ms": NaN}', headers={"Content-Type": "application/json"})
    assert envelope_of(400, "bad_request", r)["reason"] == "invalid_json"


# ---- 2g: media types ------------------------------------------------------------------------------


@pytest.mark.parametrize("ctype", ["text/html", "application/x-www-form-urlencoded", "text/plain; charset=utf-8"])
def test_non_json_content_type_is_415(emu: Emulator, ctype: str) -> None:
    s = api_session(emu)
    body = json.dumps(valid_payload())
    details = envelope_of(415, "unsupported_media_type", s.put(url(emu), data=body, headers={"Content-Type": ctype}))
    assert details["reason"] == "unsupported_media_type"
    assert s.get(url(emu)).status_code == 404
    envelope_of(415, "unsupported_media_type",
                requests.post(ctl(emu, "reset"), data="{}", headers={"Content-Type": ctype}))


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8", "Application/JSON",
                                   "application/merge-patch+json", None])
def test_json_content_types_and_none_are_accepted(emu: Emulator, ctype: str | None) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    r = api_session(emu).put(url(emu), data=json.dumps(valid_payload()).encode(), headers=headers)
    assert r.status_code == 201, r.text


def test_publish_body_checked_only_when_sent(emu: Emulator) -> None:
    s = api_session(emu)
    s.put(url(emu), json=valid_payload())
    envelope_of(415, "unsupported_media_type",
                s.post(url(emu) + "/publish", data="<p>", headers={"Content-Type": "text/html"}))
    assert s.post(url(emu) + "/publish").status_code == 200


# ---- 2h: 404 before the body ----------------------------------------------------------------------


def test_unknown_project_is_404_whatever_the_body(emu: Emulator) -> None:
    s = api_session(emu)
    for data, ctype in ((b"{not json", "application/json"), (b"<p>", "text/html"), (b"[NaN]", "application/json")):
        r = s.put(url(emu, project="nope"), data=data, headers={"Content-Type": ctype})
        assert envelope_of(404, "not_found", r) == {"resource": "project", "id": "nope"}
        r = s.post(url(emu, "missing") + "/publish", data=data, headers={"Content-Type": ctype})
        assert envelope_of(404, "not_found", r)["resource"] == "notiflow"


# ---- 2d: state files --------------------------------------------------------------------------------


def good_state(tmp_path: Path) -> dict[str, Any]:
    data = tmp_path / "seed.json"
    with running_emulator(data_file=str(data)) as emu:
        s = api_session(emu)
        s.put(url(emu), json=valid_payload())
        s.post(url(emu) + "/publish")
    state: dict[str, Any] = json.loads(data.read_text())
    return state


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda st: st["projects"].update(demo=[]), "projects.demo must be an object"),
        (lambda st: st["projects"]["demo"].pop("notiflows"), "projects.demo.notiflows is missing"),
        (lambda st: st["projects"]["demo"]["notiflows"]["flow"].pop("current"), "notiflows.flow.current is missing"),
        (lambda st: st["projects"]["demo"]["notiflows"]["flow"].update(current=9), "is not one of its versions"),
        (lambda st: st["projects"]["demo"]["notiflows"]["flow"]["versions"][0].update(status="live"), "status"),
        (lambda st: st["projects"]["demo"]["notiflows"]["flow"]["versions"][0]["content"].pop("steps"),
         "content.steps is missing"),
        (lambda st: st["projects"]["demo"]["notiflows"]["flow"].update(next_version=1), "next_version"),
    ],
)
def test_state_file_with_the_wrong_shape_is_refused(tmp_path: Path, mutate: Any, where: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    state = good_state(tmp_path)
    mutate(state)
    data = tmp_path / "state.json"
    data.write_text(json.dumps(state))
    with pytest.raises(ValueError, match="not a valid emulator state file") as info:
        Emulator(data_file=str(data))
    assert where in str(info.value) and "\n" not in str(info.value)
    assert emulator_main(["--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and where in err and "Traceback" not in err


def test_state_file_that_is_not_json_is_refused_in_one_line(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "state.json"
    data.write_text('{"format": 1, "projects": {"demo": \n')
    assert emulator_main(["--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not an emulator state file" in err


def test_a_written_state_file_passes_the_check(tmp_path: Path) -> None:
    data = tmp_path / "state.json"
    data.write_text(json.dumps(good_state(tmp_path)))
    with running_emulator(data_file=str(data)) as emu:
        assert api_session(emu).get(url(emu)).json()["published_version"]["version_number"] == 1


# ---- 2e, 2j: bad fault rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        {"method": "GET", "path": "(unclosed"},
        {"method": "GET", "path": "x", "status": 200},
        {"method": "GET", "path": "x", "status": 399},
        {"method": "GET", "path": "x", "status": 600},
        {"method": "GET", "path": "x", "count": 0},
        {"method": "GET", "path": 5},
        {"method": "GET", "path": "x", "retry_after": -1},
    ],
)
def test_bad_fail_next_rules_are_400(emu: Emulator, capfd: pytest.CaptureFixture[str], rule: dict[str, Any]) -> None:
    r = requests.post(ctl(emu, "fail-next"), json=rule)
    assert envelope_of(400, "bad_request", r)["reason"] == "invalid_param"
    assert requests.post(ctl(emu, "faults"), json={"fail_next": rule}).status_code == 400
    assert requests.get(ctl(emu, "faults")).json()["fail_next"] == []
    no_traceback(capfd)


@pytest.mark.parametrize("changes", [{"latency_ms": float("nan")}, {"latency_ms": float("inf")},
                                     {"error_rate": float("nan")}, {"rate_window": float("inf")}])
def test_non_finite_fault_settings_are_refused(emu: Emulator, changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="finite"):
        emu.set_faults(**changes)


# ---- 2i: the command line -------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_out_of_range_port_is_a_one_line_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert emulator_main(["--port", port]) == 1
    err = capsys.readouterr().err
    assert "--port" in err and "65535" in err and "Traceback" not in err


# ---- a bug inside the emulator -------------------------------------------------------------------------


def test_internal_error_is_a_500_envelope_and_one_line(emu: Emulator, monkeypatch: pytest.MonkeyPatch,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    def broken(slug: str) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(emu.store, "whoami", broken)
    r = api_session(emu).get(f"{emu.base_url}/projects/{PROJECT}/whoami")
    envelope_of(500, "internal_error", r)
    err = capfd.readouterr().err
    assert "internal error on GET" in err and "RuntimeError: boom" in err and "Traceback" not in err


# ---- 4: simulated dashboard activity is all or nothing ------------------------------------------------


def unpublishable() -> list[dict[str, Any]]:
    steps = valid_payload()["steps"]
    del steps[1]["channel_handle"]  # a valid draft that cannot be published
    return steps


def test_failed_dashboard_edit_with_publish_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "state.json"
    with running_emulator(data_file=str(data)) as emu:
        s = api_session(emu)
        s.put(url(emu), json=valid_payload())
        before = s.get(url(emu)).json()  # also fills the GET cache
        on_disk = data.read_bytes()
        r = requests.post(ctl(emu, "dashboard-edit"), json={"project": PROJECT, "handle": "flow",
                                                           "patch": {"steps": unpublishable()}, "publish": True})
        envelope_of(422, "validation_failed", r)
        assert s.get(url(emu)).json() == before
        assert emu.store.get_notiflow(PROJECT, "flow") == before  # memory, not only the cache
        assert data.read_bytes() == on_disk
        assert [v["version_number"] for v in s.get(url(emu) + "/versions").json()["items"]] == [1]


def test_failed_remote_only_with_publish_leaves_no_notiflow(tmp_path: Path) -> None:
    data = tmp_path / "state.json"
    with running_emulator(data_file=str(data)) as emu:
        r = requests.post(ctl(emu, "remote-only"), json={"project": PROJECT, "handle": "dash",
                                                        "steps": unpublishable(), "publish": True})
        envelope_of(422, "validation_failed", r)
        s = api_session(emu)
        assert s.get(url(emu, "dash")).status_code == 404
        assert s.get(f"{emu.base_url}/projects/{PROJECT}/notiflows").json()["items"] == []
        # and the handle is still free
        assert requests.post(ctl(emu, "remote-only"), json={"project": PROJECT, "handle": "dash"}).status_code == 200
    assert set(json.loads(data.read_text())["projects"][PROJECT]["notiflows"]) == {"dash"}


@pytest.mark.parametrize("body", [{"patch": {"name": None}}, {"patch": {"name": 5}}, {"patch": {"steps": {}}},
                                  {"patch": {"steps": [1]}}])
def test_dashboard_edit_that_would_break_the_stored_shape_is_400(emu: Emulator, body: dict[str, Any]) -> None:
    api_session(emu).put(url(emu), json=valid_payload())
    r = requests.post(ctl(emu, "dashboard-edit"), json={"project": PROJECT, "handle": "flow", **body})
    envelope_of(400, "bad_request", r)
    assert api_session(emu).get(url(emu)).json()["name"] == "Welcome Series"


# ---- 2k: fresh drafts (opt-in) ----------------------------------------------------------------------


def test_fresh_draft_after_publish_when_enabled() -> None:
    with running_emulator(fresh_drafts=True) as emu:
        s = api_session(emu)
        s.put(url(emu), json=valid_payload())
        body = s.post(url(emu) + "/publish").json()
        assert body["published_version"]["version_number"] == 1
        assert body["current_version"]["status"] == "draft" and body["current_version"]["version_number"] == 2
        assert body["current_version"]["sha"] == body["published_version"]["sha"]
        assert body["has_unpublished_changes"] is False
        assert s.post(url(emu) + "/publish").json() == body  # nothing new to publish: a no-op
        assert s.put(url(emu), json=valid_payload()).json() == body  # unchanged content: no new version
        edited = s.put(url(emu), json=valid_payload(name="v3")).json()
        assert edited["current_version"]["version_number"] == 3 and edited["has_unpublished_changes"] is True
        final = s.post(url(emu) + "/publish").json()
        assert final["published_version"]["version_number"] == 3
        versions = s.get(url(emu) + "/versions").json()["items"]
        assert [(v["version_number"], v["status"]) for v in versions] == [(4, "draft"), (3, "published"),
                                                                          (1, "archived")]
