"""Round-2 validation fixes: branch scopes with a null half, handles with a trailing newline, the
KEY/KEY@ pair, blank names and texts, `value` for comparing operators, one problem per spot, and
no near-miss hints for substituted values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notiflows_deploy.jsonpos import parse_json
from notiflows_deploy.model import Problem
from notiflows_deploy.rules import check_rules
from notiflows_deploy.schema.store import SchemaStore, ecma_pattern
from notiflows_deploy.validate import DocumentChecker
from tests.loader_helpers import load, make


@pytest.fixture(scope="module")
def checker() -> DocumentChecker:
    return SchemaStore(fetch=False).checker_for(None)[0]


def doc(*middle: dict[str, Any], name: str = "Flow", **top: Any) -> dict[str, Any]:
    steps = [{"handle": "trigger", "type": "trigger", "position": 0}, *middle,
             {"handle": "end", "type": "end", "position": 1 + sum(1 for s in middle if "parent_step_handle" not in s
                                                                   and "branch_handle" not in s)}]
    return {"name": name, "steps": steps, **top}


def condition(handle: str = "cond_1", position: int = 1) -> dict[str, Any]:
    return {"handle": handle, "type": "condition", "position": position, "settings": {"branches": [
        {"handle": "yes", "name": "Yes", "conditions": [{"conditions": [
            {"property": "data.x", "operator": "equal_to", "value": "1"}]}]},
        {"handle": "no", "name": "No"}]}}


def wait(handle: str = "wait_1", position: int = 0, **scope: Any) -> dict[str, Any]:
    return {"handle": handle, "type": "wait", "position": position,
            "settings": {"duration": 1, "duration_unit": "days"}, **scope}


def email(subject: Any = "Hi", **data: Any) -> dict[str, Any]:
    return {"handle": "email_1", "type": "channel", "position": 1, "channel_type": "email",
            "template": {"channel_type": "email",
                         "data": {"subject": subject, "content_type": "html", "body": "<p>x</p>", **data}}}


def problems(checker: DocumentChecker, document: dict[str, Any]) -> list[Problem]:
    return checker.check(parse_json(json.dumps(document, indent=2)), file="f/notiflow.json")


def where(text: str, needle: str) -> tuple[int, int]:
    offset = text.index(needle)
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


# --- 1: a branch reference with one half null ------------------------------------------------------


def test_branch_handle_with_a_null_parent_is_an_error_at_the_branch_key(checker: DocumentChecker) -> None:
    document = doc(condition(), wait(parent_step_handle=None, branch_handle="ghost"))
    text = json.dumps(document, indent=2)
    (problem,) = checker.check(parse_json(text), file="f")
    assert problem.code == "branch-incomplete"
    assert (problem.line, problem.column) == where(text, '"branch_handle": "ghost"')
    assert "parent_step_handle is null" in problem.message and "'ghost'" in problem.message
    assert "parent_step_handle" in problem.hint


def test_parent_with_a_null_branch_is_an_error_at_the_parent_key(checker: DocumentChecker) -> None:
    document = doc(condition(), wait(parent_step_handle="cond_1", branch_handle=None))
    text = json.dumps(document, indent=2)
    (problem,) = checker.check(parse_json(text), file="f")
    assert problem.code == "branch-incomplete"
    assert (problem.line, problem.column) == where(text, '"parent_step_handle": "cond_1"')
    assert "branch_handle is null" in problem.message
    assert problem.hint


def test_both_null_and_both_set_are_fine() -> None:
    both_null = doc(wait(position=1, parent_step_handle=None, branch_handle=None))
    both_null["steps"][-1]["position"] = 2
    assert check_rules(both_null) == []
    assert check_rules(doc(condition(), wait(parent_step_handle="cond_1", branch_handle="yes"))) == []


def test_an_incomplete_scope_is_no_scope_for_positions() -> None:
    """The step's position is not also judged in a made-up scope "None/ghost"."""
    findings = check_rules(doc(condition(), wait(position=3, parent_step_handle=None, branch_handle="ghost")))
    assert [f.code for f in findings] == ["branch-incomplete"]


# --- 8: handles with a trailing newline ----------------------------------------------------------


@pytest.mark.parametrize("handle", ["email_1\n", "trigger\n"])
def test_a_step_handle_with_a_trailing_newline_is_refused(checker: DocumentChecker, handle: str) -> None:
    document = doc(email())
    document["steps"][1]["handle"] = handle
    found = problems(checker, document)
    assert [p.code for p in found] == ["schema-pattern"]


def test_the_vendor_style_warning_matches_the_whole_handle() -> None:
    document = doc(email())
    document["steps"][1]["handle"] = "email_1\n"
    assert "step-handle-style" not in [f.code for f in check_rules(document)]  # the schema refuses it


@pytest.mark.parametrize(
    ("pattern", "translated"),
    [("^[a-z]+$", "^[a-z]+\\Z"), ("^a\\$$", "^a\\$\\Z"), ("^[$]x$", "^[$]x\\Z"), ("a|b$", "a|b\\Z"),
     ("^[a-z\\]$]+$", "^[a-z\\]$]+\\Z"), ("no anchor", "no anchor")],
)
def test_ecma_pattern_makes_dollar_the_end_of_the_string(pattern: str, translated: str) -> None:
    assert ecma_pattern(pattern) == translated


def test_any_schema_pattern_ending_in_dollar_refuses_a_trailing_newline(tmp_path: Path) -> None:
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}}}))
    checker, _ = SchemaStore(override=schema).checker_for(None)
    assert checker.validator.is_valid({"name": "abc"})
    assert not checker.validator.is_valid({"name": "abc\n"})


# --- 9: the KEY / KEY@ pair ------------------------------------------------------------------------


def test_conflict_names_the_right_pair_at_the_right_key_once(tmp_path: Path) -> None:
    document = doc(email())
    data = document["steps"][1]["template"]["data"]
    del data["body"]
    data.update({"body@": "steps/email_1/body.html", "subject@": "steps/email_1/subject.txt"})
    text = json.dumps(document, indent=2)
    make(tmp_path, "flow", text, {"steps/email_1/body.html": "<p>x</p>", "steps/email_1/subject.txt": "S"})
    loaded = load(tmp_path, "flow", checker=SchemaStore(fetch=False).checker_for(None)[0])
    (problem,) = loaded.problems
    assert problem.code == "schema-conflict"
    assert 'has both "subject" and "subject@"' in problem.message
    assert (problem.line, problem.column) == where(text, '"subject@"')


# --- 10: blank name, subject, title ----------------------------------------------------------------


def test_a_whitespace_name_is_refused_at_its_value(checker: DocumentChecker) -> None:
    document = doc(email(), name="   ")
    text = json.dumps(document, indent=2)
    (problem,) = checker.check(parse_json(text), file="f")
    assert problem.code == "text-blank"
    assert (problem.line, problem.column) == where(text, '"   "')
    assert problem.hint


def test_an_empty_name_is_reported_once(checker: DocumentChecker) -> None:
    assert [p.code for p in problems(checker, doc(email(), name=""))] == ["schema-length"]


@pytest.mark.parametrize("subject", ["", "  \n\t"])
def test_a_blank_subject_is_refused_for_email(checker: DocumentChecker, subject: str) -> None:
    (problem,) = problems(checker, doc(email(subject)))
    assert problem.code == "text-blank"
    assert problem.message.startswith("steps[1].template.data.subject: the subject is blank")


def test_a_blank_mobile_push_title_is_refused(checker: DocumentChecker) -> None:
    step = {"handle": "push_1", "type": "channel", "position": 1, "channel_type": "mobile_push",
            "template": {"channel_type": "mobile_push",
                         "data": {"title": " ", "body": "b", "content_type": "plaintext"}}}
    assert [p.code for p in problems(checker, doc(step))] == ["text-blank"]


def test_a_blank_subject_file_is_refused_at_the_pointer(tmp_path: Path) -> None:
    document = doc(email())
    del document["steps"][1]["template"]["data"]["subject"]
    document["steps"][1]["template"]["data"]["subject@"] = "steps/email_1/subject.txt"
    text = json.dumps(document, indent=2)
    make(tmp_path, "flow", text, {"steps/email_1/subject.txt": " \n"})
    loaded = load(tmp_path, "flow", checker=SchemaStore(fetch=False).checker_for(None)[0])
    (problem,) = loaded.problems
    assert problem.code == "text-blank"
    assert (problem.line, problem.column) == where(text, '"steps/email_1/subject.txt"')  # as for body-empty


def test_sms_needs_no_subject(checker: DocumentChecker) -> None:
    step = {"handle": "sms_1", "type": "channel", "position": 1, "channel_type": "sms",
            "template": {"channel_type": "sms", "data": {"body": "b", "content_type": "plaintext"}}}
    assert problems(checker, doc(step)) == []


# --- 14: operators need a value; one problem per spot; no near-miss for substituted values ---------


@pytest.mark.parametrize("operator", ["equal_to", "greater_than", "contains", "ends_with"])
def test_a_comparing_operator_needs_a_value(checker: DocumentChecker, operator: str) -> None:
    cond = condition()
    test = cond["settings"]["branches"][0]["conditions"][0]["conditions"][0]
    test["operator"] = operator
    del test["value"]
    (problem,) = problems(checker, doc(cond))
    assert problem.code == "schema-required" and '"value"' in problem.message
    assert "is_empty" in problem.hint


@pytest.mark.parametrize("operator", ["is_empty", "is_not_empty"])
def test_is_empty_needs_no_value(checker: DocumentChecker, operator: str) -> None:
    cond = condition()
    test = cond["settings"]["branches"][0]["conditions"][0]["conditions"][0]
    test["operator"] = operator
    del test["value"]
    assert problems(checker, doc(cond)) == []


def test_a_negative_trigger_position_is_one_problem(checker: DocumentChecker) -> None:
    document = doc(email())
    document["steps"][0]["position"] = -1
    assert [p.code for p in problems(checker, document)] == ["schema-range"]


def test_a_negative_end_position_is_one_problem(checker: DocumentChecker) -> None:
    document = doc(email())
    document["steps"][-1]["position"] = -3
    assert [p.code for p in problems(checker, document)] == ["schema-range"]


def test_a_null_template_channel_type_is_one_problem(checker: DocumentChecker) -> None:
    document = doc(email())
    document["steps"][1]["template"]["channel_type"] = None
    (problem,) = problems(checker, document)
    assert problem.code == "schema-type"


def test_no_near_miss_hint_for_a_substituted_value(tmp_path: Path) -> None:
    document = doc(email())
    document["steps"][1]["template"]["data"]["content_type"] = "${CT}"
    make(tmp_path, "flow", json.dumps(document, indent=2))
    loaded = load(tmp_path, "flow", {"CT": "htmlx"}, checker=SchemaStore(fetch=False).checker_for(None)[0])
    (problem,) = loaded.problems
    assert problem.code == "schema-enum"
    assert "did you mean" not in problem.hint and "html" not in problem.hint.replace("the values listed", "")
    assert "htmlx" not in problem.message + problem.hint
    assert problem.hint


def test_no_value_based_type_hint_for_a_substituted_value(tmp_path: Path) -> None:
    document = doc(email())
    document["steps"][1]["position"] = "${POS}"
    make(tmp_path, "flow", json.dumps(document, indent=2))
    loaded = load(tmp_path, "flow", {"POS": "1"}, checker=SchemaStore(fetch=False).checker_for(None)[0])
    (problem,) = loaded.problems
    assert problem.code == "schema-type"
    assert "without quotes" not in problem.hint  # would say the value is a number
    assert "substituted" in problem.hint


def test_a_plain_enum_value_still_gets_its_near_miss(checker: DocumentChecker) -> None:
    document = doc(email())
    document["steps"][1]["template"]["data"]["content_type"] = "htm"
    (problem,) = problems(checker, document)
    assert problem.hint == 'did you mean "html"?'


def test_a_half_of_the_wrong_type_is_the_schemas_alone(checker: DocumentChecker) -> None:
    document = doc(condition(), wait(parent_step_handle=["cond_1"], branch_handle="yes"))
    assert [p.code for p in problems(checker, document)] == ["schema-type"]
