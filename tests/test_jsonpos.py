from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notiflows_deploy.jsonpos import JsonSyntaxError, parse_json

DOC = """{
  "name": "Welcome",
  "steps": [
    { "handle": "trigger", "type": "trigger", "position": 0 },
    {
      "handle": "email_1",
      "settings": { "duration": 1, "duration_unit": "day" }
    }
  ]
}"""


def test_locates_values_and_keys() -> None:
    parsed = parse_json(DOC)
    assert parsed.locate(("name",)) == (2, 11)
    assert parsed.locate(("steps", 0, "type")) == (4, 36)
    assert parsed.locate(("steps", 1, "settings", "duration_unit")) == (7, 53)
    assert parsed.locate(("steps", 1, "settings", "duration_unit"), key=True) == (7, 36)
    assert parsed.locate(()) == (1, 1)


def test_missing_path_falls_back_to_nearest_parent() -> None:
    parsed = parse_json(DOC)
    assert parsed.locate(("steps", 1, "template", "data")) == parsed.locate(("steps", 1))
    assert parsed.locate(("steps", 1)) == (5, 5)


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ('{\n  "a": 1,\n}', 3, 1, "trailing comma"),
        ('{"a": [1, 2,]}', 1, 13, "expected a value"),
        ('{\n  "a": 1,\n  "a": 2\n}', 3, 3, "duplicate key 'a'"),
        ("", 1, 1, "empty"),
        ("   \n", 1, 1, "empty"),
        ('{"a": 1} x', 1, 10, "after the end"),
        ('{"a": "line\nbreak"}', 1, 12, "control character"),
    ],
)
def test_syntax_errors_carry_positions(text: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(JsonSyntaxError) as info:
        parse_json(text)
    assert (info.value.line, info.value.column) == (line, column)
    assert fragment in info.value.message


def test_duplicate_keys_in_different_objects_are_fine_but_nested_duplicates_are_found() -> None:
    parse_json('{"x": {"a": 1}, "y": {"a": 2}}')
    with pytest.raises(JsonSyntaxError) as info:
        parse_json('{"x": {"a": 1}, "y": {"a": 1,\n "a": 3}}')
    assert (info.value.line, info.value.column) == (2, 2)


def test_refuses_deep_nesting_without_recursion_error() -> None:
    with pytest.raises(JsonSyntaxError, match="nested more than 64"):
        parse_json("[" * 65 + "]" * 65)
    with pytest.raises(JsonSyntaxError, match="nested"):
        parse_json("[" * 100_000 + "]" * 100_000)
    parse_json("[" * 64 + "]" * 64)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@given(json_values, st.sampled_from([None, 2]))
def test_every_located_value_parses_back_to_itself(value: object, indent: int | None) -> None:
    text = json.dumps(value, indent=indent)
    parsed = parse_json(text)
    lines = text.split("\n")
    for path in _paths(value):
        line, col = parsed.locate(path)
        offset = sum(len(x) + 1 for x in lines[: line - 1]) + col - 1
        node: object = value
        for part in path:
            node = node[part]  # type: ignore[index]
        decoded, _ = json.JSONDecoder().raw_decode(text, offset)
        assert decoded == node
