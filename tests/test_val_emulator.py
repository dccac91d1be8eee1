"""Emulator, round 2: branch scopes with a null half, handles with a trailing newline, malformed
step fields (422, never 500: fuzzed), atomic --data writes, a clear --rate-limit message."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from json_mutations import REPLACEMENTS, json_paths, replaced

from notiflows_deploy.emulator import content as C
from notiflows_deploy.emulator.cli import main
from notiflows_deploy.emulator.faults import parse_rate_limit
from notiflows_deploy.emulator.store import ApiProblem, Store
from notiflows_deploy.files import WorkTree
from notiflows_deploy.loader import load_notiflow
from tests.emulator_support import PROJECT, api_session, running_emulator, valid_payload

CORPUS = Path(__file__).parent / "corpus"
ACTOR = {"type": "account_token", "id": "at_x", "name": "test"}
UPSERT_EVERY = 5  # the full upsert (sha, copies) on every fifth case; the validators on all


def url(emu: Any, handle: str) -> str:
    return f"{emu.base_url}/projects/{PROJECT}/notiflows/{handle}"


def branching(**child_scope: Any) -> dict[str, Any]:
    payload = valid_payload()
    payload["steps"][2:2] = [
        {"handle": "cond_1", "type": "condition", "position": 2, "settings": {"branches": [
            {"handle": "yes", "name": "Yes"}, {"handle": "no", "name": "No"}]}},
        {"handle": "wait_2", "type": "wait", "position": 0, "settings": {"duration": 1, "duration_unit": "days"},
         **child_scope},
    ]
    payload["steps"][4]["position"] = 3  # wait_1
    payload["steps"][5]["position"] = 4  # end
    return payload


# --- 1: half a branch reference -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "field"),
    [({"parent_step_handle": None, "branch_handle": "ghost"}, "steps[3].branch_handle"),
     ({"branch_handle": "ghost"}, "steps[3].branch_handle"),
     ({"parent_step_handle": "cond_1", "branch_handle": None}, "steps[3].branch_handle"),
     ({"parent_step_handle": "cond_1"}, "steps[3].branch_handle")],
)
def test_half_a_branch_reference_is_refused(scope: dict[str, Any], field: str) -> None:
    with running_emulator() as emu:
        response = api_session(emu).put(url(emu, "flow"), json=branching(**scope))
    assert response.status_code == 422
    fields = response.json()["error"]["details"]["fields"]
    assert field in [f["field"] for f in fields]


def test_a_complete_branch_reference_is_accepted() -> None:
    with running_emulator() as emu:
        response = api_session(emu).put(url(emu, "flow"), json=branching(parent_step_handle="cond_1",
                                                                         branch_handle="yes"))
    assert response.status_code == 201, response.text


# --- 8: a trailing newline in a handle ----------------------------------------------------------------


def test_a_notiflow_handle_with_a_trailing_newline_is_refused() -> None:
    with running_emulator() as emu:
        s = api_session(emu)
        response = s.put(f"{emu.base_url}/projects/{PROJECT}/notiflows/nl%0A", json=valid_payload())
        assert response.status_code == 422
        assert response.json()["error"]["details"]["fields"][0]["field"] == "handle"
        assert s.get(f"{emu.base_url}/projects/{PROJECT}/notiflows").json()["items"] == []


def test_a_step_handle_with_a_trailing_newline_is_refused() -> None:
    payload = valid_payload()
    payload["steps"][1]["handle"] = "email_1\n"
    assert [f["field"] for f in C.validate_steps(payload["steps"])] == ["steps[1].handle"]


# --- 11: malformed step fields are a 422, never a 500 ---------------------------------------------------


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p["steps"][1].update(parent_step_handle=["x"], branch_handle="a"),
        lambda p: p["steps"][1].update(branch_handle={"a": 1}),
        lambda p: p["steps"][1].update(channel_type=["email"]),
        lambda p: p["steps"][1].update(type=["channel"]),
        lambda p: p["steps"].insert(2, {"handle": "cond_1", "type": "condition", "position": 2,
                                        "settings": {"branches": [{"handle": ["a"], "name": "A"}, "b"]}}),
        lambda p: p["steps"].insert(2, {"handle": "cond_1", "type": "condition", "position": 2,
                                        "settings": {"branches": {"handle": "a"}}}),
    ],
)
def test_the_audits_malformed_fields_are_422(mutate: Any) -> None:
    payload = valid_payload()
    mutate(payload)
    with running_emulator() as emu:
        response = api_session(emu).put(url(emu, "flow"), json=payload)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["fields"]


def _corpus_payloads() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for directory in sorted((CORPUS / "valid").iterdir()):
        loaded = load_notiflow(WorkTree(CORPUS), notiflows_root="valid", handle=directory.name, env={},
                               substitute=False)
        assert loaded.payload is not None, directory.name
        out.append((directory.name, loaded.payload))
    return out


def _must_not_crash(store: Store, body: Any, upsert: bool) -> None:
    if isinstance(body, dict):
        C.validate_top_level(body)
        C.validate_steps(body.get("steps"))
        C.validate_for_publish(body.get("steps"))
    if not upsert or not isinstance(body, dict):
        return
    try:
        store.upsert(PROJECT, "flow", body, ACTOR)
        store.publish(PROJECT, "flow", ACTOR)
    except ApiProblem as problem:
        assert problem.status < 500, (problem.status, problem.message)


@pytest.mark.parametrize(("handle", "payload"), _corpus_payloads(), ids=lambda v: v if isinstance(v, str) else "")
def test_fuzz_every_value_of_the_corpus_never_crashes_the_validation(handle: str, payload: dict[str, Any]) -> None:
    store = Store({PROJECT: PROJECT})
    case = 0
    for path in list(json_paths(payload)):
        for new in REPLACEMENTS:
            case += 1
            _must_not_crash(store, replaced(payload, path, new), upsert=case % UPSERT_EVERY == 0)


def test_fuzz_over_http_never_answers_5xx() -> None:
    payload = valid_payload()
    statuses: set[int] = set()
    with running_emulator() as emu:
        s = api_session(emu)
        for path in list(json_paths(payload)):
            for new in REPLACEMENTS:
                response = s.put(url(emu, "flow"), json=replaced(payload, path, new))
                statuses.add(response.status_code)
                assert response.status_code < 500, (path, new, response.text)
                if response.status_code == 422:
                    assert response.json()["error"]["details"]["fields"]
        s.post(url(emu, "flow") + "/publish")
    assert 422 in statuses and statuses <= {200, 201, 400, 422}


# --- 12: --data is written before the change is applied ----------------------------------------------


def test_a_write_that_cannot_be_saved_changes_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state's directory should be")
    data = blocker / "state.json"
    with running_emulator(data_file=str(data)) as emu:
        s = api_session(emu)
        failed = s.put(url(emu, "flow"), json=valid_payload())
        assert failed.status_code == 500
        assert failed.json()["error"]["details"]["reason"] == "state_not_saved"
        assert s.get(url(emu, "flow")).status_code == 404  # not in memory either
        blocker.unlink()
        retried = s.put(url(emu, "flow"), json=valid_payload())
        assert retried.status_code == 201  # the retry does the write, and it is saved
    saved = json.loads(data.read_text())
    assert list(saved["projects"][PROJECT]["notiflows"]) == ["flow"]


def test_a_publish_that_cannot_be_saved_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "state.json"
    with running_emulator(data_file=str(data)) as emu:
        s = api_session(emu)
        assert s.put(url(emu, "flow"), json=valid_payload()).status_code == 201
        before = data.read_bytes()

        def full_disk(_data: bytes) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(emu.store, "_save", full_disk)
        assert s.post(url(emu, "flow") + "/publish").status_code == 500
        assert s.get(url(emu, "flow")).json()["published_version"] is None
        assert data.read_bytes() == before
        monkeypatch.undo()
        published = s.post(url(emu, "flow") + "/publish")
        assert published.status_code == 200 and published.json()["published_version"] is not None
    assert json.loads(data.read_text())["projects"][PROJECT]["notiflows"]["flow"]["published"] == 1


def test_writes_never_change_a_state_that_readers_hold(tmp_path: Path) -> None:
    """Copy-on-write: a snapshot taken before a write is not changed by it."""
    store = Store({PROJECT: PROJECT})
    store.upsert(PROJECT, "flow", valid_payload(), ACTOR)
    held = store._projects
    flow_before = copy.deepcopy(held[PROJECT]["notiflows"]["flow"])
    store.upsert(PROJECT, "flow", valid_payload(name="changed"), ACTOR)
    store.publish(PROJECT, "flow", ACTOR)
    store.upsert(PROJECT, "other", valid_payload(), ACTOR)
    assert held[PROJECT]["notiflows"]["flow"] == flow_before
    assert "other" not in held[PROJECT]["notiflows"]


# --- 14: --rate-limit abc ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["abc", "10/x", "1.5/1", "10/nan", "10/0", "0/1", "/1"])
def test_a_bad_rate_limit_says_what_is_wanted(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_rate_limit(text)
    assert "want N/WINDOW_SECONDS" in str(info.value)
    assert "invalid literal" not in str(info.value)


def test_the_cli_prints_the_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rate-limit", "abc"]) == 1
    err = capsys.readouterr().err
    assert "want N/WINDOW_SECONDS" in err and "invalid literal" not in err


def test_good_rate_limits_still_parse() -> None:
    assert parse_rate_limit("100/1") == (100, 1.0)
    assert parse_rate_limit("5") == (5, 1.0)
    assert parse_rate_limit("2/0.5") == (2, 0.5)

