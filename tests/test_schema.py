"""The bundled notiflow JSON Schema itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from notiflows_deploy.schema import SCHEMA_URL, bundled_schema

VENDOR_HANDLE = r"^[a-z_]+(_[0-9]+)?$"  # ASCII digits (Python \d also matches other scripts)
OPERATORS = {"equal_to", "not_equal_to", "greater_than", "less_than", "greater_than_or_equal_to",
             "less_than_or_equal_to", "contains", "does_not_contain", "starts_with", "ends_with", "is_empty",
             "is_not_empty"}
CHANNELS = {"email", "sms", "in_app", "mobile_push", "web_push", "chat", "webhook"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return bundled_schema()


def test_is_a_valid_draft_2020_12_schema(schema: dict[str, Any]) -> None:
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_URL == "https://notiflows.com/schemas/notiflow.json"


def test_bundled_schema_returns_a_fresh_copy() -> None:
    first = bundled_schema()
    first["title"] = "changed"
    assert bundled_schema()["title"] != "changed"


def test_top_level(schema: dict[str, Any]) -> None:
    assert set(schema["properties"]) == {"$schema", "name", "active", "include_in_preferences", "steps", "__meta"}
    assert schema["required"] == ["name", "steps"]
    assert schema["additionalProperties"] is False


def test_step_vocabulary(schema: dict[str, Any]) -> None:
    step = schema["$defs"]["step"]
    assert set(step["properties"]["type"]["enum"]) == {"trigger", "end", "channel", "condition", "wait", "digest",
                                                       "throttle"}
    assert set(step["properties"]["channel_type"]["enum"]) - {None} == CHANNELS
    assert set(schema["$defs"]["condition"]["properties"]["operator"]["enum"]) == OPERATORS
    assert step["dependentRequired"] == {"parent_step_handle": ["branch_handle"],
                                         "branch_handle": ["parent_step_handle"]}


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}/{i}")


def test_every_property_has_a_description_for_editor_hovers(schema: dict[str, Any]) -> None:
    missing = [
        f"{path}/{name}"
        for path, node in _walk(schema)
        if isinstance(node.get("properties"), dict) and "/if" not in path and "/then" not in path
        for name, sub in node["properties"].items()
        if isinstance(sub, dict) and "$ref" not in sub and "description" not in sub
    ]
    assert missing == []


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_template_data_pointers(schema: dict[str, Any], channel: str) -> None:
    data = schema["$defs"][f"data_{channel}"]
    props = data["properties"]
    assert data["additionalProperties"] is False
    for name, sub in props.items():
        if name.endswith("@"):
            assert props[name[:-1]]["type"] == "string", name  # only string fields have a file pointer
            assert sub["type"] == "string"
        elif sub.get("type") == "string" and "enum" not in sub:
            assert f"{name}@" in props, f"{channel}: {name} has no {name}@ twin"
            assert data["dependentSchemas"][f"{name}@"] == {"not": {"required": [name]}}
    assert "content_type" in props and "enum" in props["content_type"]


def test_handle_pattern_accepts_the_documented_examples(schema: dict[str, Any]) -> None:
    pattern = schema["$defs"]["step"]["properties"]["handle"]["pattern"]
    for handle in ("trigger", "end", "email_1", "email_2", "wait_1", "sms_1", "in_app_1", "welcome_email"):
        assert re.match(pattern, handle), handle
        assert re.match(VENDOR_HANDLE, handle), handle
    for handle in ("Email_1", "email-1", "1email", "", "email 1"):
        assert not re.match(pattern, handle), handle
    assert "$comment" in schema["$defs"]["step"]["properties"]["handle"]


@given(st.from_regex(VENDOR_HANDLE, fullmatch=True))
def test_handle_pattern_is_a_superset_of_the_vendor_pattern(handle: str) -> None:
    pattern = bundled_schema()["$defs"]["step"]["properties"]["handle"]["pattern"]
    assert re.match(pattern, handle)


def test_webhook_body_is_optional_others_required() -> None:
    validator = Draft202012Validator(bundled_schema())

    def doc(channel: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"name": "x", "steps": [{"handle": "c_1", "type": "channel", "position": 0, "channel_type": channel,
                                        "template": {"channel_type": channel, "data": data}}]}

    assert validator.is_valid(doc("webhook", {"content_type": "json", "url": "https://x"}))
    assert not validator.is_valid(doc("sms", {"content_type": "plaintext"}))
    assert validator.is_valid(doc("sms", {"content_type": "plaintext", "body@": "steps/c_1/body.txt"}))
