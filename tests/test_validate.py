"""DocumentChecker: messages, hints, positions, merging, ordering, and the fast path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notiflows_deploy.jsonpos import ParsedJson, parse_json
from notiflows_deploy.model import Problem, Severity
from notiflows_deploy.schema.store import SchemaStore
from notiflows_deploy.validate import DocumentChecker, format_path

SEED = """{
  "$schema": "https://notiflows.com/schemas/notiflow.json",
  "name": "Welcome Series",
  "active": true,
  "include_in_preferences": true,
  "steps": [
    { "handle": "trigger", "type": "trigger", "position": 0 },
    {
      "handle": "email_1",
      "type": "channel",
      "position": 1,
      "channel_type": "email",
      "channel_handle": "transactional-email",
      "template": {
        "channel_type": "email",
        "data": {
          "subject": "Welcome, {{ data.first_name }}!",
          "content_type": "html",
          "body@": "steps/email_1/body.html"
        }
      }
    },
    {
      "handle": "wait_1",
      "type": "wait",
      "position": 2,
      "settings": { "duration": 1, "duration_unit": "days" }
    },
    { "handle": "end", "type": "end", "position": 3 }
  ]
}
"""


@pytest.fixture(scope="module")
def checker() -> DocumentChecker:
    return SchemaStore(fetch=False).checker_for(None)[0]


def check(checker: DocumentChecker, text: str) -> list[Problem]:
    return checker.check(parse_json(text), file="n/notiflow.json")


def seed_with(old: str, new: str) -> str:
    assert old in SEED
    return SEED.replace(old, new, 1)


def test_seed_example_is_valid(checker: DocumentChecker) -> None:
    assert check(checker, SEED) == []
    assert checker.is_valid(json.loads(SEED))


def test_enum_message_names_the_path_and_suggests(checker: DocumentChecker) -> None:
    (problem,) = check(checker, seed_with('"duration_unit": "days"', '"duration_unit": "day"'))
    assert problem.code == "schema-enum"
    assert problem.message == 'steps[2].settings.duration_unit: "day" is not one of seconds, minutes, hours, days'
    assert problem.hint == 'did you mean "days"?'
    assert (problem.line, problem.column) == (27, 53)
    assert problem.file == "n/notiflow.json"
    assert problem.severity is Severity.ERROR


def test_unit_is_one_problem_pointing_at_the_key(checker: DocumentChecker) -> None:
    (problem,) = check(checker, seed_with('"duration_unit": "days"', '"unit": "day"'))
    assert problem.code == "schema-additional-property"
    assert (problem.line, problem.column) == (27, 36)  # the key "unit", not its value
    assert problem.hint.startswith('did you mean "duration_unit"?')


def test_missing_property_points_at_the_object(checker: DocumentChecker) -> None:
    (problem,) = check(checker, seed_with('"settings": { "duration": 1, "duration_unit": "days" }',
                                          '"settings": { "duration_unit": "days" }'))
    assert problem.code == "schema-required"
    assert problem.message == 'steps[2].settings: missing required property "duration"'
    assert (problem.line, problem.column) == (27, 19)


def test_body_requirement_accepts_inline_or_pointer(checker: DocumentChecker) -> None:
    inline = seed_with('"body@": "steps/email_1/body.html"', '"body": "<p>Hi</p>"')
    assert check(checker, inline) == []
    raw = seed_with('"body@": "steps/email_1/body.html"', '"body@": "steps/email_1/body.html", "raw_body@": "r.html"')
    assert check(checker, raw) == []
    (missing,) = check(checker, seed_with('"body@": "steps/email_1/body.html"', '"raw_body": "x"'))
    assert missing.message == 'steps[1].template.data: missing required property "body" (or "body@")'
    (both,) = check(checker, seed_with('"body@": "steps/email_1/body.html"', '"body@": "b.html", "body": "x"'))
    assert both.code == "schema-conflict"
    assert (both.line, both.column) == (19, 11)  # the "body@" key


def test_pointer_typo_is_one_problem(checker: DocumentChecker) -> None:
    (problem,) = check(checker, seed_with('"body@"', '"bdy@"'))
    assert problem.code == "schema-additional-property"
    assert problem.hint == 'did you mean "body@"?'


def test_pointer_must_be_a_non_empty_string(checker: DocumentChecker) -> None:
    problems = check(checker, seed_with('"steps/email_1/body.html"', '""'))
    assert [(p.code, p.severity) for p in problems] == [
        ("schema-length", Severity.ERROR), ("body-extension", Severity.WARNING)]
    (problem,) = check(checker, seed_with('"steps/email_1/body.html"', "3"))
    assert problem.code == "schema-type"


def test_type_hint_for_quoted_numbers(checker: DocumentChecker) -> None:
    (problem,) = check(checker, seed_with('"position": 2', '"position": "2"'))
    assert problem.message == 'steps[2].position: expected an integer, got the string "2"'
    assert problem.hint == "write the number without quotes"


def test_channel_fields_on_other_steps(checker: DocumentChecker) -> None:
    (problem,) = check(checker, seed_with('"type": "wait",', '"type": "wait", "channel_type": "sms",'))
    assert problem.code == "schema-not-allowed"
    assert problem.message == 'steps[2].channel_type: only channel steps take "channel_type"; this is a "wait" step'


def test_case_insensitive_enum_hint(checker: DocumentChecker) -> None:
    (problem,) = check(checker, seed_with('"content_type": "html"', '"content_type": "HTML"'))
    assert problem.hint == 'did you mean "html"?'


def test_anyof_failures_pick_one_best_match(checker: DocumentChecker) -> None:
    doc = json.loads(SEED)
    doc["steps"][1]["template"]["data"] = {"subject": "s", "content_type": "html"}
    problems = check(checker, json.dumps(doc, indent=2))
    assert [p.code for p in problems] == ["schema-required"]


def test_all_problems_sorted_and_deduplicated(checker: DocumentChecker) -> None:
    doc = json.loads(SEED)
    doc["name"] = 5
    doc["steps"][2]["settings"]["duration_unit"] = "weeks"
    doc["steps"][1]["handle"] = "Email"
    doc["steps"].append({"handle": "end", "type": "end", "position": 4})
    problems = check(checker, json.dumps(doc, indent=2))
    positions = [(p.line, p.column) for p in problems]
    assert positions == sorted(positions)
    assert len(set(problems)) == len(problems)
    assert {p.code for p in problems} == {"schema-type", "schema-enum", "schema-pattern", "end-duplicate",
                                          "step-handle-duplicate"}


def test_warnings_are_returned_with_warning_severity(checker: DocumentChecker) -> None:
    (problem,) = check(checker, seed_with('"steps/email_1/body.html"', '"steps/email_1/body.txt"'))
    assert (problem.code, problem.severity) == ("body-extension", Severity.WARNING)
    assert checker.is_valid(json.loads(seed_with('"steps/email_1/body.html"', '"steps/email_1/body.txt"')))


def test_valid_documents_never_compute_positions(checker: DocumentChecker, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> tuple[int, int]:
        raise AssertionError("locate called on a valid document")

    monkeypatch.setattr(ParsedJson, "locate", boom)
    monkeypatch.setattr(ParsedJson, "_index", boom)
    assert check(checker, SEED) == []


def test_rules_can_be_switched_off() -> None:
    store = SchemaStore(fetch=False)
    plain = DocumentChecker(store.checker_for(None)[0].validator, rules=False)
    assert plain.check(parse_json('{"name": "x", "steps": []}'), file="f") == []


@pytest.mark.parametrize(
    ("path", "text"),
    [((), "(top level)"), (("steps", 2, "settings"), "steps[2].settings"), (("$schema",), "$schema"),
     (("steps", 0, "template", "data", "body@"), "steps[0].template.data.body@"), (("a b",), '["a b"]')],
)
def test_format_path(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 20) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["trigger", "channel", "wait", "email", "sms", "html", "days", "", "x@"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["name", "steps", "handle", "type", "position", "settings", "template", "data", "body",
                         "body@", "channel_type", "branches", "conditions", "duration", "unit", "zz"]),
        inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(_values)
def test_check_never_crashes_and_every_problem_is_located(value: Any) -> None:
    store = _STORE
    text = json.dumps(value, indent=1)
    parsed = parse_json(text)
    lines = text.count("\n") + 1
    for problem in store.checker_for(None)[0].check(parsed, file="f"):
        assert 1 <= problem.line <= lines
        assert problem.column >= 1
        assert problem.code.startswith(("schema", "trigger", "end", "step", "position", "parent", "branch",
                                        "condition", "template", "body"))


_STORE = SchemaStore(fetch=False)


# --- integers are integers (3.0 is not) -------------------------------------------------------------


def _integer_paths(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Schema paths of every `"type": "integer"` in the bundled schema."""
    found: list[tuple[str | int, ...]] = []
    if isinstance(node, dict):
        if node.get("type") == "integer" or (isinstance(node.get("type"), list) and "integer" in node["type"]):
            found.append(path)
        for key, child in node.items():
            found += _integer_paths(child, (*path, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _integer_paths(child, (*path, index))
    return found


def test_every_integer_in_the_schema_refuses_whole_floats_and_booleans() -> None:
    from notiflows_deploy.schema import bundled_schema

    store = SchemaStore(fetch=False)
    validator = store.checker_for(None)[0].validator
    schema = bundled_schema()
    paths = _integer_paths(schema)
    assert len(paths) >= 8  # position, durations, badge_count, ttl, __meta versions, ...
    for path in paths:
        sub: Any = schema
        for part in path:
            sub = sub[part]
        probe = validator.evolve(schema={**sub, "$defs": schema.get("$defs", {})})
        assert probe.is_valid(3), path
        assert not probe.is_valid(3.0), path
        assert not probe.is_valid(True), path


@pytest.mark.parametrize(
    ("old", "new", "needle", "whole"),
    [
        ('"position": 2,', '"position": 2.0,', "2.0,", 2),
        ('"duration": 1,', '"duration": 1.0,', "1.0,", 1),
        ('"position": 3 }', '"position": 3e0 }', "3e0", 3),
    ],
)
def test_a_whole_float_is_not_an_integer(checker: DocumentChecker, old: str, new: str, needle: str,
                                         whole: int) -> None:
    text = seed_with(old, new)
    (problem,) = check(checker, text)
    assert problem.code == "schema-type"
    assert f"must be a whole number like {whole}, not {float(whole)}" in problem.message
    offset = text.index(needle)
    assert (problem.line, problem.column) == (text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset))


def test_whole_float_badge_count_and_ttl_are_refused(checker: DocumentChecker) -> None:
    doc: dict[str, Any] = {"name": "x", "steps": [
        {"handle": "trigger", "type": "trigger", "position": 0},
        {"handle": "push_1", "type": "channel", "position": 1, "channel_type": "mobile_push",
         "template": {"channel_type": "mobile_push", "data": {
             "title": "t", "body": "b", "content_type": "plaintext", "badge_count": 2.0, "ttl": 60.0}}},
        {"handle": "end", "type": "end", "position": 2},
    ]}
    problems = check(checker, json.dumps(doc))
    assert sorted(p.message.split(": ", 1)[0] for p in problems) == [
        "steps[1].template.data.badge_count", "steps[1].template.data.ttl"]
    assert all("must be a whole number like" in p.message for p in problems)
    doc["steps"][1]["template"]["data"].update(badge_count=2, ttl=60)
    assert check(checker, json.dumps(doc)) == []
