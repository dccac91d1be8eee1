"""Fault injection of the emulator, over real loopback HTTP."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from emulator_support import PROJECT, api_session, running_emulator, valid_payload

from notiflows_deploy.emulator import Emulator, Faults


def whoami(emu: Emulator) -> str:
    return f"{emu.base_url}/projects/{PROJECT}/whoami"


def test_latency_overlaps_between_clients() -> None:
    with running_emulator(faults={"latency_ms": 200}) as emu:
        t0 = time.monotonic()
        assert api_session(emu).get(whoami(emu)).status_code == 200
        assert time.monotonic() - t0 >= 0.2
        results: list[int] = []

        def call() -> None:
            results.append(api_session(emu).get(whoami(emu)).status_code)

        threads = [threading.Thread(target=call) for _ in range(4)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 4
        assert time.monotonic() - t0 < 0.6  # 4 x 200 ms would be 0.8 s if serialised
        emu.set_faults(latency_ms=0)
        t0 = time.monotonic()
        api_session(emu).get(whoami(emu))
        assert time.monotonic() - t0 < 0.15


def test_rate_limit_per_token() -> None:
    with running_emulator(tokens=["nf_at_a", "nf_at_b"], faults={"rate_limit": "3/30"}) as emu:
        s = api_session(emu, "nf_at_a")
        assert [s.get(whoami(emu)).status_code for _ in range(3)] == [200, 200, 200]
        r = s.get(whoami(emu))
        assert r.status_code == 429
        err = r.json()["error"]
        assert err["code"] == "rate_limited" and err["type"].endswith("#rate_limited-429")
        assert err["details"]["limit"] == 3 and err["details"]["window"] == "30s"
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= 30 and err["details"]["retry_after"] == retry
        assert api_session(emu, "nf_at_b").get(whoami(emu)).status_code == 200  # per token
        emu.set_faults(rate_limit=None)
        assert s.get(whoami(emu)).status_code == 200


def test_rate_limit_window_resets() -> None:
    with running_emulator() as emu:
        emu.set_faults(rate_limit="2/0.3")
        s = api_session(emu)
        assert [s.get(whoami(emu)).status_code for _ in range(3)] == [200, 200, 429]
        time.sleep(0.35)
        assert s.get(whoami(emu)).status_code == 200


def test_error_rate_is_seeded_and_deterministic() -> None:
    def run() -> list[int]:
        with running_emulator(faults=Faults(error_rate=0.5, seed=7)) as emu:
            s = api_session(emu)
            return [s.get(whoami(emu)).status_code for _ in range(40)]

    first, second = run(), run()
    assert first == second
    assert set(first) == {200, 503}
    assert 8 <= first.count(503) <= 32
    with running_emulator(faults={"error_rate": 1.0, "error_status": 502}) as emu:
        r = api_session(emu).get(whoami(emu))
        assert r.status_code == 502 and r.json()["error"]["code"] == "bad_gateway"
        emu.set_faults(error_status=503)
        r = api_session(emu).get(whoami(emu))
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"


def test_drop_rate_closes_without_answer() -> None:
    with running_emulator(faults={"drop_rate": 1.0}) as emu:
        with pytest.raises(requests.ConnectionError):
            api_session(emu).get(whoami(emu), timeout=5)
        assert emu.request_count == 1
        assert emu.requests[-1]["status"] is None
        emu.set_faults(drop_rate=0.0)
        assert api_session(emu).get(whoami(emu)).status_code == 200


def test_fail_next_matching_rules() -> None:
    with running_emulator() as emu:
        s = api_session(emu)
        url = f"{emu.base_url}/projects/{PROJECT}/notiflows/flow"
        emu.fail_next("PUT", r"/notiflows/flow$", status=500, count=2)
        assert s.get(whoami(emu)).status_code == 200  # other requests untouched
        assert s.get(url).status_code == 404  # GET does not match the PUT rule
        r = s.put(url, json=valid_payload())
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
        assert s.put(url, json=valid_payload()).status_code == 500
        assert s.put(url, json=valid_payload()).status_code == 201  # rule used up
        emu.fail_next("*", "whoami", status=429, retry_after=7)
        r = s.get(whoami(emu))
        assert r.status_code == 429 and r.headers["Retry-After"] == "7"
        assert r.json()["error"]["details"]["retry_after"] == 7
        emu.fail_next("POST", "/publish$", drop=True)
        with pytest.raises(requests.ConnectionError):
            s.post(f"{url}/publish", timeout=5)
        assert s.get(url).json()["published_version"] is None  # dropped before any effect
        assert s.post(f"{url}/publish").status_code == 200


def test_faults_over_control_endpoint() -> None:
    with running_emulator() as emu:
        ctl = f"{emu.root_url}/_emulator/faults"
        r = requests.post(ctl, json={"error_rate": 1.0, "seed": 1,
                                     "fail_next": {"method": "GET", "path": "whoami", "status": 504}})
        assert r.status_code == 200
        assert r.json()["error_rate"] == 1.0 and r.json()["fail_next"][0]["status"] == 504
        s = api_session(emu)
        assert s.get(whoami(emu)).status_code == 504
        assert s.get(whoami(emu)).status_code == 503
        # control endpoints are never faulted
        assert requests.get(f"{emu.root_url}/_emulator/state").status_code == 200
        r = requests.post(ctl, json={"clear": True, "rate_limit": "1/60"})
        assert r.json()["error_rate"] == 0.0 and r.json()["rate_limit"] == 1 and r.json()["rate_window"] == 60
        assert [s.get(whoami(emu)).status_code for _ in range(2)] == [200, 429]
        for bad in ({"error_rate": 2}, {"bogus": 1}, {"rate_limit": "x/y"}, {"latency_ms": -1}):
            r = requests.post(ctl, json=bad)
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
        r = requests.post(f"{emu.root_url}/_emulator/fail-next", json={"method": "GET", "path": "whoami",
                                                                      "status": 500})
        assert r.status_code == 200
        assert requests.get(ctl).json()["fail_next"][0]["status"] == 500


def test_errors_before_auth_when_faulted() -> None:
    # Faults hit before auth (like a proxy in front of the API); an unauthenticated request is also counted.
    with running_emulator(faults={"error_rate": 1.0}) as emu:
        assert requests.get(whoami(emu)).status_code == 503
        emu.set_faults(error_rate=0.0)
        assert requests.get(whoami(emu)).status_code == 401
        assert emu.request_count == 2
