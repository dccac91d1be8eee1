"""The corpus: every valid notiflow passes cleanly; every invalid one yields exactly its expected problem.

tests/corpus/valid/<handle>/notiflow.json (+ extracted body files) must produce no problem at all.
tests/corpus/invalid/<case>/expected.json lists the exact (code, line, column, severity) expected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notiflows_deploy.jsonpos import JsonSyntaxError, parse_json
from notiflows_deploy.schema.store import SchemaStore

CORPUS = Path(__file__).parent / "corpus"
VALID = sorted(p.name for p in (CORPUS / "valid").iterdir())
INVALID = sorted(p.name for p in (CORPUS / "invalid").iterdir())

STEP_TYPES = {"trigger", "end", "channel", "condition", "wait", "digest", "throttle"}
CHANNEL_TYPES = {"email", "sms", "in_app", "mobile_push", "web_push", "chat", "webhook"}
# Every check must fail on its own somewhere in the corpus.
CODES = {
    "schema-required", "schema-additional-property", "schema-type", "schema-enum", "schema-pattern",
    "schema-range", "schema-length", "schema-count", "schema-not-allowed", "schema-conflict",
    "schema-dependency",
    "trigger-missing", "trigger-duplicate", "trigger-position", "end-missing", "end-duplicate",
    "end-position", "step-handle-duplicate", "step-handle-style", "position-duplicate", "position-gap",
    "parent-unknown", "parent-not-condition", "branch-unknown", "step-cycle", "branch-handle-duplicate",
    "branches-all-finish", "condition-depth", "template-channel-mismatch", "body-empty", "body-extension",
    "json-syntax", "branch-incomplete", "text-blank",
}


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    return SchemaStore(fetch=False)


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _problems(store: SchemaStore, path: Path) -> list[tuple[str, int, int, str]]:
    try:
        parsed = parse_json(path.read_text(encoding="utf-8"))
    except JsonSyntaxError as exc:
        return [("json-syntax", exc.line, exc.column, "error")]
    checker, _ = store.for_document(parsed.value)
    return [(p.code, p.line, p.column, p.severity.value) for p in checker.check(parsed, file=str(path))]


@pytest.mark.parametrize("handle", VALID)
def test_valid_notiflow_has_no_problems(store: SchemaStore, handle: str) -> None:
    directory = CORPUS / "valid" / handle
    assert _problems(store, directory / "notiflow.json") == []
    # every extracted file a pointer names exists and is not blank (the loader's job; keep the corpus honest)
    for step in _load(directory / "notiflow.json")["steps"]:
        data = (step.get("template") or {}).get("data") or {}
        for key, value in data.items():
            if key.endswith("@"):
                assert (directory / value).read_text(encoding="utf-8").strip(), value


@pytest.mark.parametrize("case", INVALID)
def test_invalid_notiflow_has_exactly_the_expected_problem(store: SchemaStore, case: str) -> None:
    directory = CORPUS / "invalid" / case
    expected = [(e["code"], e["line"], e["column"], e["severity"]) for e in _load(directory / "expected.json")]
    assert _problems(store, directory / "notiflow.json") == expected


def test_corpus_size_and_coverage() -> None:
    assert len(VALID) + len(INVALID) >= 40
    step_types: set[str] = set()
    channel_types: set[str] = set()
    for handle in VALID:
        assert "_" not in handle, "notiflow handles (directory names) are hyphens-only"
        for step in _load(CORPUS / "valid" / handle / "notiflow.json")["steps"]:
            step_types.add(step["type"])
            if step["type"] == "channel":
                channel_types.add(step["channel_type"])
    assert step_types == STEP_TYPES
    assert channel_types == CHANNEL_TYPES
    codes = {e["code"] for case in INVALID for e in _load(CORPUS / "invalid" / case / "expected.json")}
    assert codes == CODES
    for case in INVALID:
        assert len(_load(CORPUS / "invalid" / case / "expected.json")) == 1, case


def test_one_store_compiles_once_for_the_whole_corpus(store: SchemaStore) -> None:
    for handle in VALID:
        _problems(store, CORPUS / "valid" / handle / "notiflow.json")
    for case in INVALID:
        _problems(store, CORPUS / "invalid" / case / "notiflow.json")
    assert store.compile_count == 1
