from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from notiflows_deploy.model import NotiflowOutcome, Problem, RunResult, Severity, Status
from notiflows_deploy.report.annotations import (
    MAX_PER_KIND,
    annotation,
    build_annotations,
    escape_data,
    escape_property,
    outcome_problems,
    problem_annotation,
    result_annotations,
    stop_commands,
)


def _unescape_data(text: str) -> str:  # the runner's order: %0D, %0A first, %25 last
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")


def _parse(line: str) -> tuple[str, dict[str, str], str]:
    """Parse one command line the way ActionCommand.cs does."""
    assert line.startswith("::")
    end = line.index("::", 2)
    head, data = line[2:end], line[end + 2 :]
    name, _, props = head.partition(" ")
    properties = {}
    for pair in filter(None, props.split(",")):
        key, _, value = pair.partition("=")
        properties[key] = _unescape_property(value)
    return name, properties, _unescape_data(data)


def test_escape_exact_strings() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_data("%0A literal") == "%250A literal"
    assert escape_property("a:b,c%d\ne") == "a%3Ab%2Cc%25d%0Ae"


def test_annotation_exact_line() -> None:
    line = annotation("error", "bad\nthing", file="a,b:c.json", line=3, col=5, title="t: x")
    assert line == "::error file=a%2Cb%3Ac.json,line=3,col=5,title=t%3A x::bad%0Athing"


def test_col_without_line_is_left_out() -> None:
    assert annotation("warning", "m", col=4) == "::warning::m"


def test_hostile_text_cannot_forge_properties_or_commands() -> None:
    evil_file = "x.json,line=999,title=owned\n::add-mask::secret"
    evil_msg = "first\n::error::injected\r\n::stop-commands::abc%0A"
    p = Problem(file=evil_file, line=2, column=3, code="schema", message=evil_msg, severity=Severity.ERROR)
    line = problem_annotation(p)
    assert "\n" not in line and "\r" not in line
    name, props, data = _parse(line)
    assert name == "error"
    assert props["file"] == evil_file and props["line"] == "2" and props["col"] == "3"
    assert set(props) == {"file", "line", "col", "title"}
    assert data == evil_msg


def test_round_trip_random_strings() -> None:
    samples = ["%", "%%25", "a%3Ab", ":,:,", "\n\r\n", "ünïcødé ✓", "%0A%0D%2C%3A"]
    for s in samples:
        assert _unescape_data(escape_data(s)) == s
        assert _unescape_property(escape_property(s)) == s


def test_cap_ten_per_kind() -> None:
    problems = [Problem("f.json", i + 1, 1, "c", f"e{i}") for i in range(25)]
    problems += [Problem("f.json", 1, 1, "w", f"w{i}", severity=Severity.WARNING) for i in range(12)]
    batch = build_annotations(problems)
    assert batch.emitted == {"error": MAX_PER_KIND, "warning": MAX_PER_KIND}
    assert batch.dropped == {"error": 15, "warning": 2}
    assert batch.dropped_total == 17
    assert len(batch.lines) == 20
    assert sum(1 for ln in batch.lines if ln.startswith("::error ")) == 10


def test_synthesised_annotations_for_conflict_failed_drift() -> None:
    result = RunResult(
        mode="drift",
        notiflows=[
            NotiflowOutcome("a", Status.CONFLICT, "n/a"),
            NotiflowOutcome("b", Status.EDITED_REMOTELY, "n/b"),
            NotiflowOutcome("c", Status.REMOTE_ONLY, "n/c"),  # drift gives it a path; no file is there
            NotiflowOutcome("d", Status.IN_SYNC, "n/d"),
        ],
    )
    probs = outcome_problems(result)
    assert [p.code for p in probs] == ["conflict", "edited-remotely", "remote-only"]
    assert probs[0].file == "n/a/notiflow.json" and probs[0].severity is Severity.ERROR
    assert probs[2].file == "" and "file=" not in problem_annotation(probs[2])
    result.fail_on_drift = False
    assert outcome_problems(result)[1].severity is Severity.WARNING
    assert result_annotations(result).emitted == {"error": 1, "warning": 2}


def test_stop_commands_wraps_text_with_random_token() -> None:
    text = "line\n::error::nope\n::endgroup::"
    lines = stop_commands(text)
    assert re.fullmatch(r"::stop-commands::[0-9a-f]{32}", lines[0])
    token = lines[0].split("::")[2]
    assert lines[-1] == f"::{token}::"
    assert lines[1:-1] == text.split("\n")
    other = stop_commands(text)
    assert other[0] != lines[0]  # fresh token every time


# Property: whatever the text, one line comes out and the runner's parser gets exactly it back.

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(file=_text, message=_text, title=_text)
def test_any_text_round_trips(file: str, message: str, title: str) -> None:
    line = annotation("warning", message, file=file or None, line=1, col=1, title=title or None)
    assert "\n" not in line and "\r" not in line
    name, props, data = _parse(line)
    assert name == "warning" and data == message
    if file:
        assert props["file"] == file
    if title:
        assert props["title"] == title
    assert set(props) <= {"file", "line", "col", "title"}
