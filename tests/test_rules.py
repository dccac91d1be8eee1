"""Format rules: each one on a minimal document, plus robustness on arbitrary input."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notiflows_deploy.model import Severity
from notiflows_deploy.rules import MAX_CONDITION_DEPTH, Finding, check_rules


def trig(pos: int = 0) -> dict[str, Any]:
    return {"handle": "trigger", "type": "trigger", "position": pos}


def end(pos: int, handle: str = "end") -> dict[str, Any]:
    return {"handle": handle, "type": "end", "position": pos}


def sms(handle: str, pos: Any, **extra: Any) -> dict[str, Any]:
    return {
        "handle": handle, "type": "channel", "position": pos, "channel_type": "sms",
        "template": {"channel_type": "sms", "data": {"content_type": "plaintext", "body": "hi"}}, **extra,
    }


def cond(handle: str, pos: int, branches: list[str], **extra: Any) -> dict[str, Any]:
    return {"handle": handle, "type": "condition", "position": pos,
            "settings": {"branches": [{"handle": b, "name": b} for b in branches]}, **extra}


def codes(steps: list[Any]) -> list[tuple[str, tuple[str | int, ...]]]:
    return [(f.code, f.path) for f in check_rules({"name": "x", "steps": steps})]


def test_a_good_document_has_no_findings() -> None:
    steps = [trig(), cond("condition_1", 1, ["a", "b"]),
             sms("sms_1", 0, parent_step_handle="condition_1", branch_handle="a"),
             sms("sms_2", 0, parent_step_handle="condition_1", branch_handle="b"),
             sms("sms_3", 1, parent_step_handle="condition_1", branch_handle="b"), end(2)]
    assert codes(steps) == []


def test_trigger_and_end_missing_point_at_the_steps_key() -> None:
    findings = check_rules({"steps": []})
    assert [(f.code, f.path, f.key) for f in findings] == [
        ("trigger-missing", ("steps",), True), ("end-missing", ("steps",), True)]


def test_duplicate_trigger_and_end() -> None:
    steps = [trig(), {"handle": "t2", "type": "trigger", "position": 1}, end(2), end(3, "end_2")]
    assert codes(steps) == [("trigger-duplicate", ("steps", 1, "type")), ("end-duplicate", ("steps", 3, "type")),
                            ("step-handle-style", ("steps", 1, "handle"))]


def test_trigger_must_be_first_and_end_last() -> None:
    assert codes([trig(1), sms("sms_1", 0), end(2)]) == [("trigger-position", ("steps", 0, "position"))]
    assert codes([trig(), end(1), sms("sms_1", 2)]) == [("end-position", ("steps", 1, "position"))]


def test_trigger_inside_a_branch() -> None:
    steps = [cond("condition_1", 0, ["a", "b"]),
             {**trig(), "parent_step_handle": "condition_1", "branch_handle": "a"}, end(1)]
    findings = check_rules({"steps": steps})
    assert [(f.code, f.path, f.key) for f in findings] == [
        ("trigger-position", ("steps", 1, "parent_step_handle"), True)]


def test_handles_unique_and_style_warning() -> None:
    findings = check_rules({"steps": [trig(), sms("sms_1", 1), sms("sms_1", 2), sms("sms2", 3), end(4)]})
    assert [(f.code, f.path, f.severity) for f in findings] == [
        ("step-handle-duplicate", ("steps", 2, "handle"), Severity.ERROR),
        ("step-handle-style", ("steps", 3, "handle"), Severity.WARNING),
    ]


@pytest.mark.parametrize("handle", ["trigger", "end", "email_1", "wait_1", "in_app_12", "mobile_push_1", "_x"])
def test_vendor_style_handles_do_not_warn(handle: str) -> None:
    assert codes([trig(), sms(handle, 1) if handle not in ("trigger", "end") else sms("sms_1", 1), end(2)]) == []


def test_positions_duplicate_and_gap_per_scope() -> None:
    assert codes([trig(), sms("sms_1", 1), sms("sms_2", 1), end(2)]) == [
        ("position-duplicate", ("steps", 2, "position"))]
    dup = codes([trig(), sms("sms_1", 1), sms("sms_2", 1), end(3)])
    assert ("position-duplicate", ("steps", 2, "position")) in dup
    assert not any(code == "position-gap" for code, _ in dup)  # duplicates are reported, not an echoing gap
    assert codes([trig(), sms("sms_1", 2), end(3)]) == [("position-gap", ("steps", 1, "position"))]
    branch = [trig(), cond("condition_1", 1, ["a", "b"]),
              sms("sms_1", 1, parent_step_handle="condition_1", branch_handle="a"), end(2)]
    assert codes(branch) == [("position-gap", ("steps", 2, "position"))]


def test_bad_positions_do_not_cascade_into_gaps() -> None:
    assert codes([trig(), sms("sms_1", -1), end(2)]) == []
    assert codes([trig(), sms("sms_1", "1"), end(2)]) == []
    assert codes([trig(), sms("sms_1", True), end(2)]) == []


def test_parent_references() -> None:
    base = [trig(), cond("condition_1", 1, ["a", "b"]), end(2)]
    assert codes([*base, sms("sms_1", 0, parent_step_handle="condition_2", branch_handle="a")]) == [
        ("parent-unknown", ("steps", 3, "parent_step_handle"))]
    assert codes([*base, sms("sms_1", 0, parent_step_handle="trigger", branch_handle="a")]) == [
        ("parent-not-condition", ("steps", 3, "parent_step_handle"))]
    findings = check_rules({"steps": [*base, sms("sms_1", 0, parent_step_handle="condition_1", branch_handle="c")]})
    assert [(f.code, f.path) for f in findings] == [("branch-unknown", ("steps", 3, "branch_handle"))]
    assert "its branches: a, b" in findings[0].message


def test_unknown_parent_hint() -> None:
    steps = [trig(), cond("condition_1", 1, ["a", "b"]), end(2),
             sms("sms_1", 0, parent_step_handle="conditon_1", branch_handle="a")]
    (finding,) = check_rules({"steps": steps})
    assert finding.hint == "did you mean 'condition_1'?"


def test_cycle_reported_once() -> None:
    steps = [trig(), end(1),
             cond("c_a", 0, ["x", "y"], parent_step_handle="c_b", branch_handle="x"),
             cond("c_b", 0, ["x", "y"], parent_step_handle="c_a", branch_handle="y")]
    assert codes(steps) == [("step-cycle", ("steps", 2, "parent_step_handle"))]
    self_loop = [trig(), end(1), cond("c_a", 0, ["x", "y"], parent_step_handle="c_a", branch_handle="x")]
    assert codes(self_loop) == [("step-cycle", ("steps", 2, "parent_step_handle"))]


def _nested(depth: int) -> list[dict[str, Any]]:
    steps = [trig(), end(2)]
    for k in range(1, depth + 1):
        extra = {"parent_step_handle": f"c_{k - 1}", "branch_handle": "a"} if k > 1 else {}
        steps.append(cond(f"c_{k}", 1 if k == 1 else 0, ["a", "b"], **extra))
    return steps


def test_condition_depth() -> None:
    assert codes(_nested(MAX_CONDITION_DEPTH)) == []
    too_deep = _nested(MAX_CONDITION_DEPTH + 2)
    assert codes(too_deep) == [("condition-depth", ("steps", 2 + MAX_CONDITION_DEPTH, "type"))]


def test_branch_handles_and_finish() -> None:
    c = cond("condition_1", 1, ["a", "a"])
    assert codes([trig(), c, end(2)]) == [
        ("branch-handle-duplicate", ("steps", 1, "settings", "branches", 1, "handle"))]
    c = cond("condition_1", 1, ["a", "b"])
    for b in c["settings"]["branches"]:
        b["finish"] = True
    assert codes([trig(), c, end(2)]) == [("branches-all-finish", ("steps", 1, "settings", "branches"))]
    c["settings"]["branches"][1]["finish"] = False
    assert codes([trig(), c, end(2)]) == []


def test_templates() -> None:
    mismatch = sms("sms_1", 1)
    mismatch["template"]["channel_type"] = "email"
    assert codes([trig(), mismatch, end(2)]) == [
        ("template-channel-mismatch", ("steps", 1, "template", "channel_type"))]
    unknown = sms("sms_1", 1, channel_type="fax")
    assert codes([trig(), unknown, end(2)]) == []  # the schema reports the unknown channel type
    blank = sms("sms_1", 1)
    blank["template"]["data"]["body"] = " \n\t"
    assert codes([trig(), blank, end(2)]) == [("body-empty", ("steps", 1, "template", "data", "body"))]
    hook = {"handle": "webhook_1", "type": "channel", "position": 1, "channel_type": "webhook",
            "template": {"channel_type": "webhook", "data": {"content_type": "json", "url": "u", "body": ""}}}
    assert codes([trig(), hook, end(2)]) == []  # a webhook body is optional


@pytest.mark.parametrize(
    ("channel", "path", "ok"),
    [("email", "steps/x/body.html", True), ("email", "steps/x/body.HTML", True), ("email", "steps/x/body.md", False),
     ("in_app", "b.md", True), ("chat", "b.md", True), ("sms", "b.txt", True), ("mobile_push", "b.txt", True),
     ("web_push", "b.txt", True), ("webhook", "b.json", True), ("webhook", "b", False), ("sms", "b.html", False)],
)
def test_body_extension_warning(channel: str, path: str, ok: bool) -> None:
    step = {"handle": "x_1", "type": "channel", "position": 1, "channel_type": channel,
            "template": {"channel_type": channel, "data": {"body@": path}}}
    findings = check_rules({"steps": [trig(), step, end(2)]})
    if ok:
        assert findings == []
    else:
        assert [(f.code, f.severity) for f in findings] == [("body-extension", Severity.WARNING)]


def test_rules_ignore_wrongly_typed_parts() -> None:
    junk: list[Any] = [None, 3, "step", [], {"type": 5}, {"handle": ["x"], "type": "condition", "settings": 5},
                       {"type": "condition", "settings": {"branches": "no"}},
                       {"type": "condition", "settings": {"branches": [1, {"handle": 2}]}},
                       {"type": "channel", "template": {"data": "x"}}, {"type": "channel", "template": 7}]
    findings = check_rules({"steps": junk})
    assert {f.code for f in findings} == {"trigger-missing", "end-missing"}
    assert check_rules([]) == []
    assert check_rules({"steps": "nope"}) == []
    assert check_rules(None) == []


def test_rules_are_pure() -> None:
    doc = {"steps": [trig(), sms("sms_1", 1), sms("sms_1", 1), end(2)]}
    before = copy.deepcopy(doc)
    first = check_rules(doc)
    assert check_rules(doc) == first
    assert doc == before
    assert all(isinstance(f, Finding) for f in first)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 12) | st.sampled_from(
        ["trigger", "end", "channel", "condition", "wait", "a", "b", "c_1", "email", "sms", "", " "]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["handle", "type", "position", "parent_step_handle", "branch_handle", "settings",
                         "branches", "finish", "template", "channel_type", "data", "body", "body@", "x"]),
        inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_json, max_size=8))
def test_rules_never_crash(steps: list[Any]) -> None:
    for finding in check_rules({"steps": steps}):
        assert finding.code and finding.message and finding.path


def test_children_of_a_step_with_an_unknown_type_are_not_blamed() -> None:
    steps = [trig(), {**cond("condition_1", 1, ["a", "b"]), "type": "conditon"}, end(2),
             sms("sms_1", 0, parent_step_handle="condition_1", branch_handle="a")]
    assert codes(steps) == []


@pytest.mark.parametrize(
    ("channel", "phrase"),
    [("email", "of an email step"), ("in_app", "of an in_app step"), ("sms", "of an sms step"),
     ("chat", "of a chat step"), ("webhook", "of a webhook step")],
)
def test_body_extension_message_uses_the_right_article(channel: str, phrase: str) -> None:
    step = {"handle": "x_1", "type": "channel", "position": 1, "channel_type": channel,
            "template": {"channel_type": channel, "data": {"body@": "steps/x_1/body.bin"}}}
    (finding,) = check_rules({"steps": [trig(), step, end(2)]})
    assert phrase in finding.message


def test_messages_quote_substituted_values_as_written() -> None:
    steps = [trig(), sms("sms_1", 1, parent_step_handle="secret-parent", branch_handle="secret-branch"),
             sms("secret-handle", 2), sms("secret-handle", 3), end(4)]
    raw = {
        ("steps", 1, "parent_step_handle"): "${PARENT}",
        ("steps", 1, "branch_handle"): "${BRANCH}",
        ("steps", 2, "handle"): "${H}",
        ("steps", 3, "handle"): "${H}",
    }
    findings = check_rules({"steps": steps}, raw=raw)
    messages = " ".join(f.message + f.hint for f in findings)
    assert "'${PARENT}'" in messages and "'${H}'" in messages
    assert "secret" not in messages


def test_unhashable_values_never_reach_a_lookup() -> None:
    step = {"handle": "x_1", "type": "channel", "position": 1, "channel_type": ["email"],
            "template": {"channel_type": {"a": 1}, "data": {"body": "", "body@": ["x"]}},
            "parent_step_handle": ["p"], "branch_handle": {}}
    cond_step = {"handle": ["c"], "type": "condition", "position": 2,
                 "settings": {"branches": [{"handle": ["a"], "finish": True}, {"handle": {}, "finish": True}]}}
    check_rules({"steps": [trig(), step, cond_step, end(3)]})
