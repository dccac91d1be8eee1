"""The schema and the rules judge the payload that is pushed (after `${NAME}` substitution).

Positions still come from the file as written, messages quote a substituted string as written
(never its value), and a string whose variable is unset is judged only by its type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notiflows_deploy.loader import LoadedNotiflow
from notiflows_deploy.schema.store import SchemaStore
from notiflows_deploy.validate import DocumentChecker
from tests.loader_helpers import codes, load, make, pos

SECRET = "S3cr3t-Value"


@pytest.fixture(scope="module")
def checker() -> DocumentChecker:
    return SchemaStore(fetch=False).checker_for(None)[0]


def _doc(data: dict[str, Any], **step: Any) -> str:
    channel = {
        "handle": "email_1", "type": "channel", "position": 1, "channel_type": "email",
        "channel_handle": "transactional-email",
        "template": {"channel_type": "email", "data": data},
        **step,
    }
    return json.dumps({
        "name": "Welcome",
        "steps": [
            {"handle": "trigger", "type": "trigger", "position": 0},
            channel,
            {"handle": "end", "type": "end", "position": 2},
        ],
    }, indent=2)


def _load(tmp_path: Path, text: str, env: dict[str, str], checker: DocumentChecker, **kw: Any) -> LoadedNotiflow:
    make(tmp_path, "welcome", text)
    return load(tmp_path, "welcome", env, checker=checker, **kw)


def _no_secret(loaded: LoadedNotiflow) -> None:
    for problem in loaded.problems:
        assert SECRET not in problem.message and SECRET not in problem.hint, problem


def test_a_body_that_substitutes_to_nothing_is_empty(tmp_path: Path, checker: DocumentChecker) -> None:
    text = _doc({"subject": "Hi", "content_type": "html", "body": "${EMPTY}"})
    loaded = _load(tmp_path, text, {"EMPTY": ""}, checker)
    (problem,) = loaded.problems
    assert problem.code == "body-empty"
    assert (problem.line, problem.column) == pos(text, '"${EMPTY}"')
    assert loaded.payload is None


def test_a_body_that_substitutes_to_text_is_fine(tmp_path: Path, checker: DocumentChecker) -> None:
    text = _doc({"subject": "Hi", "content_type": "html", "body": "${BODY}"})
    loaded = _load(tmp_path, text, {"BODY": "<p>Hello</p>"}, checker)
    assert loaded.ok and loaded.problems == []
    assert loaded.payload is not None
    assert loaded.payload["steps"][1]["template"]["data"]["body"] == "<p>Hello</p>"
    assert loaded.substituted_paths == {("steps", 1, "template", "data", "body")}


def test_a_substituted_enum_value_is_judged_by_its_value(tmp_path: Path, checker: DocumentChecker) -> None:
    text = _doc({"subject": "Hi", "content_type": "${CT}", "body": "b"})
    assert _load(tmp_path, text, {"CT": "html"}, checker).problems == []
    loaded = _load(tmp_path, text, {"CT": SECRET}, checker)
    (problem,) = loaded.problems
    assert problem.code == "schema-enum"
    assert (problem.line, problem.column) == pos(text, '"${CT}"')
    assert '"${CT}" (after substitution) is not one of' in problem.message
    _no_secret(loaded)


def test_type_errors_quote_the_text_as_written(tmp_path: Path, checker: DocumentChecker) -> None:
    doc = json.loads(_doc({"subject": "Hi", "content_type": "html", "body": "b"}))
    doc["steps"][1]["position"] = "${POS}"
    text = json.dumps(doc, indent=2)
    loaded = _load(tmp_path, text, {"POS": SECRET}, checker)
    problem = next(p for p in loaded.problems if p.code == "schema-type")
    assert 'got the string "${POS}" (after substitution)' in problem.message
    _no_secret(loaded)


def test_format_rules_quote_the_text_as_written(tmp_path: Path, checker: DocumentChecker) -> None:
    doc = json.loads(_doc({"subject": "Hi", "content_type": "html", "body": "b"}))
    doc["steps"][1]["template"]["channel_type"] = "${CH}"
    doc["steps"][2]["handle"] = "${H}"
    text = json.dumps(doc, indent=2)
    loaded = _load(tmp_path, text, {"CH": "sms", "H": "trigger"}, checker)
    by_code = {p.code: p for p in loaded.problems}
    assert "'${CH}' does not match the step's channel_type 'email'" in by_code["template-channel-mismatch"].message
    assert "'${H}' is already the handle of steps[0]" in by_code["step-handle-duplicate"].message
    for problem in loaded.problems:
        assert "'sms'" not in problem.message and "'trigger' is" not in problem.message


def test_an_unset_variable_is_reported_once_and_its_value_not_judged(
    tmp_path: Path, checker: DocumentChecker
) -> None:
    text = _doc({"subject": "Hi", "content_type": "${CT}", "body": "b"}, channel_handle="${UNSET_HANDLE}")
    loaded = _load(tmp_path, text, {}, checker)
    assert codes(loaded) == ["env-unset", "env-unset"]  # no enum error on "${CT}"
    assert [(p.line, p.column) for p in loaded.problems] == sorted(
        [pos(text, "${UNSET_HANDLE}"), pos(text, "${CT}")]
    )


def test_an_unset_variable_still_gets_its_type_checked(tmp_path: Path, checker: DocumentChecker) -> None:
    doc = json.loads(_doc({"subject": "Hi", "content_type": "html", "body": "b"}))
    doc["active"] = "${ACTIVE}"
    text = json.dumps(doc, indent=2)
    loaded = _load(tmp_path, text, {}, checker)
    assert sorted(codes(loaded)) == ["env-unset", "schema-type"]


def test_without_substitution_references_are_not_judged_by_value(tmp_path: Path, checker: DocumentChecker) -> None:
    text = _doc({"subject": "Hi", "content_type": "${CT}", "body": "${EMPTY}"})
    loaded = _load(tmp_path, text, {}, checker, substitute=False)
    assert loaded.problems == []


def test_dollar_escapes_are_judged_after_unescaping(tmp_path: Path, checker: DocumentChecker) -> None:
    text = _doc({"subject": "Total $${{ data.amount }}", "content_type": "html", "body": "b"})
    loaded = _load(tmp_path, text, {}, checker)
    assert loaded.ok
    assert loaded.payload is not None
    assert loaded.payload["steps"][1]["template"]["data"]["subject"] == "Total ${{ data.amount }}"
    assert loaded.substituted_paths == frozenset()


def test_pointer_paths_and_meta_are_never_substituted(tmp_path: Path, checker: DocumentChecker) -> None:
    doc = json.loads(_doc({"subject": "Hi", "content_type": "html", "body@": "steps/${DIR}/body.html"}))
    doc["__meta"] = {"sha": "${NOT_A_VAR}"}
    text = json.dumps(doc, indent=2)
    make(tmp_path, "welcome", text, {"steps/${DIR}/body.html": "<p>x</p>"})
    loaded = load(tmp_path, "welcome", {"DIR": "elsewhere"}, checker=checker)
    assert loaded.ok, [p.render() for p in loaded.problems]
    assert loaded.meta_sha == "${NOT_A_VAR}"
