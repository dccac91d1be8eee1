"""JSON that cannot be sent: lone surrogate escapes, and syntax errors explained as what they are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notiflows_deploy.jsonpos import SURROGATE, JsonSyntaxError, parse_json
from notiflows_deploy.schema.store import SchemaStore
from tests.loader_helpers import load, make


def where(text: str, needle: str) -> tuple[int, int]:
    offset = text.index(needle)
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


# --- 3: lone surrogates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{\n  "subject": "Hi \\ud83d"\n}', "\\ud83d"),  # a high half at the end
        ('{\n  "subject": "\\ude00 Hi"\n}', "\\ude00"),  # a low half alone
        ('{\n  "a": "ok",\n  "s": "x\\ud83d\\n"\n}', "\\ud83d"),  # a high half before another escape
        ('{\n  "s": "\\ude00\\ud83d"\n}', "\\ude00"),  # the halves in the wrong order
        ('{\n  "k\\uD83D": 1\n}', "\\uD83D"),  # in a key, upper case
        ('{\n  "body@": "steps/\\ud83d.html"\n}', "\\ud83d"),  # in a pointer
    ],
)
def test_a_lone_surrogate_escape_is_refused_at_the_escape(text: str, needle: str) -> None:
    with pytest.raises(JsonSyntaxError) as info:
        parse_json(text)
    assert info.value.code == SURROGATE
    assert (info.value.line, info.value.column) == where(text, needle)
    assert "surrogate" in info.value.message and info.value.hint


@pytest.mark.parametrize(
    "text",
    ['{"s": "\\ud83d\\ude00"}', '{"s": "\\\\ud83d"}', '{"s": "😀"}', '{"s": "\\\\\\ud83d\\ude00"}', '{"s": "\\u00e9"}'],
)
def test_pairs_escaped_backslashes_and_real_characters_are_fine(text: str) -> None:
    value = parse_json(text).value["s"]
    value.encode("utf-8")  # sendable


def test_the_loader_reports_json_surrogate_with_its_position(tmp_path: Path) -> None:
    text = '{\n  "name": "Flow",\n  "steps": [],\n  "x": "Hi \\ud83d"\n}\n'
    make(tmp_path, "flow", text)
    (problem,) = load(tmp_path, "flow", checker=SchemaStore(fetch=False).checker_for(None)[0]).problems
    assert problem.code == "json-surrogate"
    assert (problem.line, problem.column) == where(text, "\\ud83d")
    assert problem.hint


def test_a_substituted_value_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    """os.environ keeps bytes that are not UTF-8 as lone surrogates: such a value cannot be sent."""
    text = json.dumps({"name": "Hi ${BAD}", "steps": []}, indent=2)
    make(tmp_path, "flow", text)
    loaded = load(tmp_path, "flow", {"BAD": "caf\udce9"})
    (problem,) = loaded.problems
    assert problem.code == "env-not-utf8"
    assert (problem.line, problem.column) == where(text, '"Hi ${BAD}"')
    assert "\udce9" not in problem.message and problem.hint
    assert loaded.payload is None


def test_a_substituted_value_in_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    text = json.dumps({"name": "Flow", "steps": [
        {"handle": "trigger", "type": "trigger", "position": 0},
        {"handle": "sms_1", "type": "channel", "position": 1, "channel_type": "sms",
         "template": {"channel_type": "sms", "data": {"content_type": "plaintext", "body@": "steps/sms_1/body.txt"}}},
        {"handle": "end", "type": "end", "position": 2}]}, indent=2)
    make(tmp_path, "flow", text, {"steps/sms_1/body.txt": "Hello ${BAD}"})
    loaded = load(tmp_path, "flow", {"BAD": "\udcff"})
    assert [p.code for p in loaded.problems] == ["env-not-utf8"]
    assert loaded.problems[0].file.endswith("steps/sms_1/body.txt")


# --- 14: what the decoder says, in plain words -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment", "at"),
    [
        ("{", "ended early: the '{' at line 1, column 1 is never closed", (1, 2)),
        ('{\n  "name": "x",\n', "ended early: the '{' at line 1, column 1 is never closed", (3, 1)),
        ('{"a": [1, 2', "the '[' at line 1, column 7 is never closed", (1, 12)),
        ('{"a": {"b": [', "the '[' at line 1, column 13 is never closed", (1, 14)),
        ('{"a": "ab\\\\"', "the '{' at line 1, column 1 is never closed", (1, 13)),
    ],
)
def test_a_truncated_document_is_said_to_have_ended_early(text: str, fragment: str, at: tuple[int, int]) -> None:
    with pytest.raises(JsonSyntaxError) as info:
        parse_json(text)
    assert fragment in info.value.message
    assert "trailing comma" not in info.value.message
    assert (info.value.line, info.value.column) == at
    assert "cut short" in info.value.hint


def test_an_unterminated_string_is_named() -> None:
    with pytest.raises(JsonSyntaxError) as info:
        parse_json('{"a": "abc')
    assert "never closed" in info.value.message or "ended inside a string" in info.value.message


def test_a_trailing_comma_is_still_a_trailing_comma() -> None:
    with pytest.raises(JsonSyntaxError) as info:
        parse_json('{\n  "a": 1,\n}')
    assert "trailing comma" in info.value.message
    assert "remove the comma" in info.value.hint


@pytest.mark.parametrize("text", ['{"a" 1}', '{"a": "\\q"}', '{"a": 1} x', "{'a': 1}", '{"a": NaN}',
                                  '{"a": 1, "a": 2}', "[" * 70 + "]" * 70])
def test_every_syntax_error_has_a_hint(text: str) -> None:
    with pytest.raises(JsonSyntaxError) as info:
        parse_json(text)
    assert info.value.hint.strip()
