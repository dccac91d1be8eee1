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


# --- numbers JSON cannot carry ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "token", "fragment"),
    [
        ('{\n  "a": NaN\n}', "NaN", "NaN is not valid JSON"),
        ('{"s": "NaN Infinity", "a": [1, Infinity]}', "Infinity]", "Infinity is not valid JSON"),
        ('{"a": [1,\n  -Infinity]}', "-Infinity", "-Infinity is not valid JSON"),
        ('{"a": "x", "b": 1e400}', "1e400", "too large"),
        ('{"a": -2.5E999}', "-2.5E999", "too large"),
        ('{"a": "1", "b": ' + "9" * 5000 + "}", "9999", "too many digits"),
    ],
)
def test_numbers_json_cannot_carry_are_syntax_errors_at_the_literal(text: str, token: str, fragment: str) -> None:
    with pytest.raises(JsonSyntaxError) as info:
        parse_json(text)
    offset = text.index(token)
    expected = (text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1)
    assert (info.value.line, info.value.column) == expected
    assert fragment in info.value.message


def test_finite_numbers_and_lookalike_strings_still_parse() -> None:
    assert parse_json('{"a": 1.5e300, "b": "NaN", "c": -0.0, "d": 3.0}').value == {
        "a": 1.5e300, "b": "NaN", "c": -0.0, "d": 3.0,
    }


# --- nesting ---------------------------------------------------------------------------------------


def test_too_deep_is_located_at_the_bracket_that_crosses_the_limit() -> None:
    text = '{\n  "s": "[[[[{{{{",\n  "a": [[[[[1]]]]]\n}'
    with pytest.raises(JsonSyntaxError) as info:
        parse_json(text, max_depth=4)
    assert (info.value.line, info.value.column) == (3, 11)  # the fourth "[" opens level 5
    assert "level 5" in info.value.message


def test_very_deep_nesting_is_located_too() -> None:
    text = '{"a":\n' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(JsonSyntaxError) as info:
        parse_json(text)
    assert (info.value.line, info.value.column) == (2, 64)


# --- positions inside strings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["plain ${X}", "a\\nb ${X}", 'q\\"q\\\\ ${X}', "\\u00e9t\\u00e9 ${X}", "\\ud83d\\ude00 ${X}", "😀 ${X}",
     "\\/\\b\\f\\r\\t${X}"],  # a lone "\\ud83d" is refused by parse_json (tests/test_val_json.py)
)
def test_locate_in_string_maps_decoded_offsets_back_to_the_source(raw: str) -> None:
    text = '{\n  "k": [1, "' + raw + '"]\n}'
    parsed = parse_json(text)
    decoded = parsed.value["k"][1]
    line, column = parsed.locate_in_string(("k", 1), decoded.index("${X}"))
    offset = text.index("${X}")
    assert (line, column) == (2, offset - text.rfind("\n", 0, offset))


def test_locate_in_string_falls_back_to_the_value() -> None:
    parsed = parse_json('{"k": 5, "s": "abc"}')
    assert parsed.locate_in_string(("k",), 3) == parsed.locate(("k",))
    assert parsed.locate_in_string(("missing",), 0) == (1, 1)
    assert parsed.locate_in_string(("s",), 99) == (1, 19)  # past the end: the closing quote


def test_with_value_keeps_positions_and_shares_the_index() -> None:
    parsed = parse_json('{\n  "a": "${X}"\n}')
    derived = parsed.with_value({"a": "value"}, raw_strings={("a",): "${X}"}, unresolved=frozenset({("a",)}))
    assert derived.value == {"a": "value"} and derived.text == parsed.text
    assert derived.locate(("a",)) == (2, 8) == parsed.locate(("a",))
    assert derived.raw_strings == {("a",): "${X}"} and parsed.raw_strings == {}
    assert derived.unresolved == {("a",)} and parsed.unresolved == frozenset()
