"""The emulator's Management API over real loopback HTTP: routes, errors, versioning, persistence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from emulator_support import PROJECT, TOKEN, api_session, running_emulator, valid_payload

from notiflows_deploy.emulator import Emulator, content_sha
from notiflows_deploy.emulator.content import canonical_json, drop_nulls


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with running_emulator(projects=[PROJECT, "other"]) as emulator:
        yield emulator


@pytest.fixture
def s(emu: Emulator) -> requests.Session:
    return api_session(emu)


def P(emu: Emulator, project: str = PROJECT) -> str:
    return f"{emu.base_url}/projects/{project}"


def assert_error(resp: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"type", "code", "message", "status", "request_id", "details"}
    assert err["code"] == code
    assert err["status"] == status
    assert err["type"] == f"https://notiflows.com/docs/api/errors#{code}-{status}"
    assert err["request_id"] == resp.headers["x-request-id"]
    assert isinstance(err["details"], dict)
    details: dict[str, Any] = err["details"]
    return details


def put(s: requests.Session, emu: Emulator, handle: str, body: dict[str, Any]) -> requests.Response:
    return s.put(f"{P(emu)}/notiflows/{handle}", json=body)


def field_names(resp: requests.Response) -> set[str]:
    return {f["field"] for f in resp.json()["error"]["details"]["fields"]}


# ---- basics ------------------------------------------------------------------------------------


def test_base_url_shape(emu: Emulator) -> None:
    assert emu.base_url.startswith("http://127.0.0.1:")
    assert emu.base_url.endswith("/management/v1")
    assert emu.base_url == emu.root_url + "/management/v1"
    assert emu.port > 0


def test_whoami(emu: Emulator, s: requests.Session) -> None:
    r = s.get(f"{P(emu)}/whoami")
    assert r.status_code == 200
    project = r.json()["project"]
    assert project["slug"] == PROJECT and project["name"] and project["id"]
    assert r.headers["Content-Type"].startswith("application/json")


def test_auth_missing_wrong_and_scheme(emu: Emulator) -> None:
    url = f"{P(emu)}/whoami"
    details = assert_error(requests.get(url), 401, "unauthenticated")
    assert details["auth"] == "account_token"
    assert_error(requests.get(url, headers={"Authorization": "Bearer nope"}), 401, "unauthenticated")
    assert_error(requests.get(url, headers={"Authorization": f"Basic {TOKEN}"}), 401, "unauthenticated")
    assert requests.get(url, headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


def test_several_tokens_and_actor_names() -> None:
    with running_emulator(tokens={"nf_at_a": "ci-deploy", "nf_at_b": "other-bot"}) as emu:
        for token, name in (("nf_at_a", "ci-deploy"), ("nf_at_b", "other-bot")):
            r = api_session(emu, token).put(f"{P(emu)}/notiflows/flow-{name}", json=valid_payload())
            assert r.status_code == 201
            assert r.json()["current_version"]["created_by"]["name"] == name
            assert r.json()["current_version"]["created_by"]["type"] == "account_token"


def test_unknown_project_everywhere(emu: Emulator, s: requests.Session) -> None:
    base = P(emu, "nope")
    for resp in (
        s.get(f"{base}/whoami"),
        s.get(f"{base}/notiflows"),
        s.get(f"{base}/notiflows/x"),
        s.put(f"{base}/notiflows/x", json=valid_payload()),
        s.put(f"{base}/notiflows/Bad_Handle", json=valid_payload()),
        s.post(f"{base}/notiflows/x/publish"),
        s.get(f"{base}/notiflows/x/versions"),
    ):
        details = assert_error(resp, 404, "not_found")
        assert details == {"resource": "project", "id": "nope"}


def test_project_scoping(emu: Emulator, s: requests.Session) -> None:
    assert put(s, emu, "scoped", valid_payload()).status_code == 201
    assert s.get(f"{P(emu, 'other')}/notiflows/scoped").status_code == 404
    assert s.get(f"{P(emu, 'other')}/notiflows").json()["page_info"]["total"] == 0
    assert s.get(f"{P(emu)}/notiflows").json()["page_info"]["total"] == 1


def test_unknown_routes_and_methods(emu: Emulator, s: requests.Session) -> None:
    assert_error(s.get(f"{emu.root_url}/nothing"), 404, "not_found")
    assert_error(s.get(f"{emu.base_url}/projects"), 404, "not_found")
    assert_error(s.get(f"{P(emu)}/channels"), 404, "not_found")
    assert_error(s.get(f"{P(emu)}/notiflows/x/steps"), 404, "not_found")
    r = s.delete(f"{P(emu)}/notiflows/x")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, PUT"
    assert_error(s.get(f"{emu.root_url}/_emulator/nothing"), 404, "not_found")
    # errors produced by the stdlib HTTP layer use the envelope too
    assert_error(s.request("BREW", f"{P(emu)}/whoami"), 501, "not_implemented")


def test_request_id_echoed_or_generated(emu: Emulator, s: requests.Session) -> None:
    r = s.get(f"{P(emu)}/notiflows/missing", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert assert_error(r, 404, "not_found") == {"resource": "notiflow", "id": "missing"}
    r = s.get(f"{P(emu)}/whoami")
    assert r.headers["x-request-id"].startswith("req_")
    r2 = s.get(f"{P(emu)}/whoami")
    assert r2.headers["x-request-id"] != r.headers["x-request-id"]


def test_bad_json_bodies(emu: Emulator, s: requests.Session) -> None:
    url = f"{P(emu)}/notiflows/flow"
    for data in (b"{not json", b"[1, 2]", b"", b"\xff\xfe"):
        r = s.put(url, data=data, headers={"Content-Type": "application/json"})
        assert assert_error(r, 400, "bad_request")["reason"] == "invalid_json"
    # The connection stays usable after an error answer (body fully consumed).
    assert s.get(f"{P(emu)}/whoami").status_code == 200


# ---- list ----------------------------------------------------------------------------------------


def test_list_pagination_sorting_and_limits(emu: Emulator, s: requests.Session) -> None:
    handles = [f"flow-{i:03d}" for i in range(30)]
    for h in reversed(handles):
        assert put(s, emu, h, valid_payload(name=h)).status_code == 201
    r = s.get(f"{P(emu)}/notiflows").json()
    assert r["page_info"] == {"page": 1, "limit": 25, "total": 30}
    assert [i["handle"] for i in r["items"]] == handles[:25]
    item = r["items"][0]
    assert set(item) == {"active", "created_at", "current_version_id", "handle", "has_unpublished_changes", "id",
                         "include_in_preferences", "name", "published_version_id", "updated_at"}
    assert item["has_unpublished_changes"] is True and item["published_version_id"] is None
    r = s.get(f"{P(emu)}/notiflows", params={"page": 2, "limit": 25}).json()
    assert [i["handle"] for i in r["items"]] == handles[25:]
    r = s.get(f"{P(emu)}/notiflows", params={"page": 4, "limit": 10}).json()
    assert r["items"] == [] and r["page_info"]["total"] == 30
    r = s.get(f"{P(emu)}/notiflows", params={"limit": 1000}).json()
    assert r["page_info"]["limit"] == 100 and len(r["items"]) == 30
    for params in ({"page": 0}, {"limit": 0}, {"page": "x"}, {"limit": "-3"}):
        details = assert_error(s.get(f"{P(emu)}/notiflows", params=params), 400, "bad_request")
        assert details["reason"] == "invalid_param" and details["param"] in params


def test_list_filters(emu: Emulator, s: requests.Session) -> None:
    put(s, emu, "alpha", valid_payload(name="Alpha", active=False))
    put(s, emu, "beta", valid_payload(name="Beta"))
    s.post(f"{P(emu)}/notiflows/beta/publish")

    def names(**q: str) -> list[str]:
        return [i["handle"] for i in s.get(f"{P(emu)}/notiflows", params=q).json()["items"]]

    assert names(query="alp") == ["alpha"]
    assert names(active="true") == ["beta"]
    assert names(published="false") == ["alpha"]


# ---- upsert ----------------------------------------------------------------------------------------


def test_create_then_get(emu: Emulator, s: requests.Session) -> None:
    payload = valid_payload()
    r = put(s, emu, "welcome-series", payload)
    assert r.status_code == 201
    body = r.json()
    cur = body["current_version"]
    assert body["handle"] == "welcome-series" and body["name"] == "Welcome Series"
    assert body["published_version"] is None and body["has_unpublished_changes"] is True
    assert set(cur) >= {"id", "inserted_at", "notiflow_id", "published_at", "sha", "status", "steps", "updated_at",
                        "valid", "version_number", "created_by"}
    assert cur["status"] == "draft" and cur["version_number"] == 1 and cur["valid"] is True
    assert cur["notiflow_id"] == body["id"]
    assert cur["created_by"]["type"] == "account_token" and cur["created_by"]["name"] == "ci-deploy"
    assert cur["steps"] == payload["steps"]
    assert cur["steps"][1]["template"] == {"channel_type": "email", "data": payload["steps"][1]["template"]["data"]}
    assert cur["sha"] == content_sha(payload)
    got = s.get(f"{P(emu)}/notiflows/welcome-series")
    assert got.status_code == 200 and got.json() == body


def test_sha_definition_is_canonical_json_without_nulls() -> None:
    import hashlib

    payload = valid_payload()
    payload["steps"][0]["name"] = None
    expected = hashlib.sha256(
        json.dumps(drop_nulls({k: payload[k] for k in ("name", "active", "include_in_preferences", "steps")}),
                   sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    assert content_sha(payload) == expected
    assert content_sha(payload) == content_sha(valid_payload())  # the null is dropped
    assert content_sha({**valid_payload(), "expected_sha": "x", "other": "y"}) == content_sha(valid_payload())
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_unchanged_makes_no_new_version(emu: Emulator, s: requests.Session) -> None:
    first = put(s, emu, "flow", valid_payload()).json()
    r = put(s, emu, "flow", valid_payload())
    assert r.status_code == 200
    assert r.json()["current_version"]["version_number"] == 1
    assert r.json()["current_version"]["id"] == first["current_version"]["id"]
    # Key order and null-valued keys do not count as changes.
    reordered = dict(reversed(list(valid_payload(description=None).items())))
    assert put(s, emu, "flow", reordered).json()["current_version"]["version_number"] == 1
    assert len(s.get(f"{P(emu)}/notiflows/flow/versions").json()["items"]) == 1


def test_update_replaces_draft_and_keeps_omitted_fields(emu: Emulator, s: requests.Session) -> None:
    put(s, emu, "flow", valid_payload(active=False))
    steps = valid_payload()["steps"]
    steps[1]["template"]["data"]["subject"] = "Changed"
    r = put(s, emu, "flow", {"steps": steps})  # name/active/include_in_preferences omitted: kept
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "Welcome Series" and body["active"] is False
    assert body["current_version"]["version_number"] == 2
    assert body["current_version"]["sha"] == content_sha(valid_payload(active=False, steps=steps))
    versions = s.get(f"{P(emu)}/notiflows/flow/versions").json()["items"]
    assert [(v["version_number"], v["status"]) for v in versions] == [(2, "draft")]  # one draft at a time
    # steps are a full replace
    short = [steps[0], steps[3]]
    short[1] = {**short[1], "position": 1}
    r = put(s, emu, "flow", {"steps": short, "name": "Renamed"})
    assert [st["handle"] for st in r.json()["current_version"]["steps"]] == ["trigger", "end"]
    assert r.json()["name"] == "Renamed"


def test_create_with_defaults(emu: Emulator, s: requests.Session) -> None:
    r = put(s, emu, "minimal", {})
    assert r.status_code == 201
    body = r.json()
    assert body["name"] == "minimal" and body["active"] is True and body["include_in_preferences"] is True
    assert [st["type"] for st in body["current_version"]["steps"]] == ["trigger", "end"]


def test_expected_sha(emu: Emulator, s: requests.Session) -> None:
    details = assert_error(put(s, emu, "flow", {**valid_payload(), "expected_sha": "abc"}), 409, "conflict")
    assert details["resource"] == "notiflow"
    assert s.get(f"{P(emu)}/notiflows/flow").status_code == 404  # nothing created
    sha1 = put(s, emu, "flow", valid_payload()).json()["current_version"]["sha"]
    r = put(s, emu, "flow", {**valid_payload(name="Two"), "expected_sha": sha1})
    assert r.status_code == 200
    sha2 = r.json()["current_version"]["sha"]
    assert sha2 != sha1
    assert_error(put(s, emu, "flow", {**valid_payload(name="Three"), "expected_sha": sha1}), 409, "conflict")
    assert s.get(f"{P(emu)}/notiflows/flow").json()["name"] == "Two"
    # unchanged content with the right expected_sha: 200, no new version
    r = put(s, emu, "flow", {**valid_payload(name="Two"), "expected_sha": sha2})
    assert r.status_code == 200 and r.json()["current_version"]["version_number"] == 2


def _steps_with(index: int, **changes: Any) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = valid_payload()["steps"]
    steps[index].update(changes)
    return steps


@pytest.mark.parametrize(
    ("handle", "body", "field"),
    [
        ("welcome_series", valid_payload(), "handle"),
        ("Welcome", valid_payload(), "handle"),
        ("a--b", valid_payload(), "handle"),
        ("-ab", valid_payload(), "handle"),
        ("flow", valid_payload(steps={"a": 1}), "steps"),
        ("flow", valid_payload(steps=[{"handle": "end", "type": "end", "position": 0}]), "steps"),
        ("flow", valid_payload(steps=[{"handle": "trigger", "type": "trigger", "position": 0}]), "steps"),
        ("flow", valid_payload(steps=_steps_with(2, handle="email_1")), "steps[2].handle"),
        ("flow", valid_payload(steps=_steps_with(2, type="teleport")), "steps[2].type"),
        ("flow", valid_payload(steps=_steps_with(2, position=1)), "steps[2].position"),
        ("flow", valid_payload(steps=_steps_with(2, position="2")), "steps[2].position"),
        ("flow", valid_payload(steps=_steps_with(1, channel_type="pigeon")), "steps[1].channel_type"),
        ("flow", valid_payload(steps=_steps_with(1, template={"channel_type": "email", "data": {"body": "  "}})),
         "steps[1].template.data.body"),
        ("flow", valid_payload(steps=_steps_with(1, template={"channel_type": "email", "data": {"subject": "x"}})),
         "steps[1].template.data.body"),
        ("flow", valid_payload(steps=_steps_with(1, template={"channel_type": "sms", "data": {"body": "x"}})),
         "steps[1].template.channel_type"),
        ("flow", valid_payload(steps=_steps_with(1, template="nope")), "steps[1].template"),
        ("flow", valid_payload(steps=_steps_with(2, parent_step_handle="email_1", branch_handle="yes")),
         "steps[2].parent_step_handle"),
        ("flow", valid_payload(steps=_steps_with(2, parent_step_handle="ghost", branch_handle="yes")),
         "steps[2].parent_step_handle"),
        ("flow", valid_payload(steps=_steps_with(3, position=0)), "steps[3].position"),
        ("flow", valid_payload(steps=[*_steps_with(3, position=5), {"handle": "x", "type": "wait", "position": 6}]),
         "steps[3].position"),
        ("flow", valid_payload(name=""), "name"),
        ("flow", valid_payload(active="yes"), "active"),
        ("flow", valid_payload(steps=[1, 2]), "steps[0]"),
        ("flow", valid_payload(__meta={"sha": "x"}), "__meta"),
        ("flow", valid_payload(**{"$schema": "https://notiflows.com/schemas/notiflow.json"}), "$schema"),
        ("flow", valid_payload(steps=_steps_with(1, template={"channel_type": "email",
                                                              "data": {"body@": "steps/email_1/body.html"}})),
         "steps[1].template.data.body@"),
    ],
)
def test_upsert_validation(emu: Emulator, s: requests.Session, handle: str, body: dict[str, Any], field: str) -> None:
    r = put(s, emu, handle, body)
    details = assert_error(r, 422, "validation_failed")
    assert field in field_names(r), details
    for f in details["fields"]:
        assert set(f) == {"field", "message", "reason"}
    assert s.get(f"{P(emu)}/notiflows/{handle}").status_code == 404  # rejected as a whole


def test_webhook_body_optional_and_branches(emu: Emulator, s: requests.Session) -> None:
    steps = [
        {"handle": "trigger", "type": "trigger", "position": 0},
        {"handle": "check", "type": "condition", "position": 1,
         "settings": {"branches": [{"handle": "paid", "name": "Paid"}, {"handle": "free", "name": "Free"}]}},
        {"handle": "hook_1", "type": "channel", "position": 0, "parent_step_handle": "check", "branch_handle": "paid",
         "channel_type": "webhook", "channel_handle": "hooks",
         "template": {"channel_type": "webhook", "data": {"url": "https://example.invalid", "method": "POST"}}},
        {"handle": "end", "type": "end", "position": 2},
    ]
    r = put(s, emu, "branchy", valid_payload(steps=steps))
    assert r.status_code == 201, r.text
    assert r.json()["current_version"]["valid"] is True
    steps[2]["branch_handle"] = "gold"
    r = put(s, emu, "branchy", valid_payload(steps=steps))
    assert "steps[2].branch_handle" in field_names(r)


# ---- publish -------------------------------------------------------------------------------------


def test_publish_transitions(emu: Emulator, s: requests.Session) -> None:
    url = f"{P(emu)}/notiflows/flow"
    assert_error(s.post(f"{url}/publish"), 404, "not_found")
    put(s, emu, "flow", valid_payload())
    r = s.post(f"{url}/publish")
    assert r.status_code == 200
    body = r.json()
    pub = body["published_version"]
    assert pub["status"] == "published" and pub["version_number"] == 1 and pub["published_at"]
    assert pub["published_by"]["type"] == "account_token"
    assert body["current_version"] == pub and body["has_unpublished_changes"] is False
    # publish again: harmless no-op
    again = s.post(f"{url}/publish")
    assert again.status_code == 200 and again.json() == body
    # a new draft next to the published version
    r = put(s, emu, "flow", valid_payload(name="v2")).json()
    assert r["current_version"]["status"] == "draft" and r["current_version"]["version_number"] == 2
    assert r["published_version"]["version_number"] == 1 and r["has_unpublished_changes"] is True
    put(s, emu, "flow", valid_payload(name="v3"))  # replaces the v2 draft
    r = s.post(f"{url}/publish").json()
    assert r["published_version"]["version_number"] == 3
    versions = s.get(f"{url}/versions").json()["items"]
    assert [(v["version_number"], v["status"]) for v in versions] == [(3, "published"), (1, "archived")]
    meta = s.get(f"{P(emu)}/notiflows").json()["items"][0]
    assert meta["published_version_id"] == meta["current_version_id"] == r["published_version"]["id"]


def test_publish_validation(emu: Emulator, s: requests.Session) -> None:
    steps = valid_payload()["steps"]
    del steps[1]["channel_handle"]
    del steps[1]["template"]
    r = put(s, emu, "flow", valid_payload(steps=steps))
    assert r.status_code == 201 and r.json()["current_version"]["valid"] is False
    r = s.post(f"{P(emu)}/notiflows/flow/publish")
    assert_error(r, 422, "validation_failed")
    assert field_names(r) == {"steps[1].channel_handle", "steps[1].template"}
    assert s.get(f"{P(emu)}/notiflows/flow").json()["published_version"] is None


# ---- versions ------------------------------------------------------------------------------------


def test_versions_pagination(emu: Emulator, s: requests.Session) -> None:
    url = f"{P(emu)}/notiflows/flow"
    for i in range(5):  # publish each, so every version stays listed
        put(s, emu, "flow", valid_payload(name=f"n{i}"))
        s.post(f"{url}/publish")
    r = s.get(f"{url}/versions").json()
    assert [v["version_number"] for v in r["items"]] == [5, 4, 3, 2, 1]
    assert r["page"] == {"after": None, "before": None, "has_more_after": False, "has_more_before": False,
                         "limit": 25}
    r = s.get(f"{url}/versions", params={"limit": 2}).json()
    assert [v["version_number"] for v in r["items"]] == [5, 4]
    assert r["page"]["has_more_after"] is True and r["page"]["after"] == "4"
    r = s.get(f"{url}/versions", params={"limit": 2, "after": r["page"]["after"]}).json()
    assert [v["version_number"] for v in r["items"]] == [3, 2]
    assert r["page"]["has_more_before"] is True and r["page"]["before"] == "3"
    r = s.get(f"{url}/versions", params={"limit": 2, "after": r["page"]["after"]}).json()
    assert [v["version_number"] for v in r["items"]] == [1] and r["page"]["has_more_after"] is False
    r = s.get(f"{url}/versions", params={"limit": 2, "before": 2}).json()
    assert [v["version_number"] for v in r["items"]] == [4, 3]
    assert_error(s.get(f"{url}/versions", params={"limit": "x"}), 400, "bad_request")
    assert s.get(f"{url}/versions/3").json()["version_number"] == 3
    assert assert_error(s.get(f"{url}/versions/9"), 404, "not_found")["resource"] == "version"
    assert_error(s.get(f"{P(emu)}/notiflows/none/versions"), 404, "not_found")


# ---- dashboard simulation ------------------------------------------------------------------------


def test_dashboard_edit_in_process(emu: Emulator, s: requests.Session) -> None:
    sha1 = put(s, emu, "flow", valid_payload()).json()["current_version"]["sha"]
    s.post(f"{P(emu)}/notiflows/flow/publish")
    edited = emu.dashboard_edit(PROJECT, "flow")
    cur = edited["current_version"]
    assert cur["created_by"] == {"type": "member", "id": "mem_dashboard", "name": "Dashboard User"}
    assert cur["status"] == "draft" and cur["sha"] != sha1 and edited["name"].endswith("(edited in dashboard)")
    got = s.get(f"{P(emu)}/notiflows/flow").json()  # the GET cache was invalidated
    assert got["current_version"]["sha"] == cur["sha"]
    # the repo's next push with the old sha now conflicts
    assert_error(put(s, emu, "flow", {**valid_payload(name="mine"), "expected_sha": sha1}), 409, "conflict")
    edited = emu.dashboard_edit(PROJECT, "flow", {"template_updates": {"email_1": {"subject": "Dash"}},
                                                  "step_updates": {"wait_1": {"name": "Wait a day"}}}, publish=True)
    steps = {st["handle"]: st for st in edited["current_version"]["steps"]}
    assert steps["email_1"]["template"]["data"]["subject"] == "Dash"
    assert steps["wait_1"]["name"] == "Wait a day"
    assert edited["published_version"]["published_by"]["name"] == "Dashboard User"
    with pytest.raises(Exception, match="not found"):
        emu.dashboard_edit(PROJECT, "nope")


def test_control_endpoints_over_http(emu: Emulator, s: requests.Session) -> None:
    ctl = f"{emu.root_url}/_emulator"
    put(s, emu, "flow", valid_payload())
    r = requests.post(f"{ctl}/dashboard-edit", json={"project": PROJECT, "handle": "flow",
                                                    "patch": {"name": "From dashboard"}})
    assert r.status_code == 200 and r.json()["name"] == "From dashboard"
    r = requests.post(f"{ctl}/remote-only", json={"project": PROJECT, "handle": "dash-only", "publish": True})
    assert r.status_code == 200
    assert r.json()["published_version"]["created_by"]["type"] == "member"
    assert s.get(f"{P(emu)}/notiflows/dash-only").status_code == 200
    assert_error(requests.post(f"{ctl}/remote-only", json={"project": PROJECT, "handle": "dash-only"}),
                 409, "conflict")
    assert_error(requests.post(f"{ctl}/dashboard-edit", json={"project": PROJECT}), 400, "bad_request")
    assert_error(requests.post(f"{ctl}/dashboard-edit", json={"project": "zzz", "handle": "flow"}), 404, "not_found")
    state = requests.get(f"{ctl}/state").json()
    assert set(state["projects"][PROJECT]["notiflows"]) == {"flow", "dash-only"}
    assert state["request_count"] == emu.request_count == 2
    log = requests.get(f"{ctl}/requests").json()["requests"]
    assert {"method": "PUT", "path": f"/management/v1/projects/{PROJECT}/notiflows/flow", "status": 201} in log
    r = requests.post(f"{ctl}/reset")
    assert r.status_code == 200 and r.json()["projects"][PROJECT]["notiflows"] == {}
    assert emu.request_count == 0
    assert s.get(f"{P(emu)}/notiflows/flow").status_code == 404


def test_remote_only_in_process(emu: Emulator, s: requests.Session) -> None:
    emu.create_remote_only(PROJECT, "dash-flow", name="Dash")
    body = s.get(f"{P(emu)}/notiflows/dash-flow").json()
    assert body["name"] == "Dash" and body["published_version"] is None
    assert body["current_version"]["created_by"]["name"] == "Dashboard User"
    assert [i["handle"] for i in s.get(f"{P(emu)}/notiflows").json()["items"]] == ["dash-flow"]


# ---- persistence -----------------------------------------------------------------------------------


def test_persistence_across_restart(tmp_path: Path) -> None:
    data = tmp_path / "sub" / "state.json"
    with running_emulator(data_file=str(data)) as emu:
        s = api_session(emu)
        put(s, emu, "flow", valid_payload())
        s.post(f"{P(emu)}/notiflows/flow/publish")
        created = put(s, emu, "flow", valid_payload(name="draft")).json()
        project_id = s.get(f"{P(emu)}/whoami").json()["project"]["id"]
    assert json.loads(data.read_text())["format"] == 1
    assert [p.name for p in data.parent.iterdir()] == ["state.json"]  # no temp files left
    with running_emulator(data_file=str(data)) as emu2:
        s2 = api_session(emu2)
        assert emu2.port != 0
        got = s2.get(f"{P(emu2)}/notiflows/flow").json()
        assert got == created
        assert s2.get(f"{P(emu2)}/whoami").json()["project"]["id"] == project_id
        # writing continues from the stored state (version numbers keep counting)
        r = put(s2, emu2, "flow", valid_payload(name="after restart")).json()
        assert r["current_version"]["version_number"] == 3


def test_corrupt_data_file_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "state.json"
    data.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not an emulator state file"):
        Emulator(data_file=str(data))
    assert data.read_text() == '{"hello": 1}'


def test_keep_alive_and_stop_closes_connections() -> None:
    with running_emulator() as emu:
        s = api_session(emu)
        for _ in range(20):
            assert s.get(f"{P(emu)}/whoami").status_code == 200
        url = f"{P(emu)}/whoami"
    with pytest.raises(requests.ConnectionError):
        s.get(url, timeout=2)


def test_concurrent_conflicting_pushes_exactly_one_wins(emu: Emulator, s: requests.Session) -> None:
    import threading

    sha = put(s, emu, "race", valid_payload()).json()["current_version"]["sha"]
    statuses: list[int] = []

    def push(i: int) -> None:
        r = put(api_session(emu), emu, "race", {**valid_payload(name=f"writer {i}"), "expected_sha": sha})
        statuses.append(r.status_code)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [409] * 7
    assert s.get(f"{P(emu)}/notiflows/race").json()["current_version"]["version_number"] == 2


def test_defaults_without_arguments() -> None:
    with Emulator() as emu:
        assert emu.token == "nf_at_emulator" and emu.project == "demo"
        r = requests.get(f"{emu.base_url}/projects/demo/whoami", headers={"Authorization": "Bearer nf_at_emulator"})
        assert r.status_code == 200
