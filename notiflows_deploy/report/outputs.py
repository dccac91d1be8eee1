"""Step outputs through ``$GITHUB_OUTPUT``.

=============  ==========================================================================
output         value
=============  ==========================================================================
result         the `result` word of CONTRACT section 3 (``success``, ``no-changes``, ...)
changed        JSON array of handles with status created, updated, forced, published,
               would-create or would-update (what a deploy writes or would write), and
               every notiflow whose push wrote a draft (report field ``"pushed": true``)
deployed       JSON array: created, updated, forced, published, and every other notiflow
               whose push wrote a draft (``"pushed": true``: e.g. its publish then failed)
conflicts      JSON array: conflict (not pushed; ``forced`` ones are in `deployed`)
invalid        JSON array: invalid
drifted        JSON array: undeployed, edited-remotely, repo-only, remote-only
report-path    path of the JSON report as later steps see it ("" when none was written)
=============  ==========================================================================

Each value is written in the heredoc form with a fresh ``ghadelimiter_<uuid4>`` delimiter (as
the toolkit does), refused if the name or value contains it. A value holding a masked secret is
never written: the runner would drop it anyway ("Skip output ... since it may contain secret").
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from notiflows_deploy.github import masking
from notiflows_deploy.model import CHANGE_STATUSES, DEPLOYED_STATUSES, DRIFT_STATUSES, RunResult, Status
from notiflows_deploy.report.json_report import build_report

OUTPUT_STATUSES: dict[str, frozenset[Status]] = {
    "changed": CHANGE_STATUSES,
    "deployed": DEPLOYED_STATUSES,
    "conflicts": frozenset({Status.CONFLICT}),
    "invalid": frozenset({Status.INVALID}),
    "drifted": DRIFT_STATUSES,
}
OUTPUT_NAMES = ("result", *OUTPUT_STATUSES, "report-path")
# Outputs that also list a notiflow with `"pushed": true` whatever its final status: a draft was written.
PUSHED_OUTPUTS = frozenset({"changed", "deployed"})


class OutputError(ValueError):
    pass


def outputs_from_report(report: Mapping[str, Any] | None, report_path: str | None) -> dict[str, str]:
    """Outputs from a section 6 report dict; `None` (no report) gives result=error, empty arrays."""
    values: dict[str, str] = {"result": str(report.get("result", "error")) if report else "error"}
    entries = list(report.get("notiflows", [])) if report else []
    for name, statuses in OUTPUT_STATUSES.items():
        wanted = {s.value for s in statuses}
        handles = [str(e.get("handle", "")) for e in entries
                   if e.get("status") in wanted or (name in PUSHED_OUTPUTS and e.get("pushed") is True)]
        values[name] = json.dumps(handles, ensure_ascii=False)
    values["report-path"] = report_path or ""
    return values


def outputs_from_result(result: RunResult, report_path: str | None) -> dict[str, str]:
    return outputs_from_report(build_report(result), report_path)


def format_output(name: str, value: str, delimiter: str | None = None) -> str:
    """One `name<<DELIM` block, ending in a newline."""
    delimiter = delimiter or f"ghadelimiter_{uuid.uuid4()}"
    if not name or "\n" in name or "=" in name or "<<" in name:
        raise OutputError(f"unusable output name {name!r}")
    if delimiter in name or delimiter in value:
        raise OutputError(f"output {name!r} contains its delimiter; refusing to write it")
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


def write_outputs(values: Mapping[str, str], path: str | os.PathLike[str] | None = None) -> list[str]:
    """Append `values` to the output file (`$GITHUB_OUTPUT` by default).

    Returns the names skipped because they held a masked secret. Does nothing without a file.
    """
    target = path if path is not None else os.environ.get("GITHUB_OUTPUT")
    skipped: list[str] = []
    if not target:
        return skipped
    blocks: list[str] = []
    for name, value in values.items():
        if masking.contains_masked(value):
            skipped.append(name)
            continue
        blocks.append(format_output(name, value))
    with Path(target).open("a", encoding="utf-8", newline="\n") as handle:
        handle.write("".join(blocks))
    return skipped
