"""Console output of a run: the only module that prints results.

Formats (registry `RENDERERS`, name -> renderer):

* ``text``: a header, one line per notiflow, problems as ``file:line:col``, then the diff (and
  conflict views) of each would-update or conflict notiflow.
* ``json``: the section 6 report.
* ``github``: the text, with untrusted parts inside ``::stop-commands::`` fences, up to 9 error
  and 9 warning annotations (what the step has left of GitHub's 10, less one kept for the
  messages after the results), and each diff folded in a ``::group::``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from typing import TextIO

from notiflows_deploy.model import NotiflowOutcome, RunResult, Status
from notiflows_deploy.redact import defuse_legacy_commands
from notiflows_deploy.report import annotations as wf
from notiflows_deploy.report.annotations import AnnotationBatch
from notiflows_deploy.report.common import counts_text, ordered, range_text, reason, short_sha, version_change
from notiflows_deploy.report.json_report import build_report

# Statuses whose detail, diff and conflict views follow the overview. FAILED is there for its detail:
# the overview line shows the first error, the detail says what that left on the server (e.g. a
# refused publish: "the pushed draft stays on the server unpublished").
_DIFF_STATUSES = frozenset(
    {Status.WOULD_UPDATE, Status.CONFLICT, Status.FORCED, Status.EDITED_REMOTELY, Status.FAILED}
)


def _header(result: RunResult) -> str:
    parts = [f"notiflows-deploy {result.mode}: {result.result} (exit {int(result.exit_code)})"]
    where = []
    if result.project:
        where.append(f"project {result.project}")
    label, rng = range_text(result)
    if rng:
        where.append(f"{label} {rng}")
    return parts[0] + (" — " + ", ".join(where) if where else "")


def overview_lines(result: RunResult) -> list[str]:
    lines = [_header(result)]
    if result.fatal:
        lines.append(f"stopped: {result.fatal}")
    lines.extend(f"failed: {failure}" for failure in result.failures)
    outcomes = ordered(result)
    width = max((len(n.handle) for n in outcomes), default=0)
    width = min(width, 40)
    for n in outcomes:
        version = re.sub(r"\b(\d+)\b", r"v\1", version_change(n))  # "v3 → v4", "v3 → next", "new"
        sha = short_sha(n.remote_sha_after or n.remote_sha_before)
        cells = [f"{n.status.value:<15}", f"{n.handle:<{width}}", f"{version:<10}", f"{sha:<7}", reason(n)]
        lines.append("  " + "  ".join(cells).rstrip())
    problems = [*result.errors, *(p for n in result.notiflows for p in (*n.errors, *n.warnings))]
    if problems:
        lines.append("problems:")
        lines += ["  " + line for p in problems for line in p.render().split("\n")]
    lines.append(counts_text(result))
    lines += [f"note: {note}" for note in result.notes]
    return lines


def _detail_text(n: NotiflowOutcome) -> str:
    parts = []
    if n.detail:
        parts.append(n.detail.rstrip("\n"))
    if n.diff:
        parts.append(n.diff.rstrip("\n"))
    for key, value in n.extra.items():
        if isinstance(value, str) and "\n" in value.strip():
            parts.append(f"{key}:\n{value.rstrip()}")
    return "\n".join(parts)


def _with_diffs(result: RunResult) -> list[NotiflowOutcome]:
    return [n for n in ordered(result) if n.status in _DIFF_STATUSES and _detail_text(n)]


def render_text(result: RunResult, out: TextIO) -> AnnotationBatch:
    lines = overview_lines(result)
    for n in _with_diffs(result):
        lines.append(f"--- {n.status.value}: {n.handle} ({n.path})")
        lines.append(_detail_text(n))
    out.write("\n".join(lines) + "\n")
    out.flush()
    return AnnotationBatch()


def render_json(result: RunResult, out: TextIO) -> AnnotationBatch:
    out.write(json.dumps(build_report(result), indent=2, ensure_ascii=False) + "\n")
    out.flush()
    return AnnotationBatch()


def workspace_file_exists(file: str) -> bool:
    """Whether an annotation may name `file` (relative to the repository root), judged from the
    workspace, the working directory of a container action: False when its directory is there but
    the file is not (a directory without notiflow.json, the notiflows.json that was not found);
    True when the file is there, or when nothing of it is (a run from elsewhere: cannot tell)."""
    bases = dict.fromkeys(b for b in (os.getcwd(), os.environ.get("GITHUB_WORKSPACE", "")) if b)
    missing = False
    for base in bases:
        if os.path.exists(os.path.join(base, file)):
            return True
        missing = missing or os.path.isdir(os.path.join(base, os.path.dirname(file)))
    return not missing


FileCheck = Callable[[str], bool]


def _limits() -> dict[str, int]:
    """Annotations of each kind the results may use: what the step has left, less the late slots."""
    return {kind: max(0, wf.LEDGER.room(kind) - wf.LATE_SLOTS) for kind in wf.KINDS}


def render_github(result: RunResult, out: TextIO, file_exists: FileCheck | None = None) -> AnnotationBatch:
    lines = wf.stop_commands("\n".join(overview_lines(result)))
    wf.LEDGER.begin_run()
    batch = wf.result_annotations(result, _limits(), file_exists=file_exists or workspace_file_exists)
    for kind, count in batch.emitted.items():
        wf.LEDGER.take(kind, count)
    lines += batch.lines
    if batch.dropped_total:
        lines.append(
            f"{batch.dropped_total} more problems were not annotated (GitHub keeps "
            f"{wf.MAX_PER_KIND} of each kind per step); see the job summary."
        )
    for n in _with_diffs(result):
        lines.append(wf.group(f"{n.status.value}: {n.handle}"))
        lines += wf.stop_commands(_detail_text(n))
        lines.append(wf.endgroup())
    out.write("\n".join(lines) + "\n")
    out.flush()
    return batch


Renderer = Callable[[RunResult, TextIO], AnnotationBatch]
RENDERERS: dict[str, Renderer] = {"text": render_text, "json": render_json, "github": render_github}


def render(
    result: RunResult, fmt: str, out: TextIO | None = None, *, file_exists: FileCheck | None = None
) -> AnnotationBatch:
    """Print `result` in format `fmt`; returns the annotations emitted (and dropped) for the summary.

    `file_exists` (github): whether a file named by a problem exists in the repository, relative to
    its root; without it, `workspace_file_exists` judges from the workspace.
    """
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(RENDERERS)}") from None
    stream = out if out is not None else sys.stdout
    if renderer is render_github:
        return render_github(result, stream, file_exists)
    return renderer(result, stream)


def message(kind: str, text: str, fmt: str, out: TextIO | None = None) -> None:
    """One run-level message (e.g. the PR comment could not be posted): an annotation under github,
    while the step has one of that kind left (`annotations.LEDGER`); after that, fenced text.

    By default an annotation goes to stdout, with every other workflow command: the runner parses
    both pipes with one parser, so a command on stderr may land inside an open stdout fence and be
    ignored. Plain messages go to stderr.
    """
    stream = out if out is not None else (sys.stdout if fmt == "github" else sys.stderr)
    if fmt == "github" and kind in wf.KINDS:
        stream.write("\n".join(wf.say_lines(kind, text)) + "\n")
    else:  # unfenced: a legacy `##[command]` in the text must not run
        stream.write(f"{kind}: {defuse_legacy_commands(text)}\n")
    stream.flush()
