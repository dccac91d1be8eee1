"""RunResult -> GitHub-flavoured Markdown: the job summary and, with a smaller budget, the PR comment.

Layout: a header (result, project, range, counts), one table row per notiflow (grouped by class in
drift mode), then one collapsed section per notiflow with its problems, diff and conflict views.
Everything from outside (handles, messages, diffs, server text) is escaped: table cells and inline
text get Markdown and HTML escaping with newlines flattened, code goes into fences longer than any
backtick run it contains.

Budgets: GitHub drops a step summary over 1 MiB and rejects a comment over 65,536 characters, so
the renderer measures what it adds (UTF-8 bytes for the summary, characters for the comment) and
stops early, saying how many notiflows were left for the JSON report.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from notiflows_deploy.model import DRIFT_STATUSES, NotiflowOutcome, Problem, RunResult, Status
from notiflows_deploy.report import annotations as wf
from notiflows_deploy.report.common import (
    counts_text,
    fence_for,
    location,
    ordered,
    range_text,
    reason,
    short_sha,
    version_change,
)

SUMMARY_BUDGET_BYTES = 1_000_000  # GitHub's limit is 1 MiB per step; stay clearly below it
COMMENT_BUDGET_CHARS = 65_000  # GitHub rejects comment bodies over 65,536 characters
COMMENT_MARKER = "<!-- notiflows-deploy:plan -->"
MAX_PROBLEMS_PER_NOTIFLOW = 50
_OPEN_STATUSES = frozenset({Status.INVALID, Status.CONFLICT, Status.FAILED})

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~!])")


_WWW = re.compile(r"(www)\.", re.IGNORECASE)


def no_autolinks(escaped: str) -> str:
    """Keep GFM's extended autolinks (`http://…`, `https://…`, `www.…`) from turning untrusted text
    into links: the entities render as the same characters, but the autolink rules see `:&#47;&#47;`
    and `www&#46;`. Apply to text already escaped (the `&` of the entities must stay). Code blocks
    need nothing: nothing in them is linked."""
    return _WWW.sub(r"\1&#46;", escaped.replace("://", ":&#47;&#47;"))


def md_text(text: str) -> str:
    """Inline Markdown text, safe in a table cell: one line, no HTML, no emphasis, no pipes, no
    mentions, no links (`[]()` is escaped, autolinks are defused)."""
    flat = re.sub(r"\s+", " ", text).strip()
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # A zero-width space after "@" keeps untrusted text from @-mentioning people in a PR comment.
    return no_autolinks(_MD_SPECIAL.sub(r"\\\1", flat).replace("@", "@\u200b"))


def html_text(text: str) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return no_autolinks(
        flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def code_span(text: str) -> str:
    """Inline code for trusted-shape text (shas, statuses). Pipes are escaped for table cells."""
    flat = re.sub(r"\s+", " ", text).strip().replace("|", "\\|")
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}" if flat else ""


def fenced(text: str, info: str = "", limit: int | None = None) -> str:
    """A fenced code block holding `text` verbatim, cut at a line boundary past `limit` characters."""
    body = text.replace("\r\n", "\n").rstrip("\n")
    if limit is not None and len(body) > limit:
        cut = body.rfind("\n", 0, limit)
        kept = body[: cut if cut > 0 else limit]
        dropped = body[len(kept) :].count("\n") + 1
        body = f"{kept}\n… ({dropped} more lines; the full text is in the JSON report)"
    fence = fence_for(body)
    return f"{fence}{info}\n{body}\n{fence}\n"


def problem_line(problem: Problem) -> str:
    hint = f" — hint: {md_text(problem.hint)}" if problem.hint else ""
    return (
        f"- **{problem.severity.value}** {md_text(location(problem))} "
        f"\\[{md_text(problem.code)}\\] {md_text(problem.message)}{hint}\n"
    )


def _measure(unit: str) -> Callable[[str], int]:
    if unit == "bytes":
        return lambda s: len(s.encode("utf-8"))
    if unit == "chars":
        return len
    raise ValueError(f"unknown unit {unit!r}")


@dataclass
class _Budget:
    limit: int
    measure: Callable[[str], int]
    used: int = 0

    def fits(self, text: str, reserve: int = 0) -> bool:
        return self.used + self.measure(text) + reserve <= self.limit

    def take(self, text: str) -> str:
        self.used += self.measure(text)
        return text


def _header(result: RunResult, report_path: str | None, title: str) -> str:
    exit_code = int(result.exit_code)
    lines = [f"## {title} {md_text(result.mode)}: {md_text(result.result)}", ""]
    facts = [f"**Result:** {code_span(result.result)} (exit {exit_code})"]
    if result.project:
        facts.append(f"**Project:** {md_text(result.project)}")
    label, rng = range_text(result)
    if rng:
        facts.append(f"**{label.capitalize()}:** {md_text(rng)}")
    lines += [" · ".join(facts), "", md_text(counts_text(result)), ""]
    counts = result.counts()
    drifted = sum(counts.get(s.value, 0) for s in DRIFT_STATUSES)
    if result.mode == "drift" and drifted:
        passes = "" if result.fail_on_drift else " `fail-on-drift` is false, so the step passes."
        lines += [f"**Drift:** {drifted} of {len(result.notiflows)} notiflows differ from the server.{passes}", ""]
    unpublished = sum(1 for n in result.notiflows if n.extra.get("unpublished_changes"))
    if result.mode == "drift" and unpublished:
        noun = "notiflow has" if unpublished == 1 else "notiflows have"
        lines += [f"**Unpublished drafts:** {unpublished} {noun} a current draft that is not the published version.",
                  ""]
    if result.fatal:
        lines += [f"**Stopped early:** {md_text(result.fatal)}", ""]
    lines += [f"**Failed:** {md_text(failure)}\n" for failure in result.failures]
    if result.errors:
        lines += ["**Run errors:**", ""]
        lines += [problem_line(p).rstrip("\n") for p in result.errors[:MAX_PROBLEMS_PER_NOTIFLOW]]
        if len(result.errors) > MAX_PROBLEMS_PER_NOTIFLOW:
            lines.append(f"- … {len(result.errors) - MAX_PROBLEMS_PER_NOTIFLOW} more in the JSON report")
        lines.append("")
    return "\n".join(lines) + "\n"


_TABLE_HEAD = "| Status | Notiflow | Version | SHA | Reason |\n| --- | --- | --- | --- | --- |\n"


def _row(outcome: NotiflowOutcome) -> str:
    sha = short_sha(outcome.remote_sha_after or outcome.remote_sha_before)
    return (
        f"| {code_span(outcome.status.value)} | {md_text(outcome.handle)} | {md_text(version_change(outcome))} "
        f"| {code_span(sha)} | {md_text(reason(outcome))} |\n"
    )


def _extra_blocks(outcome: NotiflowOutcome) -> list[tuple[str, str, str]]:
    """(label, info string, text) for each multi-line text in `extra`.

    Structured extras (conflict facts, drift commit data) are for the JSON report; the detail and
    the diff already say them in words here.
    """
    blocks: list[tuple[str, str, str]] = []
    for key, value in outcome.extra.items():
        if isinstance(value, str) and "\n" in value.strip():
            blocks.append((key, "diff" if "diff" in key.lower() else "", value))
    return blocks


def _has_details(outcome: NotiflowOutcome) -> bool:
    return bool(outcome.errors or outcome.warnings or outcome.diff or outcome.detail or _extra_blocks(outcome))


def _details(outcome: NotiflowOutcome, block_limit: int) -> str:
    is_open = " open" if outcome.status in _OPEN_STATUSES else ""
    parts = [
        f"<details{is_open}><summary>{html_text(outcome.status.value)}: {html_text(outcome.handle)}"
        f" — {html_text(outcome.path)}</summary>\n\n"
    ]
    problems = [*outcome.errors, *outcome.warnings]
    if problems:
        parts += [problem_line(p) for p in problems[:MAX_PROBLEMS_PER_NOTIFLOW]]
        if len(problems) > MAX_PROBLEMS_PER_NOTIFLOW:
            parts.append(f"- … {len(problems) - MAX_PROBLEMS_PER_NOTIFLOW} more in the JSON report\n")
        parts.append("\n")
    if outcome.detail:
        parts.append(fenced(outcome.detail, "text", block_limit) + "\n")
    if outcome.diff:
        parts.append(fenced(outcome.diff, "diff", block_limit) + "\n")
    for label, info, text in _extra_blocks(outcome):
        parts.append(f"**{md_text(label)}**\n\n" + fenced(text, info, block_limit) + "\n")
    parts.append("</details>\n\n")
    return "".join(parts)


def render_markdown(
    result: RunResult,
    *,
    budget: int = SUMMARY_BUDGET_BYTES,
    unit: str = "bytes",
    report_path: str | None = None,
    annotations_dropped: int | None = None,
    title: str = "notiflows-deploy",
    prefix: str = "",
) -> str:
    """The Markdown for `result`, never longer than `budget` (`unit`: "bytes" or "chars")."""
    b = _Budget(budget, _measure(unit))
    where = f" ({md_text(report_path)})" if report_path else ""
    if annotations_dropped is None:
        annotations_dropped = wf.result_annotations(result).dropped_total
    # What always goes last; reserved up front so that it always fits.
    tail_parts: list[str] = []
    if annotations_dropped:
        tail_parts.append(
            f"_{annotations_dropped} more problems were not annotated (GitHub shows at most "
            f"{wf.MAX_PER_KIND} errors and {wf.MAX_PER_KIND} warnings per step); "
            "they are listed in this summary and in the JSON report._\n\n"
        )
    if result.notes:
        tail_parts.append("**Notes**\n\n" + "".join(f"- {md_text(n)}\n" for n in result.notes[:20]) + "\n")
    tail = "".join(tail_parts)
    omission_room = b.measure(f"_{len(result.notiflows)} more notiflows in the JSON report{where}._\n\n") * 2 + 200
    reserve = b.measure(tail) + omission_room

    out: list[str] = [b.take(prefix), b.take(_header(result, report_path, title))]
    rows_shown: list[NotiflowOutcome] = []
    outcomes = ordered(result)
    drift = result.mode == "drift"
    current_group: Status | None = None
    counts = result.counts()
    table_open = False
    # Rows may take half the room when there are details to show, so the most urgent diffs and
    # problems still make it in; otherwise all of it.
    row_reserve = reserve + (budget // 2 if any(_has_details(o) for o in outcomes) else 0)
    for outcome in outcomes:
        piece = ""
        if drift and outcome.status != current_group:
            gap = "\n" if current_group is not None else ""
            piece += f"{gap}### {md_text(outcome.status.value)} ({counts.get(outcome.status.value, 0)})\n\n"
            table_open = False
        if not table_open:
            piece += _TABLE_HEAD
        piece += _row(outcome)
        if not b.fits(piece, row_reserve):
            break
        out.append(b.take(piece))
        rows_shown.append(outcome)
        table_open = True
        current_group = outcome.status
    out.append(b.take("\n"))
    not_shown = len(outcomes) - len(rows_shown)
    if not_shown:
        out.append(b.take(f"_{not_shown} more notiflows in the JSON report{where}._\n\n"))

    block_limit = max(2_000, budget // 8)
    with_details = [o for o in rows_shown if _has_details(o)]
    details_skipped = 0
    heading = "### Details\n\n"
    for outcome in with_details:
        section = _details(outcome, block_limit)
        piece = (heading + section) if heading else section
        if details_skipped or not b.fits(piece, reserve):
            details_skipped += 1
            continue
        out.append(b.take(piece))
        heading = ""
    if details_skipped:
        out.append(b.take(f"_Details of {details_skipped} more notiflows are in the JSON report{where}._\n\n"))
    out.append(b.take(tail))
    text = "".join(out)
    if b.measure(text) > budget:  # pragma: no cover - the reserve makes this unreachable; belt and braces
        raw = text.encode("utf-8")[: budget - 64] if unit == "bytes" else text[: budget - 64].encode("utf-8")
        text = raw.decode("utf-8", "ignore") + "\n\n_(truncated)_\n"
    return text


def render_summary(
    result: RunResult, *, report_path: str | None = None, annotations_dropped: int | None = None
) -> str:
    return render_markdown(result, report_path=report_path, annotations_dropped=annotations_dropped)


def render_comment(result: RunResult, *, report_path: str | None = None, run_url: str | None = None) -> str:
    """The sticky PR comment body: the marker, then the summary cut to the comment budget."""
    prefix = COMMENT_MARKER + "\n"
    body = render_markdown(
        result,
        budget=COMMENT_BUDGET_CHARS - 300,
        unit="chars",
        report_path=report_path,
        annotations_dropped=0,
        prefix=prefix,
    )
    if run_url:
        body += f"[Full job summary]({run_url})\n"
    return body


def write_summary(text: str, path: str | os.PathLike[str], *, append: bool = True) -> None:
    """Append (the step may hold other summaries) or replace the Markdown file at `path`."""
    target = Path(path)
    with target.open("a" if append else "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")


def example_result() -> RunResult:
    """A realistic plan result, used for docs/example-summary.md and the renderer tests."""
    return _example()


def _example() -> RunResult:
    from notiflows_deploy.model import NotiflowOutcome as N
    from notiflows_deploy.model import Problem as P

    base, head = "3f9c2a1d8e7b6c5a4f3e2d1c0b9a8f7e6d5c4b3a", "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b"
    diff = (
        "--- server (v3)\n+++ repo\n@@ -4,7 +4,7 @@\n   \"steps\": [\n     {\n       \"type\": \"email\",\n"
        "-      \"subject\": \"Welcome!\",\n+      \"subject\": \"Welcome to {{ app.name }}!\",\n"
        "       \"template\": \"...\"\n"
    )
    extra: dict[str, Any] = {
        "three_way": (
            "base (repo at 3f9c2a1):  \"delay\": \"1h\"\nserver (v7, abc1234):    \"delay\": \"2h\"\n"
            "repo (9a8b7c6):          \"delay\": \"30m\""
        )
    }
    return RunResult(
        mode="plan",
        project="my-app",
        base=base,
        head=head,
        notiflows=[
            N("welcome-series", Status.WOULD_UPDATE, ".notiflows/notiflows/welcome-series",
              remote_sha_before="5e1f0c2b9d8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e", version_before=3, version=3, diff=diff),
            N("password-reset", Status.WOULD_CREATE, ".notiflows/notiflows/password-reset",
              version=1, diff="+++ repo\n+{\"name\": \"Password reset\", ...}\n"),
            N("order-shipped", Status.CONFLICT, ".notiflows/notiflows/order-shipped",
              remote_sha_before="abc1234def5678abc1234def5678abc1234def56", version_before=7,
              detail="The server's current version (v7) is neither __meta.sha nor the content at the base commit.",
              extra=extra),
            N("digest|weekly", Status.INVALID, ".notiflows/notiflows/digest-weekly",
              errors=[P(".notiflows/notiflows/digest-weekly/notiflow.json", 12, 7, "schema",
                        "'channel' is a required property", hint="add \"channel\": \"email\" to the step")]),
            N("invoice-paid", Status.UNCHANGED, ".notiflows/notiflows/invoice-paid",
              remote_sha_before="77aa88bb99cc00dd11ee22ff33aa44bb55cc66dd", version_before=2, version=2),
        ],
        notes=["schema: bundled copy (schema fetch disabled)", "range: pull request base 3f9c2a1..9a8b7c6"],
    )
