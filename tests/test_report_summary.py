from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from notiflows_deploy.model import NotiflowOutcome, Problem, RunResult, Status
from notiflows_deploy.report.summary import (
    COMMENT_BUDGET_CHARS,
    COMMENT_MARKER,
    SUMMARY_BUDGET_BYTES,
    code_span,
    example_result,
    fenced,
    html_text,
    md_text,
    render_comment,
    render_markdown,
    render_summary,
    write_summary,
)

SHA = "0123456789abcdef0123456789abcdef01234567"


def _rows(markdown: str) -> list[str]:
    return [ln for ln in markdown.splitlines() if ln.startswith("| `")]


def test_cell_escaping_exact() -> None:
    assert md_text("a|b\nc <b>x</b> & *y*") == "a\\|b c &lt;b&gt;x&lt;/b&gt; &amp; \\*y\\*"
    assert md_text("[link](http://x) `code` _u_ # ~s~ !") == (
        "\\[link\\](http:&#47;&#47;x) \\`code\\` \\_u\\_ \\# \\~s\\~ \\!"
    )
    assert html_text('<img src="x" onerror=alert(1)>') == "&lt;img src=&quot;x&quot; onerror=alert(1)&gt;"
    assert md_text("ping @octocat") == "ping @\u200boctocat"
    assert code_span("abc1234") == "`abc1234`"
    assert code_span("a`b") == "``a`b``"


def test_row_for_hostile_handle_is_one_row() -> None:
    result = RunResult(
        mode="plan",
        notiflows=[NotiflowOutcome("x|y\n| injected | row |<script>", Status.WOULD_CREATE, "p", detail="why\nnot")],
    )
    rows = _rows(render_summary(result))
    assert rows == [
        "| `would-create` | x\\|y \\| injected \\| row \\|&lt;script&gt; | new |  | why |"
    ]


def test_fence_longer_than_any_backtick_run() -> None:
    block = fenced("a\n`````\nb", "diff")
    assert block.startswith("``````diff\n") and block.endswith("\n``````\n")
    assert fenced("plain").startswith("```\n")


def test_header_counts_range_and_table() -> None:
    md = render_summary(example_result(), report_path="/r/report.json")
    assert md.startswith("## notiflows-deploy plan: invalid\n")
    assert "**Range:** 3f9c2a1..9a8b7c6" in md
    assert "5 notiflows: 1 invalid, 1 conflict, 1 would-create, 1 would-update, 1 unchanged" in md
    rows = _rows(md)
    assert [r.split("|")[1].strip() for r in rows] == [
        "`invalid`", "`conflict`", "`would-create`", "`would-update`", "`unchanged`"
    ]
    row = "| `would-update` | welcome-series | 3 → next | `5e1f0c2` | content differs; deploy would update it |"
    assert row in rows
    # problems located, conflict three-way view and diff in collapsed sections
    assert ".notiflows/notiflows/digest-weekly/notiflow.json:12:7 \\[schema\\]" in md
    assert "<details open><summary>conflict: order-shipped" in md
    assert "**three\\_way**" in md and '"delay": "2h"' in md
    assert "```diff\n--- server (v3)" in md
    # every <details> opens with a blank line so the fenced code inside renders as code
    assert md.count("<details") == md.count("</details>") == 4
    assert all(after.startswith("\n\n") for after in md.split("</summary>")[1:])


def test_run_errors_and_dropped_annotation_line() -> None:
    result = RunResult(mode="validate", errors=[Problem("notiflows.json", 1, 2, "config", "broken")])
    md = render_summary(result, annotations_dropped=7)
    assert "- **error** notiflows.json:1:2 \\[config\\] broken" in md
    assert "_7 more problems were not annotated" in md


def test_dropped_annotations_computed_when_not_given() -> None:
    result = RunResult(
        mode="validate",
        notiflows=[
            NotiflowOutcome(f"f{i}", Status.INVALID, f"n/f{i}",
                            errors=[Problem(f"n/f{i}/notiflow.json", 1, 1, "c", "m")])
            for i in range(13)
        ],
    )
    # The console annotates 9 of each kind (one slot stays free for late messages): 13 - 9.
    assert "_4 more problems were not annotated" in render_summary(result)


def test_drift_grouped_by_class_with_counts() -> None:
    statuses = [Status.IN_SYNC] * 3 + [Status.EDITED_REMOTELY] * 2 + [Status.REMOTE_ONLY]
    result = RunResult(mode="drift", notiflows=[NotiflowOutcome(f"h{i}", s, f"n/h{i}") for i, s in enumerate(statuses)])
    md = render_summary(result)
    headings = re.findall(r"^### (.+)$", md, re.M)
    assert headings[:3] == ["edited-remotely (2)", "remote-only (1)", "in-sync (3)"]
    assert "**Drift:** 3 of 6 notiflows differ from the server.\n" in md
    result.fail_on_drift = False
    assert "differ from the server. `fail-on-drift` is false, so the step passes." in render_summary(result)
    assert "**Commit:**" not in md and "**Range:**" not in md
    assert md.count("| Status | Notiflow |") == 3
    assert "Unpublished drafts" not in md
    result.notiflows[0].extra["unpublished_changes"] = True
    assert "**Unpublished drafts:** 1 notiflow has a current draft that is not the published version." in (
        render_summary(result))


def _huge(n: int) -> RunResult:
    notiflows = []
    for i in range(n):
        diff = "".join(f"-  \"line {j}\": \"old ✓ value\",\n+  \"line {j}\": \"new ✓ value\",\n" for j in range(12))
        notiflows.append(
            NotiflowOutcome(
                f"notiflow-{i:05d}-ünïcødé", Status.WOULD_UPDATE, f".notiflows/notiflows/n{i}",
                remote_sha_before=SHA, version_before=i, version=i + 1, diff=diff,
                detail="reason ✓ " * 25,
            )
        )
    return RunResult(mode="plan", base=SHA, head=SHA, notiflows=notiflows)


def test_budget_with_5000_notiflows() -> None:
    result = _huge(5000)
    md = render_summary(result, report_path="/home/runner/_temp/report.json")
    size = len(md.encode("utf-8"))
    assert size <= SUMMARY_BUDGET_BYTES < 1024 * 1024
    assert size > SUMMARY_BUDGET_BYTES * 0.9  # it uses the room it has
    shown = len(_rows(md))
    assert 0 < shown < 5000
    assert f"_{5000 - shown} more notiflows in the JSON report (/home/runner/\\_temp/report.json)._" in md
    assert md.rstrip().endswith("</details>") or "Details of" in md


def test_details_dropped_before_rows() -> None:
    result = _huge(800)  # rows fit in 1 MB, not every diff does
    md = render_summary(result)
    assert len(_rows(md)) == 800
    m = re.search(r"_Details of (\d+) more notiflows are in the JSON report", md)
    assert m and 0 < int(m.group(1)) < 800
    assert len(md.encode()) <= SUMMARY_BUDGET_BYTES


def test_small_budget_in_characters() -> None:
    md = render_markdown(_huge(50), budget=20_000, unit="chars")
    assert len(md) <= 20_000


def test_comment_body_has_marker_and_fits() -> None:
    body = render_comment(_huge(5000), run_url="https://github.com/o/r/actions/runs/1")
    assert body.startswith(COMMENT_MARKER + "\n")
    assert len(body) <= COMMENT_BUDGET_CHARS
    assert "more notiflows in the JSON report" in body
    assert body.rstrip().endswith("[Full job summary](https://github.com/o/r/actions/runs/1)")


def test_one_huge_diff_is_cut_not_dropped() -> None:
    diff = "+x\n" * 500_000
    result = RunResult(mode="plan", notiflows=[NotiflowOutcome("big", Status.WOULD_UPDATE, "n/big", diff=diff)])
    md = render_summary(result)
    assert len(md.encode()) <= SUMMARY_BUDGET_BYTES
    assert "more lines; the full text is in the JSON report" in md


def test_write_summary_appends(tmp_path: Path) -> None:
    target = tmp_path / "summary.md"
    target.write_text("before\n")
    write_summary("# hi", target)
    assert target.read_text() == "before\n# hi\n"
    write_summary("# new\n", target, append=False)
    assert target.read_text() == "# new\n"


def test_tail_lines_survive_a_full_table() -> None:
    """Rows alone overflow the budget: the omission line, dropped-annotation line and notes still fit."""
    result = RunResult(
        mode="plan",
        notiflows=[NotiflowOutcome(f"n{i}", Status.UNCHANGED, f"p/{i}", detail="x" * 150) for i in range(8000)],
        notes=["schema: bundled copy"],
    )
    md = render_markdown(result, budget=200_000, annotations_dropped=3, report_path="r.json")
    assert len(md.encode()) <= 200_000
    assert re.search(r"_\d+ more notiflows in the JSON report \(r\.json\)\._", md)
    assert "_3 more problems were not annotated" in md
    assert md.rstrip().endswith("- schema: bundled copy")


# --- no links from untrusted text: GFM extended autolinks (http://, https://, www.) are defused --------


@pytest.mark.parametrize("text,expected", [
    ("https://phish.example/login", "https:&#47;&#47;phish.example/login"),
    ("see http://x.example now", "see http:&#47;&#47;x.example now"),
    ("www.phish.example", "www&#46;phish.example"),
    ("WWW.Phish.Example/x", "WWW&#46;Phish.Example/x"),
    ("ftp://files.example", "ftp:&#47;&#47;files.example"),
    ("[click](https://phish.example)", "\\[click\\](https:&#47;&#47;phish.example)"),
    ("<https://phish.example>", "&lt;https:&#47;&#47;phish.example&gt;"),
    ("mail admin@phish.example", "mail admin@\u200bphish.example"),
    ("no link: version 1.2 and a:b", "no link: version 1.2 and a:b"),
])
def test_untrusted_inline_text_has_no_autolinks(text: str, expected: str) -> None:
    assert md_text(text) == expected
    assert "://" not in html_text(text) and "www." not in html_text(text).lower()


def _phishing_result() -> RunResult:
    message = "Log in again at https://phish.example/login or www.phish.example to fix this"
    return RunResult(
        mode="deploy",
        notiflows=[NotiflowOutcome(
            "order-shipped", Status.FAILED, ".notiflows/notiflows/https://x",
            errors=[Problem(".notiflows/notiflows/order-shipped/notiflow.json", 1, 1, "api", message)],
            detail=message, diff="+ url: https://inside.example/code-block\n",
        )],
        notes=["server says: visit https://phish.example/notes"],
    )


@pytest.mark.parametrize("render", [render_summary, render_comment])
def test_server_messages_are_link_free_in_summary_and_comment(render: Any) -> None:
    md = render(_phishing_result())
    outside_code = re.sub(r"(?ms)^(`{3,})[^\n]*\n.*?^\1\n", "", md)  # drop fenced code blocks
    assert "phish" in outside_code  # the text is there, in the row, the problem list and the notes
    assert not re.search(r"(?i)://|www\.", outside_code.replace("https://github.com", "")), outside_code
    assert "https:&#47;&#47;phish.example/login" in _rows(md)[0]
    # Inside a fenced block nothing is linked, so the text stays exactly as it was.
    assert "+ url: https://inside.example/code-block\n" in md
    assert "Log in again at https://phish.example/login" in md  # the detail, fenced
