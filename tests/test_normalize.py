"""normalize: what counts as content, and what never does (volatile server fields, nulls, empties)."""

from __future__ import annotations

import copy
from typing import Any

from notiflows_deploy.api.models import RemoteNotiflow
from notiflows_deploy.normalize import content_from_payload, content_from_remote, normalize_steps, same_content


def payload() -> dict[str, Any]:
    return {
        "name": "Welcome Series",
        "active": True,
        "include_in_preferences": True,
        "steps": [
            {"handle": "trigger", "type": "trigger", "position": 0},
            {
                "handle": "email_1",
                "type": "channel",
                "position": 1,
                "channel_type": "email",
                "channel_handle": "transactional-email",
                "template": {
                    "channel_type": "email",
                    "data": {"subject": "Welcome", "content_type": "html", "body": "<p>Hi</p>\n"},
                },
            },
            {"handle": "wait_1", "type": "wait", "position": 2, "settings": {"duration": 1, "duration_unit": "days"}},
            {"handle": "end", "type": "end", "position": 3},
        ],
    }


def server_json(steps: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    """What a server answer may look like: ids, timestamps, nulls and empties everywhere."""
    noisy = []
    for i, step in enumerate(steps):
        s = copy.deepcopy(step)
        s.update(id=f"step-{i}", inserted_at="2026-01-01T00:00:00Z", notiflow_id="nf-1", parent_step_handle=None,
                 branch_handle=None, conditions=[], settings=s.get("settings", {}), name=None)
        if "template" in s:
            s["template"]["id"] = f"tpl-{i}"
            s["template"]["updated_at"] = "2026-01-02T00:00:00Z"
        noisy.append(s)
    version = {
        "id": "v-1", "sha": "abc", "status": "draft", "version_number": 7, "valid": True,
        "inserted_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "notiflow_id": "nf-1",
        "steps": list(reversed(noisy)),  # order must not matter
    }
    data = {"handle": "welcome-series", "name": "Welcome Series", "active": True, "include_in_preferences": True,
            "id": "nf-1", "created_at": "x", "updated_at": "y", "has_unpublished_changes": True,
            "current_version": version, "published_version": None}
    data.update(top)
    return data


def test_volatile_fields_nulls_and_empties_never_make_content_differ() -> None:
    remote = RemoteNotiflow.from_json(server_json(payload()["steps"]))
    assert same_content(payload(), content_from_remote(remote))
    assert content_from_remote(remote) == content_from_payload(payload())


def test_a_real_edit_does_make_content_differ() -> None:
    edited = payload()
    edited["steps"][1]["template"]["data"]["subject"] = "Welcome!"
    remote = RemoteNotiflow.from_json(server_json(payload()["steps"]))
    assert not same_content(edited, content_from_remote(remote))


def test_steps_are_a_full_replace_an_extra_server_step_differs() -> None:
    steps = payload()["steps"] + [{"handle": "sms_1", "type": "channel", "channel_type": "sms", "position": 4}]
    remote = RemoteNotiflow.from_json(server_json(steps))
    assert not same_content(payload(), content_from_remote(remote))


def test_omitted_top_level_fields_are_not_compared() -> None:
    remote = RemoteNotiflow.from_json(server_json(payload()["steps"], active=False, name="Renamed"))
    mine = payload()
    del mine["active"], mine["name"]
    assert same_content(mine, content_from_remote(remote))
    mine["active"] = True
    assert not same_content(mine, content_from_remote(remote))


def test_omitted_steps_are_not_compared_but_empty_steps_are() -> None:
    remote = RemoteNotiflow.from_json(server_json(payload()["steps"]))
    assert same_content({"name": "Welcome Series"}, content_from_remote(remote))
    assert not same_content({"name": "Welcome Series", "steps": []}, content_from_remote(remote))


def test_user_content_keeps_keys_that_look_volatile() -> None:
    # An `id` inside template data (e.g. a webhook header) or provider_settings.template_id is user content.
    a: dict[str, Any] = {"steps": [{"handle": "hook", "type": "channel", "channel_type": "webhook", "position": 1,
                    "template": {"data": {"headers": {"id": "1"}}},
                    "provider_settings": {"template_id": "d-123"}}]}
    b = copy.deepcopy(a)
    b["steps"][0]["template"]["data"]["headers"]["id"] = "2"
    c = copy.deepcopy(a)
    c["steps"][0]["provider_settings"]["template_id"] = "d-456"
    assert not same_content(a, content_from_payload(b))
    assert not same_content(a, content_from_payload(c))
    assert same_content(a, content_from_payload(copy.deepcopy(a)))


def test_template_channel_type_is_filled_from_the_step() -> None:
    with_type = payload()
    without = payload()
    del without["steps"][1]["template"]["channel_type"]
    assert same_content(without, content_from_payload(with_type))


def test_booleans_are_not_numbers_but_integral_floats_are_ints() -> None:
    a: dict[str, Any] = {"steps": [{"handle": "wait_1", "type": "wait", "position": 1, "settings": {"duration": 1}}]}
    b = {"steps": [{"handle": "wait_1", "type": "wait", "position": 1.0, "settings": {"duration": 1.0}}]}
    c = {"steps": [{"handle": "wait_1", "type": "wait", "position": 1, "settings": {"duration": True}}]}
    assert same_content(a, b)
    assert not same_content(a, c)


def test_content_from_remote_can_read_another_version() -> None:
    data = server_json(payload()["steps"])
    published = copy.deepcopy(data["current_version"])
    published["steps"] = [s for s in published["steps"] if s["handle"] != "wait_1"]
    published["sha"] = "old"
    data["published_version"] = published
    remote = RemoteNotiflow.from_json(data)
    assert remote.published_version is not None
    old = content_from_remote(remote, remote.published_version)
    assert set(old["steps"]) == {"trigger", "email_1", "end"}
    assert old["name"] == "Welcome Series"


def test_normalize_is_idempotent_and_keys_steps_by_handle() -> None:
    once = content_from_payload(payload())
    assert list(sorted(once["steps"])) == ["email_1", "end", "trigger", "wait_1"]
    assert content_from_payload(once) == once
    assert normalize_steps([{"type": "end"}]) == {"#0": {"type": "end"}}
